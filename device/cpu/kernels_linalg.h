// Linear (x · Wᵀ + b with packed weights), shared by its registration (kernels_linalg.cc) and
// SparseMoE, which runs each routed expert through it.
#pragma once

#include "absl/status/status.h"
#include "device/cpu/op_registry.h"

namespace qeff::device {

struct LinearAttrs {
  // The row-by-row kernel at any M (a row's result never depends on its batch); otherwise
  // M > 8 goes to sgemm.
  bool rowwise = false;
};

// in = (x [..., K] f32, w, bias [N] f32 or absent, scale), out [..., N] f32, with w and scale
// one of: w [N, K] f32 or bf16 and no scale; w [N, K] i8 and scale [N] f32 (per row); w i4
// [N, Int4RowBytes(K)] and scale [N, QuantBlocks(K)] bf16 (per block of 32; kernels_quant.h).
absl::Status LinearRule(const LinearAttrs& attrs, const Tensors& in, const Tensors& out);
// w (and its scale, null when absent) as the weight of an [N, K] Linear; `what` names it in errors.
absl::Status CheckLinearWeight(const TensorRef& w, const TensorRef* scale, int64_t N, int64_t K, const char* what);
// Runs on tensors that satisfy LinearRule.
absl::Status LinearKernel(const LinearAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool);

}  // namespace qeff::device
