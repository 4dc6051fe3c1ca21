// Neural-network kernels: Softmax, LayerNormalization, RMSNorm, ArgMax, reductions, and the
// KV-cache ops CtxScatter / CtxGather and their continuous-batching forms CtxScatterCB /
// CtxGatherCB (QEfficient's com.qualcomm.cloud custom ops).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/vector_math.h"

namespace qeff::device {
namespace {

using qeff::v1::Op;

const std::set<std::string> kNnOps = {"Softmax", "LayerNormalization", "RMSNorm", "ArgMax", "ReduceMean",
                                      "ReduceSum", "ReduceMax", "CtxScatter", "CtxGather",
                                      "CtxScatterCB", "CtxGatherCB"};

// outer x dim x inner decomposition around `axis`.
void Split3(const Shape& s, int64_t axis, int64_t* outer, int64_t* dim, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < axis; ++d) *outer *= s[d];
  *dim = s[axis];
  for (size_t d = axis + 1; d < s.size(); ++d) *inner *= s[d];
}

absl::Status Softmax(const Op& op, const TensorRef& x, const TensorRef& o, ThreadPool* pool) {
  int64_t outer, dim, inner;
  Split3(x.shape, AttrInt(op, "axis", static_cast<int64_t>(x.shape.size()) - 1), &outer, &dim, &inner);
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
absl::Status Norm(const Op& op, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out, bool rms) {
  const TensorRef& o = out[0];
  float* mean_out = out.size() > 1 && out[1].data ? out[1].as<float>() : nullptr;
  float* inv_out = out.size() > 2 && out[2].data ? out[2].as<float>() : nullptr;
  const TensorRef& x = in[0];
  const int64_t axis = AttrInt(op, "axis", static_cast<int64_t>(x.shape.size()) - 1);
  const float eps = AttrFloat(op, "epsilon", 1e-5f);
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < axis; ++d) rows *= x.shape[d];
  for (size_t d = axis; d < x.shape.size(); ++d) cols *= x.shape[d];
  const float* w = in.size() > 1 && in[1].data ? in[1].as<float>() : nullptr;
  const float* b = in.size() > 2 && in[2].data ? in[2].as<float>() : nullptr;
  if (w && in[1].numel() != cols) return absl::InvalidArgumentError("norm weight size differs from the normalized size");
  if (b && in[2].numel() != cols) return absl::InvalidArgumentError("norm bias size differs from the normalized size");
  const float* px = x.as<float>();
  float* po = o.as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * cols;
    float* yr = po + r * cols;
    double mean = 0;
    if (!rms) {
      for (int64_t c = 0; c < cols; ++c) mean += xr[c];
      mean /= static_cast<double>(cols);
    }
    double var = 0;
    for (int64_t c = 0; c < cols; ++c) {
      double d = xr[c] - mean;
      var += d * d;
    }
    var /= static_cast<double>(cols);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float m = static_cast<float>(mean);
    if (mean_out) mean_out[r] = m;
    if (inv_out) inv_out[r] = inv;
    for (int64_t c = 0; c < cols; ++c) {
      float v = (xr[c] - m) * inv;
      if (w) v *= w[c];
      if (b) v += b[c];
      yr[c] = v;
    }
  }
  return absl::OkStatus();
}

absl::Status ArgMax(const Op& op, const TensorRef& x, const TensorRef& o) {
  int64_t outer, dim, inner;
  Split3(x.shape, AttrInt(op, "axis", 0), &outer, &dim, &inner);
  const bool last = AttrInt(op, "select_last_index", 0) != 0;
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

absl::Status Reduce(const Op& op, const TensorRef& x, const TensorRef& o) {
  if (x.dtype != qeff::v1::F32) return absl::UnimplementedError(absl::StrCat(op.type(), " on non-float32"));
  Shape axes = AttrInts(op, "axes");
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
  std::vector<double> acc(n_out, op.type() == "ReduceMax" ? -std::numeric_limits<double>::infinity() : 0.0);
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
    if (op.type() == "ReduceMax") acc[oi] = std::max(acc[oi], v);
    else acc[oi] += v;
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < n_out; ++i) {
    o.as<float>()[i] = static_cast<float>(op.type() == "ReduceMean" ? acc[i] / static_cast<double>(count) : acc[i]);
  }
  return absl::OkStatus();
}

// Integer element i of an int32/int64 tensor.
int64_t IndexAt(const TensorRef& t, int64_t i) {
  return t.dtype == qeff::v1::I32 ? t.as<int32_t>()[i] : t.as<int64_t>()[i];
}
bool IsIndexType(const TensorRef& t) { return t.dtype == qeff::v1::I64 || t.dtype == qeff::v1::I32; }

// The write both scatters share: out = data, then out[row(b), h, pos[b,s]] = updates[b,h,s] for
// positions inside [0, C); `wrap_negative` first maps negative positions to C + p (CtxScatter's
// padding slot C-1). row(b) = batch_index[b] when given (already checked), else b.
void ScatterRows(const TensorRef& data, const TensorRef* batch_index, const TensorRef& pos, const TensorRef& upd,
                 bool wrap_negative, const TensorRef& o) {
  const int64_t B = upd.shape[0], H = upd.shape[1], S = upd.shape[2], D = upd.shape[3], C = data.shape[2];
  if (o.data != data.data && data.bytes() > 0) std::memcpy(o.data, data.data, data.bytes());
  const size_t es = DTypeSize(data.dtype);
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
        std::memcpy(dst + (((row * H + h) * C) + p) * D * es, src + (((b * H + h) * S) + s) * D * es, D * es);
      }
    }
  }
}

// data [B,H,C,D], position_ids [B,S], updates [B,H,S,D] -> data with rows written at the
// positions. Negative positions count from the end (QEfficient writes pads to slot C-1);
// positions still outside [0, C) (the INT32_MAX sentinel) are skipped.
absl::Status CtxScatter(const std::vector<TensorRef>& in, const TensorRef& o) {
  const TensorRef& data = in[0];
  const TensorRef& pos = in[1];
  const TensorRef& upd = in[2];
  if (data.shape.size() != 4 || upd.shape.size() != 4 || pos.shape.size() != 2) {
    return absl::InvalidArgumentError("CtxScatter expects data [B,H,C,D], position_ids [B,S], updates [B,H,S,D]");
  }
  ScatterRows(data, nullptr, pos, upd, /*wrap_negative=*/true, o);
  return absl::OkStatus();
}

// data [B,H,C,D], ctx_indices (any shape holding L indices) -> [B,H,L,D].
absl::Status CtxGather(const std::vector<TensorRef>& in, const TensorRef& o) {
  const TensorRef& data = in[0];
  const TensorRef& idx = in[1];
  if (data.shape.size() != 4) return absl::InvalidArgumentError("CtxGather expects data [B,H,C,D]");
  const int64_t BH = data.shape[0] * data.shape[1], C = data.shape[2], D = data.shape[3];
  const int64_t L = idx.numel();
  const size_t es = DTypeSize(data.dtype);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = IndexAt(idx, l);
    if (p < 0 || p >= C) return absl::InvalidArgumentError(absl::StrCat("CtxGather index ", p, " outside [0, ", C, ")"));
    for (int64_t bh = 0; bh < BH; ++bh) {
      std::memcpy(static_cast<uint8_t*>(o.data) + ((bh * L) + l) * D * es,
                  static_cast<const uint8_t*>(data.data) + ((bh * C) + p) * D * es, D * es);
    }
  }
  return absl::OkStatus();
}


// batch_index [B,1] (or [B]) must name rows of a cache with `rows` rows; checked before anything
// is written, so a bad index leaves the cache untouched.
absl::Status CheckBatchIndex(const char* op, const TensorRef& bidx, int64_t batch, int64_t rows) {
  if (!IsIndexType(bidx)) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": batch_index must be int64"));
  }
  if (bidx.shape.empty() || bidx.shape[0] != batch || bidx.numel() != batch) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": batch_index must be [", batch, ",1], got ",
                                                   ShapeString(bidx.shape)));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t r = IndexAt(bidx, b);
    if (r < 0 || r >= rows) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": batch_index[", b, "] = ", r, " is not a KV slot in [0, ",
                                                     rows, "); use a slot below full_batch_size"));
    }
  }
  return absl::OkStatus();
}

// data [FBS,H,C,D], batch_index [B,1], position_ids [B,S], updates [B,H,S,D] -> data with
// out[batch_index[b], h, position_ids[b,s]] = updates[b,h,s]. Negative positions (padding) and
// positions outside [0, C) are dropped.
absl::Status CtxScatterCB(const std::vector<TensorRef>& in, const TensorRef& o) {
  const TensorRef& data = in[0];
  const TensorRef& bidx = in[1];
  const TensorRef& pos = in[2];
  const TensorRef& upd = in[3];
  if (!IsIndexType(pos)) return absl::InvalidArgumentError("CtxScatterCB: position_ids must be int64");
  if (data.shape.size() != 4 || upd.shape.size() != 4 || pos.shape.size() != 2 || upd.dtype != data.dtype ||
      upd.shape[1] != data.shape[1] || upd.shape[3] != data.shape[3] ||
      (pos.shape[0] != 1 && pos.shape[0] != upd.shape[0]) || pos.shape[1] != upd.shape[2]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CtxScatterCB expects data [FBS,H,C,D], batch_index [B,1], position_ids [B,S], updates [B,H,S,D]; got data ",
        ShapeString(data.shape), ", position_ids ", ShapeString(pos.shape), ", updates ", ShapeString(upd.shape)));
  }
  absl::Status st = CheckBatchIndex("CtxScatterCB", bidx, upd.shape[0], data.shape[0]);
  if (!st.ok()) return st;
  ScatterRows(data, &bidx, pos, upd, /*wrap_negative=*/false, o);
  return absl::OkStatus();
}

// data [FBS,H,C,D], batch_index [B,1], ctx_indices (L indices) -> [B,H,L,D] with
// out[b,h,l] = data[batch_index[b], h, ctx_indices[l]].
absl::Status CtxGatherCB(const std::vector<TensorRef>& in, const TensorRef& o) {
  const TensorRef& data = in[0];
  const TensorRef& bidx = in[1];
  const TensorRef& idx = in[2];
  if (data.shape.size() != 4 || o.shape.size() != 4) {
    return absl::InvalidArgumentError("CtxGatherCB expects data [FBS,H,C,D] and an output [B,H,L,D]");
  }
  if (!IsIndexType(idx)) return absl::InvalidArgumentError("CtxGatherCB: ctx_indices must be int64");
  const int64_t B = o.shape[0], H = data.shape[1], C = data.shape[2], D = data.shape[3];
  const int64_t L = idx.numel();
  if (o.shape[1] != H || o.shape[2] != L || o.shape[3] != D) {
    return absl::InvalidArgumentError(absl::StrCat("CtxGatherCB: output ", ShapeString(o.shape), " does not match data ",
                                                   ShapeString(data.shape), " and ", L, " indices"));
  }
  absl::Status st = CheckBatchIndex("CtxGatherCB", bidx, B, data.shape[0]);
  if (!st.ok()) return st;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = IndexAt(idx, l);
    if (p < 0 || p >= C) return absl::InvalidArgumentError(absl::StrCat("CtxGatherCB index ", p, " outside [0, ", C, ")"));
  }
  const size_t es = DTypeSize(data.dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = IndexAt(bidx, b);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t l = 0; l < L; ++l) {
        std::memcpy(static_cast<uint8_t*>(o.data) + (((b * H + h) * L) + l) * D * es,
                    static_cast<const uint8_t*>(data.data) + (((row * H + h) * C) + IndexAt(idx, l)) * D * es, D * es);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsNnOp(const std::string& type) { return kNnOps.count(type) > 0; }

absl::Status RunNnOp(const Op& op, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out,
                     ThreadPool* pool) {
  const std::string& t = op.type();
  if (in.empty() || out.empty()) return absl::InvalidArgumentError(absl::StrCat(t, ": missing operands"));
  const bool kv_op = t == "CtxScatter" || t == "CtxGather" || t == "CtxScatterCB" || t == "CtxGatherCB";
  if (t != "ArgMax" && !kv_op && in[0].dtype != qeff::v1::F32) {
    return absl::UnimplementedError(absl::StrCat(t, " on ", DTypeName(in[0].dtype)));
  }
  if (t == "Softmax") return Softmax(op, in[0], out[0], pool);
  if (t == "LayerNormalization") return Norm(op, in, out, /*rms=*/false);
  if (t == "RMSNorm") return Norm(op, in, out, /*rms=*/true);
  if (t == "ArgMax") return ArgMax(op, in[0], out[0]);
  if (t == "CtxScatter") {
    if (in.size() != 3) return absl::InvalidArgumentError("CtxScatter needs 3 inputs");
    return CtxScatter(in, out[0]);
  }
  if (t == "CtxGather") {
    if (in.size() < 2) return absl::InvalidArgumentError("CtxGather needs 2 inputs");
    return CtxGather(in, out[0]);
  }
  if (t == "CtxScatterCB") {
    if (in.size() != 4) return absl::InvalidArgumentError("CtxScatterCB needs 4 inputs (data, batch_index, position_ids, updates)");
    return CtxScatterCB(in, out[0]);
  }
  if (t == "CtxGatherCB") {
    if (in.size() != 3) return absl::InvalidArgumentError("CtxGatherCB needs 3 inputs (data, batch_index, ctx_indices)");
    return CtxGatherCB(in, out[0]);
  }
  return Reduce(op, in[0], out[0]);
}

}  // namespace qeff::device
