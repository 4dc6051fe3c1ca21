// Neural-network kernels: Softmax, LayerNormalization, RMSNorm, RotaryHalf, ArgMax, reductions,
// and the KV-cache ops CtxScatter / CtxGather and their continuous-batching forms CtxScatterCB /
// CtxGatherCB (QEfficient's com.qualcomm.cloud custom ops).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/op_registry.h"
#include "device/cpu/vector_math.h"

namespace qeff::device {
namespace {


// outer x dim x inner decomposition around `axis`.
void Split3(const Shape& s, int64_t axis, int64_t* outer, int64_t* dim, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < axis; ++d) *outer *= s[d];
  *dim = s[axis];
  for (size_t d = axis + 1; d < s.size(); ++d) *inner *= s[d];
}

// `axis` of a normalizing op: -1 (absent) = the last one.
struct AxisAttrs {
  int64_t axis = -1;
};

int64_t AxisOr(const AxisAttrs& a, const TensorRef& x) {
  return a.axis >= 0 ? a.axis : static_cast<int64_t>(x.shape.size()) - 1;
}

absl::Status ParseLastAxis(AttrReader& r, AxisAttrs* a) {
  if (r.Has("axis")) {
    a->axis = r.Int("axis", 0);
    if (a->axis < 0) return RuleError(absl::StrCat("axis ", a->axis, " is negative (the compiler normalizes axes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckAxis(int64_t axis, const TensorRef& x) {
  if (x.shape.empty() || axis >= static_cast<int64_t>(x.shape.size())) {
    return RuleError(absl::StrCat("axis ", axis, " out of range for input ", ShapeString(x.shape)));
  }
  return absl::OkStatus();
}

absl::Status SoftmaxRule(const AxisAttrs& a, const Tensors& in, const Tensors& out) {
  if (auto st = ExpectDType(in[0], "input", {qeff::v1::F32}); !st.ok()) return st;
  if (auto st = CheckAxis(AxisOr(a, in[0]), in[0]); !st.ok()) return st;
  return ExpectLike(out[0], "output", qeff::v1::F32, in[0].shape);
}

absl::Status Softmax(const AxisAttrs& a, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const TensorRef& x = in[0];
  const TensorRef& o = out[0];
  int64_t outer, dim, inner;
  Split3(x.shape, AxisOr(a, x), &outer, &dim, &inner);
  const float* px = x.as<float>();
  float* po = o.as<float>();
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t a = r / inner, i = r % inner;
      const float* xr = px + a * dim * inner + i;
      float* yr = po + a * dim * inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < dim; ++k) mx = std::max(mx, xr[k * inner]);
      if (inner == 1) {  // contiguous row: vectorized exp
        const float inv = 1.0f / ExpShiftSum(xr, yr, dim, mx);
        for (int64_t k = 0; k < dim; ++k) yr[k] *= inv;
        continue;
      }
      float sum = 0;
      for (int64_t k = 0; k < dim; ++k) {
        float v = std::exp(xr[k * inner] - mx);
        yr[k * inner] = v;
        sum += v;
      }
      const float inv = 1.0f / sum;
      for (int64_t k = 0; k < dim; ++k) yr[k * inner] *= inv;
    }
  };
  const int64_t rows = outer * inner;
  if (pool && rows * dim >= (1 << 15)) pool->ParallelFor(rows, 8, body);
  else body(0, rows);
  return absl::OkStatus();
}

// Normalizes over the trailing dimensions from `axis`; LayerNorm subtracts the mean, RMSNorm not.
// in = (x, scale or absent, bias or absent), out = (y, mean, inv_std_dev) with the statistics
// optional (one per normalized row).
struct NormAttrs {
  AxisAttrs axis;
  float epsilon = 1e-5f;
  bool rms = false;
};

absl::Status ParseNorm(AttrReader& r, NormAttrs* a) {
  if (auto st = ParseLastAxis(r, &a->axis); !st.ok()) return st;
  a->epsilon = r.Float("epsilon", 1e-5f);
  a->rms = r.variant() == 1;
  if (!(a->epsilon > 0.0f && a->epsilon <= 1.0f)) return RuleError(absl::StrCat("epsilon ", a->epsilon, " not in (0, 1]"));
  return absl::OkStatus();
}

void NormRowsCols(const NormAttrs& a, const TensorRef& x, int64_t* rows, int64_t* cols) {
  const int64_t axis = AxisOr(a.axis, x);
  *rows = 1;
  *cols = 1;
  for (int64_t d = 0; d < axis; ++d) *rows *= x.shape[d];
  for (size_t d = axis; d < x.shape.size(); ++d) *cols *= x.shape[d];
}

absl::Status NormRule(const NormAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (auto st = ExpectDType(x, "input", {qeff::v1::F32}); !st.ok()) return st;
  if (auto st = CheckAxis(AxisOr(a.axis, x), x); !st.ok()) return st;
  int64_t rows, cols;
  NormRowsCols(a, x, &rows, &cols);
  for (size_t i = 1; i < in.size(); ++i) {
    if (!Present(in[i])) continue;
    const char* what = i == 1 ? "scale" : "bias";
    if (auto st = ExpectDType(in[i], what, {qeff::v1::F32}); !st.ok()) return st;
    if (in[i].numel() != cols) return RuleError(absl::StrCat(what, " has ", in[i].numel(), " elements, the normalized size is ", cols));
  }
  if (auto st = ExpectLike(out[0], "output", qeff::v1::F32, x.shape); !st.ok()) return st;
  for (size_t i = 1; i < out.size(); ++i) {
    if (auto st = ExpectDType(out[i], "statistics output", {qeff::v1::F32}); !st.ok()) return st;
    if (out[i].numel() != rows) return RuleError(absl::StrCat("statistics output has ", out[i].numel(), " elements for ", rows, " rows"));
  }
  return absl::OkStatus();
}

// sum of term(0..n) in double, in 8 interleaved partial sums added in a fixed order: within
// double rounding of the sequential sum, without its chain of dependent adds (a decode step
// normalizes ~25 rows per sequence; the chain made each 768-wide row cost ~1.5 µs).
template <typename Term>
double Sum8(int64_t n, Term term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int j = 0; j < 8; ++j) acc[j] += term(c + j);
  double s = 0;
  for (; c < n; ++c) s += term(c);
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

absl::Status Norm(const NormAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  const bool rms = a.rms;
  const TensorRef& o = out[0];
  float* mean_out = out.size() > 1 && out[1].data ? out[1].as<float>() : nullptr;
  float* inv_out = out.size() > 2 && out[2].data ? out[2].as<float>() : nullptr;
  const TensorRef& x = in[0];
  const float eps = a.epsilon;
  int64_t rows, cols;
  NormRowsCols(a, x, &rows, &cols);
  const float* w = in.size() > 1 && in[1].data ? in[1].as<float>() : nullptr;
  const float* b = in.size() > 2 && in[2].data ? in[2].as<float>() : nullptr;
  const float* px = x.as<float>();
  float* po = o.as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * cols;
    float* yr = po + r * cols;
    const double mean = rms ? 0.0 : Sum8(cols, [xr](int64_t c) { return static_cast<double>(xr[c]); }) / static_cast<double>(cols);
    const double var = Sum8(cols, [xr, mean](int64_t c) {
                         const double d = xr[c] - mean;
                         return d * d;
                       }) / static_cast<double>(cols);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float m = static_cast<float>(mean);
    if (mean_out) mean_out[r] = m;
    if (inv_out) inv_out[r] = inv;
    // One loop per case, so each vectorizes (same arithmetic as with the checks inside).
    if (w && b) {
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * inv * w[c] + b[c];
    } else if (w) {
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * inv * w[c];
    } else if (b) {
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * inv + b[c];
    } else {
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * inv;
    }
  }
  return absl::OkStatus();
}

struct ArgMaxAttrs {
  int64_t axis = 0;
  bool select_last_index = false;
};

absl::Status ParseArgMax(AttrReader& r, ArgMaxAttrs* a) {
  a->axis = r.Int("axis", 0);
  const int64_t last = r.Int("select_last_index", 0);
  if (a->axis < 0) return RuleError(absl::StrCat("axis ", a->axis, " is negative (the compiler normalizes axes)"));
  if (last != 0 && last != 1) return RuleError(absl::StrCat("select_last_index ", last, " is not 0 or 1"));
  a->select_last_index = last != 0;
  return absl::OkStatus();
}

absl::Status ArgMaxRule(const ArgMaxAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (auto st = ExpectDType(x, "input", {qeff::v1::F32, qeff::v1::I64}); !st.ok()) return st;
  if (auto st = CheckAxis(a.axis, x); !st.ok()) return st;
  if (auto st = ExpectDType(out[0], "output", {qeff::v1::I64}); !st.ok()) return st;
  Shape kept = x.shape, dropped = x.shape;
  kept[a.axis] = 1;
  dropped.erase(dropped.begin() + a.axis);
  if (out[0].shape != kept && out[0].shape != dropped) {
    return RuleError(absl::StrCat("output ", ShapeString(out[0].shape), " is not input ", ShapeString(x.shape),
                                  " reduced along axis ", a.axis));
  }
  return absl::OkStatus();
}

absl::Status ArgMax(const ArgMaxAttrs& a, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& x = in[0];
  const TensorRef& o = out[0];
  int64_t outer, dim, inner;
  Split3(x.shape, a.axis, &outer, &dim, &inner);
  const bool last = a.select_last_index;
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      double bv = 0;
      for (int64_t k = 0; k < dim; ++k) {
        const int64_t e = (a * dim + k) * inner + i;
        double v = x.dtype == qeff::v1::F32 ? x.as<float>()[e] : static_cast<double>(x.as<int64_t>()[e]);
        if (k == 0 || v > bv || (last && v == bv)) {
          bv = v;
          best = k;
        }
      }
      o.as<int64_t>()[a * inner + i] = best;
    }
  }
  return absl::OkStatus();
}

enum class ReduceKind { kMean, kSum, kMax };

struct ReduceAttrs {
  ReduceKind kind = ReduceKind::kMean;
  Shape axes;  // empty: all
};

absl::Status ParseReduce(AttrReader& r, ReduceAttrs* a) {
  a->kind = static_cast<ReduceKind>(r.variant());
  a->axes = r.Ints("axes");
  return absl::OkStatus();
}

absl::Status ReduceRule(const ReduceAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (auto st = ExpectDType(x, "input", {qeff::v1::F32}); !st.ok()) return st;
  const int r = static_cast<int>(x.shape.size());
  std::vector<bool> reduced(r, a.axes.empty());
  for (int64_t ax : a.axes) {
    if (ax < 0 || ax >= r || reduced[ax]) {
      return RuleError(absl::StrCat("axes must be distinct axes of input ", ShapeString(x.shape)));
    }
    reduced[ax] = true;
  }
  Shape kept, ones;
  for (int d = 0; d < r; ++d) {
    if (!reduced[d]) kept.push_back(x.shape[d]);
    ones.push_back(reduced[d] ? 1 : x.shape[d]);
  }
  if (auto st = ExpectDType(out[0], "output", {qeff::v1::F32}); !st.ok()) return st;
  if (out[0].shape != kept && out[0].shape != ones) {
    return RuleError(absl::StrCat("output ", ShapeString(out[0].shape), " is not input ", ShapeString(x.shape),
                                  " reduced over its axes"));
  }
  return absl::OkStatus();
}

absl::Status Reduce(const ReduceAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& x = in[0];
  const TensorRef& o = out[0];
  Shape axes = attrs.axes;
  const int r = static_cast<int>(x.shape.size());
  if (axes.empty()) {
    for (int d = 0; d < r; ++d) axes.push_back(d);
  }
  std::vector<bool> reduced(r, false);
  for (int64_t a : axes) reduced[a] = true;
  int64_t count = 1;
  for (int d = 0; d < r; ++d)
    if (reduced[d]) count *= x.shape[d];
  const int64_t n_out = o.numel();
  const bool is_max = attrs.kind == ReduceKind::kMax;
  std::vector<double> acc(n_out, is_max ? -std::numeric_limits<double>::infinity() : 0.0);
  // Output strides over the kept dimensions.
  Shape kept_strides(r, 0);
  int64_t s = 1;
  for (int d = r - 1; d >= 0; --d) {
    if (!reduced[d]) {
      kept_strides[d] = s;
      s *= x.shape[d];
    }
  }
  Shape idx(r, 0);
  const int64_t total = x.numel();
  for (int64_t e = 0; e < total; ++e) {
    int64_t oi = 0;
    for (int d = 0; d < r; ++d) oi += idx[d] * kept_strides[d];
    const double v = x.as<float>()[e];
    if (is_max) acc[oi] = std::max(acc[oi], v);
    else acc[oi] += v;
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < n_out; ++i) {
    o.as<float>()[i] = static_cast<float>(attrs.kind == ReduceKind::kMean ? acc[i] / static_cast<double>(count) : acc[i]);
  }
  return absl::OkStatus();
}

// Integer element i of an int32/int64 tensor.
int64_t IndexAt(const TensorRef& t, int64_t i) {
  return t.dtype == qeff::v1::I32 ? t.as<int32_t>()[i] : t.as<int64_t>()[i];
}

// One cache row of D values: a copy, or float32 -> bfloat16 into a bf16 cache (--kv-cache-dtype
// bf16), or bfloat16 -> float32 out of one.
void CopyRow(void* dst, DType dst_type, const void* src, DType src_type, int64_t D) {
  if (dst_type == src_type) {
    std::memcpy(dst, src, static_cast<size_t>(D) * DTypeSize(dst_type));
  } else if (dst_type == qeff::v1::BF16) {
    for (int64_t d = 0; d < D; ++d) static_cast<uint16_t*>(dst)[d] = FloatToBf16(static_cast<const float*>(src)[d]);
  } else {
    for (int64_t d = 0; d < D; ++d) static_cast<float*>(dst)[d] = Bf16ToFloat(static_cast<const uint16_t*>(src)[d]);
  }
}

// The write both scatters share: out = data, then out[row(b), h, pos[b,s]] = updates[b,h,s] for
// positions inside [0, C); `wrap_negative` first maps negative positions to C + p (CtxScatter's
// padding slot C-1). row(b) = batch_index[b] when given (already checked), else b.
void ScatterRows(const TensorRef& data, const TensorRef* batch_index, const TensorRef& pos, const TensorRef& upd,
                 bool wrap_negative, const TensorRef& o) {
  const int64_t B = upd.shape[0], H = upd.shape[1], S = upd.shape[2], D = upd.shape[3], C = data.shape[2];
  if (o.data != data.data && data.bytes() > 0) std::memcpy(o.data, data.data, data.bytes());
  const size_t es = DTypeSize(data.dtype), us = DTypeSize(upd.dtype);
  auto* dst = static_cast<uint8_t*>(o.data);
  const auto* src = static_cast<const uint8_t*>(upd.data);
  const int64_t pos_b = pos.shape[0] == 1 ? 0 : 1;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = batch_index != nullptr ? IndexAt(*batch_index, b) : b;
    for (int64_t s = 0; s < S; ++s) {
      int64_t p = IndexAt(pos, b * pos_b * S + s);
      if (p < 0 && wrap_negative) p += C;
      if (p < 0 || p >= C) continue;
      for (int64_t h = 0; h < H; ++h) {
        CopyRow(dst + (((row * H + h) * C) + p) * D * es, data.dtype, src + (((b * H + h) * S) + s) * D * us,
                upd.dtype, D);
      }
    }
  }
}

// ---- KV cache ops ------------------------------------------------------------------------------
// A cache is float32, or bfloat16 (--kv-cache-dtype bf16): scatters round float32 rows into it,
// gathers read it back as float32.

// data [B,H,C,D], position_ids [B|1,S], updates [B,H,S,D] -> data with rows written at the
// positions. Negative positions count from the end (QEfficient writes pads to slot C-1);
// positions still outside [0, C) (the INT32_MAX sentinel) are skipped. Output 0 may be data
// itself (in place into the retained state).
absl::Status CtxScatterRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& pos = in[1];
  const TensorRef& upd = in[2];
  if (!Present(data) || !Present(upd)) return RuleError("data or updates is missing");
  if (auto st = ExpectDType(pos, "position_ids", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (data.shape.size() != 4 || upd.shape.size() != 4 || pos.shape.size() != 2 || !CacheTakes(data.dtype, upd.dtype) ||
      upd.shape[0] != data.shape[0] || upd.shape[1] != data.shape[1] || upd.shape[3] != data.shape[3] ||
      (pos.shape[0] != 1 && pos.shape[0] != upd.shape[0]) || pos.shape[1] != upd.shape[2]) {
    return RuleError(absl::StrCat("expects data [B,H,C,D], position_ids [B,S], updates [B,H,S,D] of data's type (or "
                                  "float32 into a bfloat16 cache); got data ",
                                  ShapeString(data.shape), ", position_ids ", ShapeString(pos.shape), ", updates ",
                                  ShapeString(upd.shape)));
  }
  return ExpectLike(out[0], "output", data.dtype, data.shape);
}

absl::Status CtxScatter(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  ScatterRows(in[0], nullptr, in[1], in[2], /*wrap_negative=*/true, out[0]);
  return absl::OkStatus();
}

// data [B,H,C,D], ctx_indices (any shape holding L indices) -> [B,H,L,D].
absl::Status CtxGatherRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[1];
  if (!Present(data)) return RuleError("data is missing");
  if (auto st = ExpectRank(data, "data", 4); !st.ok()) return st;
  if (auto st = ExpectDType(idx, "ctx_indices", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  return ExpectLike(out[0], "output", GatheredType(data.dtype), {data.shape[0], data.shape[1], idx.numel(), data.shape[3]});
}

absl::Status CtxGather(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[1];
  const TensorRef& o = out[0];
  const int64_t BH = data.shape[0] * data.shape[1], C = data.shape[2], D = data.shape[3];
  const int64_t L = idx.numel();
  const size_t es = DTypeSize(data.dtype), os = DTypeSize(o.dtype);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = IndexAt(idx, l);
    if (p < 0 || p >= C) return absl::InvalidArgumentError(absl::StrCat("CtxGather index ", p, " outside [0, ", C, ")"));
    for (int64_t bh = 0; bh < BH; ++bh) {
      CopyRow(static_cast<uint8_t*>(o.data) + ((bh * L) + l) * D * os, o.dtype,
              static_cast<const uint8_t*>(data.data) + ((bh * C) + p) * D * es, data.dtype, D);
    }
  }
  return absl::OkStatus();
}

// batch_index [B,1] (or [B]) of an index type: its shape (the rule).
absl::Status BatchIndexRule(const TensorRef& bidx, int64_t batch) {
  if (auto st = ExpectDType(bidx, "batch_index", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (bidx.shape.empty() || bidx.shape[0] != batch || bidx.numel() != batch) {
    return RuleError(absl::StrCat("batch_index must be [", batch, ",1], got ", ShapeString(bidx.shape)));
  }
  return absl::OkStatus();
}

// batch_index values must name rows of a cache with `rows` rows; checked before anything is
// written, so a bad index leaves the cache untouched.
absl::Status CheckBatchIndex(const char* op, const TensorRef& bidx, int64_t batch, int64_t rows) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t r = IndexAt(bidx, b);
    if (r < 0 || r >= rows) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": batch_index[", b, "] = ", r, " is not a KV slot in [0, ",
                                                     rows, "); use a slot below full_batch_size"));
    }
  }
  return absl::OkStatus();
}

// data [FBS,H,C,D], batch_index [B,1], position_ids [B|1,S], updates [B,H,S,D] -> data with
// out[batch_index[b], h, position_ids[b,s]] = updates[b,h,s]. Negative positions (padding) and
// positions outside [0, C) are dropped.
absl::Status CtxScatterCBRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& pos = in[2];
  const TensorRef& upd = in[3];
  if (!Present(data) || !Present(upd)) return RuleError("data or updates is missing");
  if (auto st = ExpectDType(pos, "position_ids", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (data.shape.size() != 4 || upd.shape.size() != 4 || pos.shape.size() != 2 || !CacheTakes(data.dtype, upd.dtype) ||
      upd.shape[1] != data.shape[1] || upd.shape[3] != data.shape[3] ||
      (pos.shape[0] != 1 && pos.shape[0] != upd.shape[0]) || pos.shape[1] != upd.shape[2]) {
    return RuleError(absl::StrCat(
        "expects data [FBS,H,C,D], batch_index [B,1], position_ids [B,S], updates [B,H,S,D]; got data ",
        ShapeString(data.shape), ", position_ids ", ShapeString(pos.shape), ", updates ", ShapeString(upd.shape)));
  }
  if (auto st = BatchIndexRule(in[1], upd.shape[0]); !st.ok()) return st;
  return ExpectLike(out[0], "output", data.dtype, data.shape);
}

absl::Status CtxScatterCB(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& data = in[0];
  const TensorRef& bidx = in[1];
  const TensorRef& upd = in[3];
  absl::Status st = CheckBatchIndex("CtxScatterCB", bidx, upd.shape[0], data.shape[0]);
  if (!st.ok()) return st;
  ScatterRows(data, &bidx, in[2], upd, /*wrap_negative=*/false, out[0]);
  return absl::OkStatus();
}

// data [FBS,H,C,D], batch_index [B,1], ctx_indices (L indices) -> [B,H,L,D] with
// out[b,h,l] = data[batch_index[b], h, ctx_indices[l]].
absl::Status CtxGatherCBRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[2];
  const TensorRef& o = out[0];
  if (!Present(data)) return RuleError("data is missing");
  if (auto st = ExpectRank(data, "data", 4); !st.ok()) return st;
  if (auto st = ExpectRank(o, "output", 4); !st.ok()) return st;
  if (auto st = ExpectDType(idx, "ctx_indices", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
  if (auto st = BatchIndexRule(in[1], o.shape[0]); !st.ok()) return st;
  return ExpectLike(o, "output", GatheredType(data.dtype), {o.shape[0], data.shape[1], idx.numel(), data.shape[3]});
}

absl::Status CtxGatherCB(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& data = in[0];
  const TensorRef& bidx = in[1];
  const TensorRef& idx = in[2];
  const TensorRef& o = out[0];
  const int64_t B = o.shape[0], H = data.shape[1], C = data.shape[2], D = data.shape[3];
  const int64_t L = idx.numel();
  absl::Status st = CheckBatchIndex("CtxGatherCB", bidx, B, data.shape[0]);
  if (!st.ok()) return st;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = IndexAt(idx, l);
    if (p < 0 || p >= C) return absl::InvalidArgumentError(absl::StrCat("CtxGatherCB index ", p, " outside [0, ", C, ")"));
  }
  const size_t es = DTypeSize(data.dtype), os = DTypeSize(o.dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = IndexAt(bidx, b);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t l = 0; l < L; ++l) {
        CopyRow(static_cast<uint8_t*>(o.data) + (((b * H + h) * L) + l) * D * os, o.dtype,
                static_cast<const uint8_t*>(data.data) + (((row * H + h) * C) + IndexAt(idx, l)) * D * es, data.dtype, D);
      }
    }
  }
  return absl::OkStatus();
}

// ---- RotaryHalf: x·cos + rotate_half(x)·sin over the last axis ---------------------------------
// Not ONNX: the compiler's FuseRotaryHalf emits it for the exporter's 6-op rotate_half rotary
// chain (Split, Neg, Concat, Mul, Mul, Add), with rotate_half(x) = cat(-x[h:], x[:h]), h = D/2.
// x [B, H, S, D]; cos and sin have x's rank with each leading axis x's size or 1 (broadcast).
// Each output is the chain's own arithmetic: two products rounded, then their sum (the device
// library is built with -ffp-contract=off, so they never become one FMA).

// Element strides of a broadcast table over x's leading axes (0 where the table's axis is 1).
void TableStrides(const TensorRef& t, const TensorRef& x, int64_t stride[3]) {
  const int64_t D = x.shape[3];
  int64_t s = D;
  for (int d = 2; d >= 0; --d) {
    stride[d] = t.shape[d] == 1 ? 0 : s;
    s *= t.shape[d];
  }
}

absl::Status RotaryHalfRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  if (auto st = ExpectDType(x, "x", {qeff::v1::F32}); !st.ok()) return st;
  if (x.shape.size() != 4 || x.shape[3] < 2 || x.shape[3] % 2 != 0) {
    return RuleError(absl::StrCat("x ", ShapeString(x.shape), " is not [B, H, S, D] with an even D"));
  }
  for (int i = 1; i <= 2; ++i) {
    const TensorRef& t = in[i];
    const char* name = i == 1 ? "cos" : "sin";
    if (auto st = ExpectDType(t, name, {qeff::v1::F32}); !st.ok()) return st;
    bool ok = t.shape.size() == 4 && t.shape[3] == x.shape[3];
    for (size_t d = 0; ok && d < 3; ++d) ok = t.shape[d] == x.shape[d] || t.shape[d] == 1;
    if (!ok) {
      return RuleError(absl::StrCat(name, " ", ShapeString(t.shape), " does not broadcast to x ", ShapeString(x.shape),
                                    " over its leading axes"));
    }
  }
  return ExpectLike(out[0], "output", qeff::v1::F32, x.shape);
}

absl::Status RotaryHalf(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const TensorRef& x = in[0];
  const int64_t H = x.shape[1], S = x.shape[2], D = x.shape[3], h = D / 2;
  int64_t cs[3], ss[3];
  TableStrides(in[1], x, cs);
  TableStrides(in[2], x, ss);
  const float* px = x.as<float>();
  const float* pc = in[1].as<float>();
  const float* psn = in[2].as<float>();
  float* po = out[0].as<float>();
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / (H * S), hd = r / S % H, s = r % S;
      const float* xr = px + r * D;
      const float* c = pc + b * cs[0] + hd * cs[1] + s * cs[2];
      const float* sn = psn + b * ss[0] + hd * ss[1] + s * ss[2];
      float* o = po + r * D;
      for (int64_t i = 0; i < h; ++i) {
        const float a = xr[i] * c[i], rs = -xr[i + h] * sn[i];
        o[i] = a + rs;
      }
      for (int64_t i = h; i < D; ++i) {
        const float a = xr[i] * c[i], rs = xr[i - h] * sn[i];
        o[i] = a + rs;
      }
    }
  };
  const int64_t rows = x.numel() / D;
  if (pool && rows * D >= (1 << 16)) pool->ParallelFor(rows, 16, body);
  else body(0, rows);
  return absl::OkStatus();
}

}  // namespace

void RegisterNnOps(OpRegistry& r) {
  r.Add(MakeOp<AxisAttrs, ParseLastAxis, SoftmaxRule, Softmax>("Softmax", {1, 1}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, RotaryHalfRule, RotaryHalf>("RotaryHalf", {3, 3}, {1, 1}));
  r.Add(MakeOp<NormAttrs, ParseNorm, NormRule, Norm>("LayerNormalization", {1, 3}, {1, 3}, /*rms=*/0));
  r.Add(MakeOp<NormAttrs, ParseNorm, NormRule, Norm>("RMSNorm", {1, 3}, {1, 3}, /*rms=*/1));
  r.Add(MakeOp<ArgMaxAttrs, ParseArgMax, ArgMaxRule, ArgMax>("ArgMax", {1, 1}, {1, 1}));
  r.Add(MakeOp<ReduceAttrs, ParseReduce, ReduceRule, Reduce>("ReduceMean", {1, 1}, {1, 1},
                                                              static_cast<int>(ReduceKind::kMean)));
  r.Add(MakeOp<ReduceAttrs, ParseReduce, ReduceRule, Reduce>("ReduceSum", {1, 1}, {1, 1},
                                                              static_cast<int>(ReduceKind::kSum)));
  r.Add(MakeOp<ReduceAttrs, ParseReduce, ReduceRule, Reduce>("ReduceMax", {1, 1}, {1, 1},
                                                              static_cast<int>(ReduceKind::kMax)));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CtxScatterRule, CtxScatter>("CtxScatter", {3, 3}, {1, 1}, 0, /*in_place=*/0));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CtxGatherRule, CtxGather>("CtxGather", {2, 2}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CtxScatterCBRule, CtxScatterCB>("CtxScatterCB", {4, 4}, {1, 1}, 0,
                                                                      /*in_place=*/0));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CtxGatherCBRule, CtxGatherCB>("CtxGatherCB", {3, 3}, {1, 1}));
}

}  // namespace qeff::device
