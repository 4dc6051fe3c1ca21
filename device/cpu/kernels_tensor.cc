// Data-movement kernels: Transpose, Concat, Split, Slice, Expand, Gather, GatherElements,
// copies (Reshape when the planner could not alias), and Range / ConstantOfShape for folding.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/op_registry.h"

namespace qeff::device {
namespace {

// Reshape-like ONNX ops (Identity, Squeeze, Unsqueeze, Flatten) all arrive as "Reshape", and
// Shape is always a compile-time constant.

// Copies `in` viewed through per-output-dim source strides (elements) and a base offset.
void StridedCopy(const uint8_t* src, const Shape& out_shape, const Shape& src_strides, int64_t base, size_t es,
                 uint8_t* dst) {
  const int r = static_cast<int>(out_shape.size());
  const int64_t total = NumElements(out_shape);
  if (total == 0) return;
  if (r == 0) {
    std::memcpy(dst, src + base * es, es);
    return;
  }
  const int64_t inner = out_shape[r - 1];
  const int64_t inner_stride = src_strides[r - 1];
  Shape idx(r, 0);
  for (int64_t o = 0; o < total; o += inner) {
    int64_t off = base;
    for (int d = 0; d + 1 < r; ++d) off += idx[d] * src_strides[d];
    if (inner_stride == 1) {
      std::memcpy(dst + o * es, src + off * es, inner * es);
    } else if (es == 4) {
      const uint32_t* s = reinterpret_cast<const uint32_t*>(src) + off;
      uint32_t* d = reinterpret_cast<uint32_t*>(dst) + o;
      for (int64_t i = 0; i < inner; ++i) d[i] = s[i * inner_stride];
    } else {
      for (int64_t i = 0; i < inner; ++i) std::memcpy(dst + (o + i) * es, src + (off + i * inner_stride) * es, es);
    }
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
}

int64_t ReadIndex(const TensorRef& t, int64_t i) {
  return t.dtype == qeff::v1::I32 ? t.as<int32_t>()[i] : t.as<int64_t>()[i];
}

struct AxisAttrs {
  int64_t axis = 0;
};

absl::Status ParseAxis(AttrReader& r, AxisAttrs* a) {
  a->axis = r.Int("axis", 0);
  if (a->axis < 0) return RuleError(absl::StrCat("axis ", a->axis, " is negative (the compiler normalizes axes)"));
  return absl::OkStatus();
}

absl::Status CheckAxis(int64_t axis, size_t rank) {
  if (axis >= static_cast<int64_t>(rank)) return RuleError(absl::StrCat("axis ", axis, " out of range for rank ", rank));
  return absl::OkStatus();
}

absl::Status Gather(int64_t axis, const TensorRef& data, const TensorRef& idx, const TensorRef& o) {
  const size_t es = DTypeSize(data.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= data.shape[d];
  for (size_t d = axis + 1; d < data.shape.size(); ++d) inner *= data.shape[d];
  const int64_t dim = data.shape[axis];
  const int64_t n = idx.numel();
  const auto* src = static_cast<const uint8_t*>(data.data);
  auto* dst = static_cast<uint8_t*>(o.data);
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t k = ReadIndex(idx, i);
      if (k < 0) k += dim;
      if (k < 0 || k >= dim) {
        return absl::InvalidArgumentError(absl::StrCat("Gather index ", ReadIndex(idx, i), " is out of range for a dimension of ",
                                                       dim, " (e.g. a token id outside the vocabulary or a position beyond the model's maximum)"));
      }
      std::memcpy(dst + (a * n + i) * inner * es, src + (a * dim + k) * inner * es, inner * es);
    }
  }
  return absl::OkStatus();
}

absl::Status GatherElements(int64_t axis, const TensorRef& data, const TensorRef& idx, const TensorRef& o) {
  const size_t es = DTypeSize(data.dtype);
  const Shape ds = Strides(data.shape);
  const int r = static_cast<int>(idx.shape.size());
  Shape i(r, 0);
  const int64_t total = idx.numel();
  const auto* src = static_cast<const uint8_t*>(data.data);
  auto* dst = static_cast<uint8_t*>(o.data);
  for (int64_t e = 0; e < total; ++e) {
    int64_t k = ReadIndex(idx, e);
    if (k < 0) k += data.shape[axis];
    if (k < 0 || k >= data.shape[axis]) return absl::InvalidArgumentError("GatherElements index out of range");
    int64_t off = 0;
    for (int d = 0; d < r; ++d) off += (d == axis ? k : i[d]) * ds[d];
    std::memcpy(dst + e * es, src + off * es, es);
    for (int d = r - 1; d >= 0; --d) {
      if (++i[d] < idx.shape[d]) break;
      i[d] = 0;
    }
  }
  return absl::OkStatus();
}

// ---- Copy / Reshape (a copy when the planner could not alias) --------------------------------------

absl::Status CopyRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (!Present(in[0])) return RuleError("input is missing");
  if (out[0].dtype != in[0].dtype || out[0].numel() != in[0].numel()) {
    return RuleError(absl::StrCat("output ", DTypeName(out[0].dtype), " ", ShapeString(out[0].shape),
                                  " does not hold input ", DTypeName(in[0].dtype), " ", ShapeString(in[0].shape)));
  }
  return absl::OkStatus();
}

absl::Status CopyKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  if (o.bytes() > 0 && in[0].data != o.data) std::memmove(o.data, in[0].data, o.bytes());
  return absl::OkStatus();
}

// ---- Range(start, limit, delta) -> [n] (folding) ---------------------------------------------------

absl::Status RangeRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (auto st = ExpectDType(out[0], "output", {qeff::v1::F32, qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (auto st = ExpectRank(out[0], "output", 1); !st.ok()) return st;
  for (int i = 0; i < 3; ++i) {
    const char* what = i == 0 ? "start" : i == 1 ? "limit" : "delta";
    if (auto st = ExpectDType(in[i], what, {out[0].dtype}); !st.ok()) return st;
    if (in[i].numel() < 1) return RuleError(absl::StrCat(what, " is empty"));
  }
  return absl::OkStatus();
}

absl::Status RangeKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  const int64_t n = o.numel();
  if (o.dtype == qeff::v1::F32) {
    float s = in[0].as<float>()[0], d = in[2].as<float>()[0];
    for (int64_t i = 0; i < n; ++i) o.as<float>()[i] = s + d * static_cast<float>(i);
  } else {
    int64_t s = ReadIndex(in[0], 0), d = ReadIndex(in[2], 0);
    for (int64_t i = 0; i < n; ++i) {
      if (o.dtype == qeff::v1::I32) o.as<int32_t>()[i] = static_cast<int32_t>(s + d * i);
      else o.as<int64_t>()[i] = s + d * i;
    }
  }
  return absl::OkStatus();
}

// ---- ConstantOfShape -> out filled with value_f (float) or value_i (integer, bool) (folding) --------

struct FillAttrs {
  float value_f = 0.0f;
  int64_t value_i = 0;
};

absl::Status ParseFill(AttrReader& r, FillAttrs* a) {
  a->value_f = r.Float("value_f", 0.0f);
  a->value_i = r.Int("value_i", 0);
  if (!std::isfinite(a->value_f)) return RuleError("value_f is not finite");
  return absl::OkStatus();
}

absl::Status FillRule(const FillAttrs&, const Tensors&, const Tensors& out) {
  return ExpectDType(out[0], "output", {qeff::v1::F32, qeff::v1::I64, qeff::v1::I32, qeff::v1::BOOL});
}

absl::Status FillKernel(const FillAttrs& a, const Tensors&, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  const int64_t n = o.numel();
  if (o.dtype == qeff::v1::F32) {
    std::fill(o.as<float>(), o.as<float>() + n, a.value_f);
  } else if (o.dtype == qeff::v1::I64) {
    std::fill(o.as<int64_t>(), o.as<int64_t>() + n, a.value_i);
  } else if (o.dtype == qeff::v1::I32) {
    std::fill(o.as<int32_t>(), o.as<int32_t>() + n, static_cast<int32_t>(a.value_i));
  } else {
    std::fill(o.as<uint8_t>(), o.as<uint8_t>() + n, static_cast<uint8_t>(a.value_i));
  }
  return absl::OkStatus();
}

// ---- Transpose(perm) --------------------------------------------------------------------------------

struct TransposeAttrs {
  Shape perm;
};

absl::Status ParseTranspose(AttrReader& r, TransposeAttrs* a) {
  a->perm = r.Ints("perm");
  return absl::OkStatus();
}

absl::Status TransposeRule(const TransposeAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (!Present(x)) return RuleError("input is missing");
  if (a.perm.size() != x.shape.size()) {
    return RuleError(absl::StrCat("perm has ", a.perm.size(), " axes for an input of rank ", x.shape.size()));
  }
  std::vector<bool> seen(a.perm.size(), false);
  Shape want;
  for (int64_t p : a.perm) {
    if (p < 0 || p >= static_cast<int64_t>(a.perm.size()) || seen[p]) {
      return RuleError(absl::StrCat("perm is not a permutation of the input's ", x.shape.size(), " axes"));
    }
    seen[p] = true;
    want.push_back(x.shape[p]);
  }
  return ExpectLike(out[0], "output", x.dtype, want);
}

absl::Status TransposeKernel(const TransposeAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  const Shape is = Strides(in[0].shape);
  Shape src_strides(a.perm.size());
  for (size_t d = 0; d < a.perm.size(); ++d) src_strides[d] = is[a.perm[d]];
  StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, 0, DTypeSize(o.dtype),
              static_cast<uint8_t*>(o.data));
  return absl::OkStatus();
}

// ---- Slice(starts, steps): normalized per input axis; the output shape holds the counts ------------

struct SliceAttrs {
  Shape starts, steps;
};

absl::Status ParseSlice(AttrReader& r, SliceAttrs* a) {
  a->starts = r.Ints("starts");
  a->steps = r.Ints("steps");
  return absl::OkStatus();
}

absl::Status SliceRule(const SliceAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (!Present(x)) return RuleError("input is missing");
  const size_t r = x.shape.size();
  if (a.starts.size() != r || a.steps.size() != r) {
    return RuleError(absl::StrCat("starts/steps have ", a.starts.size(), "/", a.steps.size(),
                                  " entries for an input of rank ", r));
  }
  if (out[0].dtype != x.dtype || out[0].shape.size() != r) return RuleError("output type or rank differs from the input's");
  for (size_t d = 0; d < r; ++d) {
    const int64_t dim = x.shape[d], n = out[0].shape[d], start = a.starts[d], step = a.steps[d];
    if (step == 0) return RuleError(absl::StrCat("step 0 on axis ", d));
    if (n == 0) continue;
    // Every selected index start + i * step (i < n) inside [0, dim), without overflow.
    const int64_t reach = n - 1;
    bool ok = start >= 0 && start < dim;
    if (ok && reach > 0) ok = step > 0 ? step <= (dim - 1 - start) / reach : step >= -(start / reach);
    if (!ok) {
      return RuleError(absl::StrCat("axis ", d, ": ", n, " elements from ", start, " by ", step,
                                    " leave the input dimension ", dim));
    }
  }
  return absl::OkStatus();
}

absl::Status SliceKernel(const SliceAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  const Shape is = Strides(in[0].shape);
  Shape src_strides(o.shape.size());
  int64_t base = 0;
  for (size_t d = 0; d < o.shape.size(); ++d) {
    // An axis with at most one element never moves along its stride (a step beyond the
    // dimension would only overflow the product).
    src_strides[d] = o.shape[d] > 1 ? is[d] * a.steps[d] : 0;
    base += o.shape[d] > 0 ? a.starts[d] * is[d] : 0;
  }
  StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, base, DTypeSize(o.dtype),
              static_cast<uint8_t*>(o.data));
  return absl::OkStatus();
}

// ---- Expand: broadcast the input to the output's shape ------------------------------------------

absl::Status ExpandRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const Shape& s = in[0].shape;
  const Shape& o = out[0].shape;
  if (!Present(in[0])) return RuleError("input is missing");
  if (out[0].dtype != in[0].dtype) return RuleError("output type differs from the input's");
  bool ok = s.size() <= o.size();
  for (size_t d = 0; ok && d < s.size(); ++d) ok = s[d] == 1 || s[d] == o[o.size() - s.size() + d];
  if (!ok) return RuleError(absl::StrCat("input ", ShapeString(s), " does not broadcast to ", ShapeString(o)));
  return absl::OkStatus();
}

absl::Status ExpandKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  const Shape& s = in[0].shape;
  Shape st = Strides(s);
  Shape src_strides(o.shape.size(), 0);
  const size_t off = o.shape.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) src_strides[off + d] = s[d] == 1 ? 0 : st[d];
  StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, 0, DTypeSize(o.dtype),
              static_cast<uint8_t*>(o.data));
  return absl::OkStatus();
}

// ---- Concat (inputs -> output) and Split (input -> outputs) along `axis` -----------------------------

// `parts` stacked along `axis` make `whole`.
absl::Status CheckParts(int64_t axis, const TensorRef& whole, const Tensors& parts) {
  if (!Present(whole)) return RuleError("input is missing");
  if (auto st = CheckAxis(axis, whole.shape.size()); !st.ok()) return st;
  int64_t sum = 0;
  for (const TensorRef& p : parts) {
    if (!Present(p) || p.dtype != whole.dtype || p.shape.size() != whole.shape.size()) {
      return RuleError("parts differ in type or rank from the whole");
    }
    for (size_t d = 0; d < p.shape.size(); ++d) {
      if (static_cast<int64_t>(d) != axis && p.shape[d] != whole.shape[d]) {
        return RuleError(absl::StrCat("part ", ShapeString(p.shape), " differs from ", ShapeString(whole.shape),
                                      " off axis ", axis));
      }
    }
    sum += p.shape[axis];
  }
  if (sum != whole.shape[axis]) {
    return RuleError(absl::StrCat("parts add up to ", sum, " along axis ", axis, ", the whole has ", whole.shape[axis]));
  }
  return absl::OkStatus();
}

absl::Status ConcatRule(const AxisAttrs& a, const Tensors& in, const Tensors& out) {
  return CheckParts(a.axis, out[0], in);
}
absl::Status SplitRule(const AxisAttrs& a, const Tensors& in, const Tensors& out) {
  return CheckParts(a.axis, in[0], out);
}

template <bool kConcat>
absl::Status ConcatSplitKernel(const AxisAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  const int64_t axis = a.axis;
  const TensorRef& o = out[0];
  const size_t es = DTypeSize(o.dtype);
  const Shape& whole = kConcat ? o.shape : in[0].shape;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= whole[d];
  for (size_t d = axis + 1; d < whole.size(); ++d) inner *= whole[d];
  const auto& parts = kConcat ? in : out;
  const size_t nparts = parts.size();
  int64_t pos = 0;
  for (size_t p = 0; p < nparts; ++p) {
    const int64_t len = parts[p].shape[axis];
    auto* whole_ptr = static_cast<uint8_t*>(kConcat ? o.data : in[0].data);
    auto* part_ptr = static_cast<uint8_t*>(parts[p].data);
    for (int64_t i = 0; i < outer; ++i) {
      uint8_t* w = whole_ptr + ((i * whole[axis] + pos) * inner) * es;
      uint8_t* q = part_ptr + (i * len * inner) * es;
      if (kConcat) std::memcpy(w, q, len * inner * es);
      else std::memcpy(q, w, len * inner * es);
    }
    pos += len;
  }
  return absl::OkStatus();
}

// ---- Gather(data, indices) along axis; GatherElements -----------------------------------------------

absl::Status GatherRule(const AxisAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[1];
  if (!Present(data)) return RuleError("data is missing");
  if (auto st = ExpectDType(idx, "indices", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (auto st = CheckAxis(a.axis, data.shape.size()); !st.ok()) return st;
  Shape want(data.shape.begin(), data.shape.begin() + a.axis);
  want.insert(want.end(), idx.shape.begin(), idx.shape.end());
  want.insert(want.end(), data.shape.begin() + a.axis + 1, data.shape.end());
  return ExpectLike(out[0], "output", data.dtype, want);
}

absl::Status GatherKernel(const AxisAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  return Gather(a.axis, in[0], in[1], out[0]);
}

absl::Status GatherElementsRule(const AxisAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[1];
  if (!Present(data)) return RuleError("data is missing");
  if (auto st = ExpectDType(idx, "indices", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (idx.shape.size() != data.shape.size()) return RuleError("data and indices ranks differ");
  if (auto st = CheckAxis(a.axis, data.shape.size()); !st.ok()) return st;
  for (size_t d = 0; d < idx.shape.size(); ++d) {
    if (static_cast<int64_t>(d) != a.axis && idx.shape[d] > data.shape[d]) {
      return RuleError(absl::StrCat("indices ", ShapeString(idx.shape), " exceed data ", ShapeString(data.shape),
                                    " off the axis"));
    }
  }
  return ExpectLike(out[0], "output", data.dtype, idx.shape);
}

absl::Status GatherElementsKernel(const AxisAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  return GatherElements(a.axis, in[0], in[1], out[0]);
}

}  // namespace

void RegisterTensorOps(OpRegistry& r) {
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CopyRule, CopyKernel>("Copy", {1, 1}, {1, 1}, 0, /*in_place=*/0));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CopyRule, CopyKernel>("Reshape", {1, 1}, {1, 1}, 0, /*in_place=*/0));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, RangeRule, RangeKernel>("Range", {3, 3}, {1, 1}));
  r.Add(MakeOp<FillAttrs, ParseFill, FillRule, FillKernel>("ConstantOfShape", {0, 0}, {1, 1}));
  r.Add(MakeOp<TransposeAttrs, ParseTranspose, TransposeRule, TransposeKernel>("Transpose", {1, 1}, {1, 1}));
  r.Add(MakeOp<SliceAttrs, ParseSlice, SliceRule, SliceKernel>("Slice", {1, 1}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, ExpandRule, ExpandKernel>("Expand", {1, 1}, {1, 1}));
  r.Add(MakeOp<AxisAttrs, ParseAxis, ConcatRule, ConcatSplitKernel<true>>("Concat", {1, kAnyCount}, {1, 1}));
  r.Add(MakeOp<AxisAttrs, ParseAxis, SplitRule, ConcatSplitKernel<false>>("Split", {1, 1}, {1, kAnyCount}));
  r.Add(MakeOp<AxisAttrs, ParseAxis, GatherRule, GatherKernel>("Gather", {2, 2}, {1, 1}));
  r.Add(MakeOp<AxisAttrs, ParseAxis, GatherElementsRule, GatherElementsKernel>("GatherElements", {2, 2}, {1, 1}));
}

}  // namespace qeff::device
