// Linear with quantized weights: int8 (one f32 scale per output) and int4 (one bf16 scale per
// output and block of 32 inputs). Activations are quantized per block of 32 to int8 with an f32
// scale (the scheme of llama.cpp's Q8_0 dot products). Weights are packed in panels of 64
// outputs like fp32 ones (kernels_linalg.h), in AVX512-VNNI's operand order: one 64-byte vector
// holds 4 consecutive inputs of 16 outputs, so `vpdpbusd` multiplies one broadcast group of 4
// activations into 16 outputs at once (64 multiply-adds per instruction, no widening, no
// horizontal sums), a register tile of up to 6 rows x 64 outputs reuses every weight load, and
// one float multiply-add per block applies the scales. Without VNNI a portable loop computes the
// same integer block sums. Where the CPU has AMX-INT8 (Intel Sapphire Rapids and later; found
// at run time, QEFF_CPU_AMX=0 turns it off), batches of 16 or more rows compute those block
// sums on tiles, 16 rows x 16 outputs x 32 inputs per instruction. Each output is one running
// sum over the blocks in order, whatever the tiling or path: a row's result does not depend on
// its batch.
//
// vpdpbusd multiplies unsigned by signed bytes, so weights are stored unsigned with an offset
// (int8: w + 128; int4: nibble = w + 8) and each block's sum starts at -offset * sum(x_block).
//
// Layouts (Kp = K rounded up to a multiple of 32; padding holds the offset, i.e. weight 0):
//   I8  w [ceil(N/64), Kp/4, 256] bytes: panel p, input group g, byte 4j + t = w[64p + j][4g + t] + 128
//       (j < 64, t < 4); scale [N] f32.
//   I4  w [ceil(N/64), Kp/8, 256] bytes: panel p, input group c (8 inputs), byte 4j + t holds
//       w[64p + j][8c + t] + 8 in its low nibble and w[64p + j][8c + 4 + t] + 8 in its high one;
//       scale [ceil(N/64), Kp/32, 64] bf16 (panel, block, output).
#pragma once

#include <cstdint>
#include <vector>

#include "device/cpu/thread_pool.h"
#include "device/tensor.h"

namespace qeff::device {

constexpr int64_t kQuantBlock = 32;
inline int64_t QuantBlocks(int64_t K) { return (K + kQuantBlock - 1) / kQuantBlock; }
inline int64_t QuantPaddedK(int64_t K) { return QuantBlocks(K) * kQuantBlock; }

// The packed weight shape and scale shape of an int8 or int4 Linear with N outputs, K inputs.
Shape QuantWeightShape(DType weights, int64_t N, int64_t K);
Shape QuantScaleShape(DType weights, int64_t N, int64_t K);

// Input rows quantized per block of 32, with each block's offset correction.
class QuantizedRows {
 public:
  // x [M, K] f32 for I8 or I4 weights, rows spread over `pool` (may be null) when there are
  // many. Reuses its buffers: no allocation once warm.
  void Quantize(const float* x, int64_t M, int64_t K, DType weights, ThreadPool* pool);

  int64_t rows() const { return M_; }
  int64_t k() const { return K_; }
  DType weights() const { return weights_; }
  const int8_t* q(int64_t m) const { return q_.data() + m * kp_; }               // [Kp]
  const float* scale(int64_t m) const { return scale_.data() + m * blocks_; }    // [blocks]
  const int32_t* offset(int64_t m) const { return offset_.data() + m * blocks_; }  // [blocks]

 private:
  int64_t M_ = 0, K_ = 0, kp_ = 0, blocks_ = 0;
  DType weights_ = qeff::v1::DTYPE_UNSPECIFIED;
  std::vector<int8_t> q_;
  std::vector<float> scale_;
  std::vector<int32_t> offset_;
};

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) for every row m and the outputs of panels
// [p0, p1). `scale` is the weights' scale tensor (layouts above). Several threads may run
// disjoint panel ranges on one QuantizedRows.
void QuantLinearPanels(const QuantizedRows& x, const void* w, const void* scale, const float* bias, float* y,
                       int64_t N, int64_t p0, int64_t p1);

// Host-independent reference (tests): the same quantization of x and the same integer block
// sums, accumulated in double, from row-major weights: int8 w [N, K] with scale [N]; int4
// values w [N, K] in [-8, 7] with scale [N, QuantBlocks(K)] as floats.
void QuantLinearReference(const float* x, int64_t M, int64_t K, const int8_t* w, const float* scale, bool per_block,
                          const float* bias, float* y, int64_t N);

// The portable loop even where VNNI exists (tests compare the two).
void SetQuantLinearPortableForTesting(bool portable);
// Batches of 16+ rows through the AMX kernel on an emulation of its tile instructions, on any
// AVX512-VNNI host (tests check its data movement where no AMX exists).
void SetQuantLinearEmulatedAmxForTesting(bool emulate);
// How many tile dot products the emulation has run (tests: the tile kernel was the one taken).
int64_t QuantLinearEmulatedAmxDotsForTesting();

}  // namespace qeff::device
