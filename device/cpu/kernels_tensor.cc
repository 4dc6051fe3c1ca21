// Data-movement kernels: Transpose, Concat, Split, Slice, Expand, Gather, GatherElements,
// copies (Reshape when the planner could not alias), and Range / ConstantOfShape for folding.
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"

namespace qeff::device {
namespace {

using qeff::v1::Op;

// Reshape-like ONNX ops (Identity, Squeeze, Unsqueeze, Flatten) all arrive as "Reshape", and
// Shape is always a compile-time constant.
const std::set<std::string> kTensorOps = {"Transpose", "Concat", "Split", "Slice", "Expand", "Gather",
                                          "GatherElements", "Copy", "Reshape", "Range", "ConstantOfShape"};

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

absl::Status Gather(const Op& op, const TensorRef& data, const TensorRef& idx, const TensorRef& o) {
  const int64_t axis = AttrInt(op, "axis", 0);
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

absl::Status GatherElements(const Op& op, const TensorRef& data, const TensorRef& idx, const TensorRef& o) {
  const int64_t axis = AttrInt(op, "axis", 0);
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

}  // namespace

bool IsTensorOp(const std::string& type) { return kTensorOps.count(type) > 0; }

absl::Status RunTensorOp(const Op& op, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out,
                         ThreadPool* pool) {
  const std::string& t = op.type();
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(t, " has no outputs"));
  const TensorRef& o = out[0];
  const size_t es = DTypeSize(o.dtype);
  if (t == "Copy" || t == "Reshape") {
    if (in.empty() || in[0].bytes() != o.bytes()) return absl::InvalidArgumentError(absl::StrCat(t, ": size mismatch"));
    if (o.bytes() > 0 && in[0].data != o.data) std::memmove(o.data, in[0].data, o.bytes());
    return absl::OkStatus();
  }
  if (t == "Range") {
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
  if (t == "ConstantOfShape") {
    const int64_t n = o.numel();
    if (o.dtype == qeff::v1::F32) {
      std::fill(o.as<float>(), o.as<float>() + n, AttrFloat(op, "value_f", 0.0f));
    } else if (o.dtype == qeff::v1::I64) {
      std::fill(o.as<int64_t>(), o.as<int64_t>() + n, AttrInt(op, "value_i", 0));
    } else if (o.dtype == qeff::v1::I32) {
      std::fill(o.as<int32_t>(), o.as<int32_t>() + n, static_cast<int32_t>(AttrInt(op, "value_i", 0)));
    } else {
      std::fill(o.as<uint8_t>(), o.as<uint8_t>() + n, static_cast<uint8_t>(AttrInt(op, "value_i", 0)));
    }
    return absl::OkStatus();
  }
  if (t == "Transpose") {
    const Shape perm = AttrInts(op, "perm");
    const Shape is = Strides(in[0].shape);
    Shape src_strides(perm.size());
    for (size_t d = 0; d < perm.size(); ++d) src_strides[d] = is[perm[d]];
    StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, 0, es, static_cast<uint8_t*>(o.data));
    return absl::OkStatus();
  }
  if (t == "Slice") {
    const Shape starts = AttrInts(op, "starts"), steps = AttrInts(op, "steps");
    const Shape is = Strides(in[0].shape);
    Shape src_strides(o.shape.size());
    int64_t base = 0;
    for (size_t d = 0; d < o.shape.size(); ++d) {
      src_strides[d] = is[d] * steps[d];
      base += starts[d] * is[d];
    }
    StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, base, es, static_cast<uint8_t*>(o.data));
    return absl::OkStatus();
  }
  if (t == "Expand") {
    const Shape& s = in[0].shape;
    Shape st = Strides(s);
    Shape src_strides(o.shape.size(), 0);
    const size_t off = o.shape.size() - s.size();
    for (size_t d = 0; d < s.size(); ++d) src_strides[off + d] = s[d] == 1 ? 0 : st[d];
    StridedCopy(static_cast<const uint8_t*>(in[0].data), o.shape, src_strides, 0, es, static_cast<uint8_t*>(o.data));
    return absl::OkStatus();
  }
  if (t == "Concat" || t == "Split") {
    const int64_t axis = AttrInt(op, "axis", 0);
    const Shape& whole = t == "Concat" ? o.shape : in[0].shape;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= whole[d];
    for (size_t d = axis + 1; d < whole.size(); ++d) inner *= whole[d];
    const auto& parts = t == "Concat" ? in : out;
    const size_t nparts = t == "Concat" ? in.size() : out.size();
    int64_t pos = 0;
    for (size_t p = 0; p < nparts; ++p) {
      const int64_t len = parts[p].shape[axis];
      auto* whole_ptr = static_cast<uint8_t*>(t == "Concat" ? o.data : in[0].data);
      auto* part_ptr = static_cast<uint8_t*>(parts[p].data);
      for (int64_t a = 0; a < outer; ++a) {
        uint8_t* w = whole_ptr + ((a * whole[axis] + pos) * inner) * es;
        uint8_t* q = part_ptr + (a * len * inner) * es;
        if (t == "Concat") std::memcpy(w, q, len * inner * es);
        else std::memcpy(q, w, len * inner * es);
      }
      pos += len;
    }
    return absl::OkStatus();
  }
  if (t == "Gather") return Gather(op, in[0], in[1], o);
  if (t == "GatherElements") return GatherElements(op, in[0], in[1], o);
  return absl::UnimplementedError(absl::StrCat("tensor op ", t));
}

}  // namespace qeff::device
