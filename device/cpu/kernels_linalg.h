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

// in = (x [..., K] f32, w [N, K] f32|bf16|i8, bias [N] f32 or absent, scale [N] f32 iff w is
// i8), out [..., N] f32.
absl::Status LinearRule(const LinearAttrs& attrs, const Tensors& in, const Tensors& out);
// Runs on tensors that satisfy LinearRule.
absl::Status LinearKernel(const LinearAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool);

}  // namespace qeff::device
