// Linear with quantized weights: int8 (one f32 scale per output row) and int4 (one bf16 scale per
// block of 32 weights). Activations are quantized per block of 32 to int8 with an f32 scale (the
// scheme of llama.cpp's Q8_0 dot products), each block's integer dot product runs on
// AVX512-VNNI (vpdpbusd: 64 multiply-adds per instruction, no widening to float), and one float
// multiply-add per block applies the scales. Without VNNI a portable loop computes the same
// integer dot products. Each output row depends only on its own input row, so a sequence's
// result does not depend on the batch it runs in.
//
// int4 layout (DType I4): a row of K weights is ceil(K/32) blocks of 16 bytes; in block j, byte i
// holds element 32j+i in its low nibble and element 32j+16+i in its high nibble, value = nibble-8
// (as llama.cpp's Q4_0, with the block scales kept apart in a [N, ceil(K/32)] bf16 tensor).
#pragma once

#include <cstdint>
#include <vector>

#include "device/cpu/thread_pool.h"
#include "device/tensor.h"

namespace qeff::device {

constexpr int64_t kQuantBlock = 32;
inline int64_t QuantBlocks(int64_t K) { return (K + kQuantBlock - 1) / kQuantBlock; }
// Bytes of one int4 weight row of K elements.
inline int64_t Int4RowBytes(int64_t K) { return QuantBlocks(K) * 16; }

// Input rows quantized for one weight type, laid out for that type's dot-product kernel.
class QuantizedRows {
 public:
  // x [M, K] f32 for I8 or I4 weights. Reuses its buffer: no allocation once warm.
  void Quantize(const float* x, int64_t M, int64_t K, DType weights);

  int64_t rows() const { return M_; }
  int64_t k() const { return K_; }
  DType weights() const { return weights_; }
  const uint8_t* row(int64_t m) const { return base_ + m * row_bytes_; }

 private:
  int64_t M_ = 0, K_ = 0, row_bytes_ = 0;
  DType weights_ = qeff::v1::DTYPE_UNSPECIFIED;
  std::vector<uint8_t> buf_;
  uint8_t* base_ = nullptr;  // buf_ aligned to 64 bytes
};

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) for every row m of `x` and n in [n0, n1).
// int8: w [N, K] i8, row_scale [N] f32. int4: w [N, Int4RowBytes(K)] bytes, block_scale
// [N, QuantBlocks(K)] bf16. Several threads may run disjoint n ranges on one QuantizedRows.
void QuantLinearRows(const QuantizedRows& x, const void* w, const float* row_scale, const uint16_t* block_scale,
                     const float* bias, float* y, int64_t N, int64_t n0, int64_t n1);

// Host-independent reference (tests): the same quantization of x and the same integer dot
// products, summed in block order in double.
void QuantLinearReference(const float* x, int64_t M, int64_t K, DType weights, const void* w,
                          const float* row_scale, const uint16_t* block_scale, const float* bias, float* y,
                          int64_t N);

// The portable loop even where VNNI exists (tests compare the two).
void SetQuantLinearPortableForTesting(bool portable);

}  // namespace qeff::device
