// Linear (x · Wᵀ + b with packed weights), shared by its registration (kernels_linalg.cc) and
// SparseMoE, which runs each routed expert through it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "device/cpu/op_registry.h"

namespace qeff::device {

// fp32 and bf16 Linear weights are packed in panels of 64 output columns: w [ceil(N/64), K, 64]
// holds W[64p + j][k] at [p][k][j] (zeros past N). Every kernel computes each output row from
// its input row alone, in the same order whatever the batch, so a sequence's results do not
// depend on the rows it shares a step with (continuous batching relies on it).
constexpr int64_t kLinearPanel = 64;
inline int64_t LinearPanels(int64_t N) { return (N + kLinearPanel - 1) / kLinearPanel; }

// The AVX-512 lane masks (as uint16_t, i.e. __mmask16) of a panel's 4 column vectors when only
// its first `cols` columns exist (cols <= 0: none; >= 64: all).
inline void PanelColumnMasks(int64_t cols, uint16_t mask[4]) {
  for (int v = 0; v < 4; ++v) {
    const int64_t c = std::clamp<int64_t>(cols - 16 * v, 0, 16);
    mask[v] = static_cast<uint16_t>((1u << c) - 1);
  }
}

struct LinearAttrs {
  int64_t out_features = 0;  // N (the packed fp32/bf16 shape rounds it up to whole panels)
};

// in = (x [..., K] f32, w, bias [N] f32 or absent, scale), out [..., N] f32, with w and scale
// one of: w [ceil(N/64), K, 64] f32 or bf16 and no scale; w i8 or i4 with its scale as
// kernels_quant.h lays them out (QuantWeightShape, QuantScaleShape).
absl::Status LinearRule(const LinearAttrs& attrs, const Tensors& in, const Tensors& out);
// w (and its scale, null when absent) as the packed weight of a Linear with N outputs and K
// inputs; `what` names it in errors.
absl::Status CheckLinearWeight(const TensorRef& w, const TensorRef* scale, int64_t N, int64_t K, const char* what);
// Runs on tensors that satisfy LinearRule.
absl::Status LinearKernel(const LinearAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool);

}  // namespace qeff::device
