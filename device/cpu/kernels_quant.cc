#include "device/cpu/kernels_quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::device {
namespace {

// K padded to whole groups of 128 (four blocks: one 64-byte vector of int4 weights, two of
// int8 weights), so kernels read whole vectors of x without bounds checks.
inline int64_t PaddedK(int64_t K) { return (K + 127) / 128 * 128; }

// Where each part of one quantized row lives (byte offsets from the row start).
struct RowLayout {
  int64_t kp;
  // Both: xq (int8 [kp], zero padded) and dx (f32 [kp/32], one scale per block; 0 in padding).
  int64_t xq, dx;
  // I8 weights (sign trick: |x| is vpdpbusd's unsigned operand, x's sign moves onto the weight):
  // xabs u8 [kp], sign u64 [kp/64] (bit i set where x < 0), dx2 f32 [kp/64][16] (lanes 0-7: the
  // first block's scale, 8-15: the second's).
  int64_t xabs, sign, dx2;
  // I4 weights (nibbles are the unsigned operand, x the signed one): per group of four blocks,
  // lo/hi int8 [64] (x in the byte order of the weights' low/high nibbles), bias i32 [16] (lane
  // 4b: -8 * sum of block b's xq, the nibble offset), dx4 f32 [16] (lane l: block l/4's scale).
  int64_t lo, hi, bias, dx4;
  int64_t bytes;

  RowLayout(int64_t K, DType w) : kp(PaddedK(K)) {
    int64_t at = 0;
    auto take = [&](int64_t n) {
      const int64_t off = at;
      at += (n + 63) / 64 * 64;
      return off;
    };
    xq = take(kp);
    dx = take(kp / 32 * 4);
    xabs = sign = dx2 = lo = hi = bias = dx4 = -1;
    if (w == qeff::v1::I8) {
      xabs = take(kp);
      sign = take(kp / 64 * 8);
      dx2 = take(kp / 64 * 64);
    } else {
      lo = take(kp / 2);
      hi = take(kp / 2);
      bias = take(kp / 128 * 64);
      dx4 = take(kp / 128 * 64);
    }
    bytes = at;
  }
};

std::atomic<bool> g_portable{false};

float Bf16ToFloat(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline int Nibble(const uint8_t* row, int64_t k) {
  const uint8_t byte = row[k / 32 * 16 + k % 16];
  return (k % 32 < 16 ? byte & 0x0f : byte >> 4) - 8;
}

// One block's integer dot product (portable path and reference).
int32_t BlockDot(const int8_t* xq, DType dt, const void* w, int64_t K, int64_t n, int64_t b) {
  int32_t s = 0;
  const int64_t k1 = std::min(K, (b + 1) * kQuantBlock);
  if (dt == qeff::v1::I8) {
    const int8_t* row = static_cast<const int8_t*>(w) + n * K;
    for (int64_t k = b * kQuantBlock; k < k1; ++k) s += int32_t{xq[k]} * row[k];
  } else {
    const uint8_t* row = static_cast<const uint8_t*>(w) + n * Int4RowBytes(K);
    for (int64_t k = b * kQuantBlock; k < k1; ++k) s += int32_t{xq[k]} * Nibble(row, k);
  }
  return s;
}

// Quantizes one row of x into `xq`/`dx` (one scale per block: max|x| / 127, round to nearest).
void QuantizeRow(const float* x, int64_t K, int64_t kp, int8_t* xq, float* dx) {
  for (int64_t b = 0; b < kp / kQuantBlock; ++b) {
    const int64_t k0 = b * kQuantBlock, k1 = std::min(K, k0 + kQuantBlock);
    float amax = 0.0f;
    for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[k]));
    const float d = amax / 127.0f;
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    dx[b] = d;
    for (int64_t k = k0; k < k0 + kQuantBlock; ++k)
      xq[k] = k < k1 ? static_cast<int8_t>(std::nearbyint(x[k] * inv)) : int8_t{0};
  }
}

#if defined(__x86_64__)
bool HasVnni() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
}

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as maybe
// uninitialized here (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define QEFF_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define QEFF_VNNI_LAMBDA __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"), always_inline))

// Independent accumulator chains per input row, so the float adds' latency hides behind the
// loads when only one input row runs (decode). The same at every MR: a row's sum must not
// depend on how many rows share its tile.
constexpr int kChains = 4;

// int8 weights, one weight row against MR input rows.
template <int MR>
QEFF_VNNI void Int8Row(const uint8_t* x, int64_t xstride, const RowLayout& L, const int8_t* wr, int64_t K,
                       float row_scale, float bias, float* y, int64_t ystride) {
  constexpr int A = kChains;
  __m512 acc[MR][A];
  for (int m = 0; m < MR; ++m)
    for (int a = 0; a < A; ++a) acc[m][a] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  // 64 weights: x's sign moved onto the weights, |x| · w in 16 lanes of 4 products, each lane
  // times its block's activation scale.
  auto chunk = [&](int64_t k, __mmask64 mask, int a) QEFF_VNNI_LAMBDA {
    const __m512i w = _mm512_maskz_loadu_epi8(mask, wr + k);
    for (int m = 0; m < MR; ++m) {
      const uint8_t* r = x + m * xstride;
      const __mmask64 neg = reinterpret_cast<const uint64_t*>(r + L.sign)[k / 64];
      const __m512i sw = _mm512_mask_sub_epi8(w, neg, zero, w);
      const __m512i dot = _mm512_dpbusd_epi32(zero, _mm512_loadu_si512(r + L.xabs + k), sw);
      acc[m][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                  _mm512_loadu_ps(reinterpret_cast<const float*>(r + L.dx2) + k / 4), acc[m][a]);
    }
  };
  int64_t k = 0;
  for (; k + 64 * A <= K; k += 64 * A)
    for (int a = 0; a < A; ++a) chunk(k + 64 * a, ~__mmask64{0}, a);
  for (; k < K; k += 64) chunk(k, K - k >= 64 ? ~__mmask64{0} : (__mmask64{1} << (K - k)) - 1, 0);
  for (int m = 0; m < MR; ++m) {
    __m512 sum = acc[m][0];
    for (int a = 1; a < A; ++a) sum = _mm512_add_ps(sum, acc[m][a]);
    y[m * ystride] = _mm512_reduce_add_ps(sum) * row_scale + bias;
  }
}

// int4 weights, one weight row against MR input rows.
template <int MR>
QEFF_VNNI void Int4Row(const uint8_t* x, int64_t xstride, const RowLayout& L, const uint8_t* wr,
                       const uint16_t* sr, int64_t blocks, float bias, float* y, int64_t ystride) {
  constexpr int A = kChains;
  __m512 acc[MR][A];
  for (int m = 0; m < MR; ++m)
    for (int a = 0; a < A; ++a) acc[m][a] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  // Blocks b..b+nb-1 (nb <= 4, one 64-byte vector): nibbles against x in the same byte order,
  // the -8 offset preloaded per block, each block's lanes times (weight scale · x scale).
  auto group = [&](int64_t b, int64_t nb, int a) QEFF_VNNI_LAMBDA {
    const __mmask64 wmask = nb == 4 ? ~__mmask64{0} : (__mmask64{1} << (16 * nb)) - 1;
    const __m512i w = _mm512_maskz_loadu_epi8(wmask, wr + b * 16);
    const __m512i lo = _mm512_and_si512(w, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
    const __m128i s = _mm_maskz_loadu_epi16(static_cast<__mmask8>((1u << nb) - 1), sr + b);
    const __m512 ws = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_permutexvar_epi32(spread, _mm512_cvtepu16_epi32(_mm256_zextsi128_si256(s))), 16));
    const int64_t g = b / 4;
    for (int m = 0; m < MR; ++m) {
      const uint8_t* r = x + m * xstride;
      __m512i dot = _mm512_loadu_si512(r + L.bias + g * 64);
      dot = _mm512_dpbusd_epi32(dot, lo, _mm512_loadu_si512(r + L.lo + g * 64));
      dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(r + L.hi + g * 64));
      const __m512 scale = _mm512_mul_ps(ws, _mm512_loadu_ps(reinterpret_cast<const float*>(r + L.dx4) + g * 16));
      acc[m][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[m][a]);
    }
  };
  int64_t b = 0;
  for (; b + 4 * A <= blocks; b += 4 * A)
    for (int a = 0; a < A; ++a) group(b + 4 * a, 4, a);
  for (; b < blocks; b += 4) group(b, std::min<int64_t>(4, blocks - b), 0);
  for (int m = 0; m < MR; ++m) {
    __m512 sum = acc[m][0];
    for (int a = 1; a < A; ++a) sum = _mm512_add_ps(sum, acc[m][a]);
    y[m * ystride] = _mm512_reduce_add_ps(sum) + bias;
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

void SetQuantLinearPortableForTesting(bool portable) { g_portable = portable; }

void QuantizedRows::Quantize(const float* x, int64_t M, int64_t K, DType weights) {
  const RowLayout L(K, weights);
  M_ = M;
  K_ = K;
  weights_ = weights;
  row_bytes_ = L.bytes;
  const size_t need = static_cast<size_t>(M * L.bytes + 64);
  if (buf_.size() < need) buf_.resize(need);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf_.data());
  base_ = buf_.data() + ((64 - p % 64) % 64);
  for (int64_t m = 0; m < M; ++m) {
    uint8_t* r = base_ + m * L.bytes;
    int8_t* xq = reinterpret_cast<int8_t*>(r + L.xq);
    float* dx = reinterpret_cast<float*>(r + L.dx);
    QuantizeRow(x + m * K, K, L.kp, xq, dx);
    if (weights == qeff::v1::I8) {
      uint8_t* xabs = r + L.xabs;
      uint64_t* sign = reinterpret_cast<uint64_t*>(r + L.sign);
      float* dx2 = reinterpret_cast<float*>(r + L.dx2);
      for (int64_t j = 0; j < L.kp / 64; ++j) {
        uint64_t bits = 0;
        for (int i = 0; i < 64; ++i) {
          const int8_t v = xq[j * 64 + i];
          xabs[j * 64 + i] = static_cast<uint8_t>(v < 0 ? -v : v);
          if (v < 0) bits |= uint64_t{1} << i;
        }
        sign[j] = bits;
        for (int l = 0; l < 16; ++l) dx2[j * 16 + l] = dx[2 * j + l / 8];
      }
    } else {
      int8_t* lo = reinterpret_cast<int8_t*>(r + L.lo);
      int8_t* hi = reinterpret_cast<int8_t*>(r + L.hi);
      int32_t* bias = reinterpret_cast<int32_t*>(r + L.bias);
      float* dx4 = reinterpret_cast<float*>(r + L.dx4);
      for (int64_t b = 0; b < L.kp / kQuantBlock; ++b) {
        const int64_t g = b / 4, at = g * 64 + (b % 4) * 16;
        int32_t sum = 0;
        for (int i = 0; i < 16; ++i) {
          lo[at + i] = xq[b * 32 + i];
          hi[at + i] = xq[b * 32 + 16 + i];
          sum += xq[b * 32 + i] + xq[b * 32 + 16 + i];
        }
        for (int l = 0; l < 4; ++l) {
          bias[g * 16 + (b % 4) * 4 + l] = l == 0 ? -8 * sum : 0;
          dx4[g * 16 + (b % 4) * 4 + l] = dx[b];
        }
      }
    }
  }
}

void QuantLinearRows(const QuantizedRows& x, const void* w, const float* row_scale, const uint16_t* block_scale,
                     const float* bias, float* y, int64_t N, int64_t n0, int64_t n1) {
  const int64_t K = x.k(), M = x.rows(), blocks = QuantBlocks(K);
  const DType dt = x.weights();
  const RowLayout L(K, dt);
#if defined(__x86_64__)
  if (HasVnni() && !g_portable) {
    // Weight rows in blocks that stay in L2 while every group of up to 4 input rows passes over
    // them: each weight byte comes from memory once per call, whatever M is.
    const int64_t row_bytes = dt == qeff::v1::I8 ? K : Int4RowBytes(K);
    const int64_t block = std::max<int64_t>(4, (int64_t{96} << 10) / row_bytes / 4 * 4);
    for (int64_t nb = n0; nb < n1; nb += block) {
      const int64_t ne = std::min(n1, nb + block);
      for (int64_t m = 0; m < M; m += 4) {
        const int64_t mr = std::min<int64_t>(4, M - m);
        const uint8_t* xm = x.row(m);
        for (int64_t n = nb; n < ne; ++n) {
          const float bn = bias ? bias[n] : 0.0f;
          float* yn = y + m * N + n;
          if (dt == qeff::v1::I8) {
            const int8_t* wr = static_cast<const int8_t*>(w) + n * K;
            switch (mr) {
              case 1: Int8Row<1>(xm, L.bytes, L, wr, K, row_scale[n], bn, yn, N); break;
              case 2: Int8Row<2>(xm, L.bytes, L, wr, K, row_scale[n], bn, yn, N); break;
              case 3: Int8Row<3>(xm, L.bytes, L, wr, K, row_scale[n], bn, yn, N); break;
              default: Int8Row<4>(xm, L.bytes, L, wr, K, row_scale[n], bn, yn, N); break;
            }
          } else {
            const uint8_t* wr = static_cast<const uint8_t*>(w) + n * row_bytes;
            const uint16_t* sr = block_scale + n * blocks;
            switch (mr) {
              case 1: Int4Row<1>(xm, L.bytes, L, wr, sr, blocks, bn, yn, N); break;
              case 2: Int4Row<2>(xm, L.bytes, L, wr, sr, blocks, bn, yn, N); break;
              case 3: Int4Row<3>(xm, L.bytes, L, wr, sr, blocks, bn, yn, N); break;
              default: Int4Row<4>(xm, L.bytes, L, wr, sr, blocks, bn, yn, N); break;
            }
          }
        }
      }
    }
    return;
  }
#endif
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const uint8_t* r = x.row(m);
      const int8_t* xq = reinterpret_cast<const int8_t*>(r + L.xq);
      const float* dx = reinterpret_cast<const float*>(r + L.dx);
      float acc = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const float s = dt == qeff::v1::I8 ? dx[b] : dx[b] * Bf16ToFloat(block_scale[n * blocks + b]);
        acc += static_cast<float>(BlockDot(xq, dt, w, K, n, b)) * s;
      }
      y[m * N + n] = acc * (dt == qeff::v1::I8 ? row_scale[n] : 1.0f) + (bias ? bias[n] : 0.0f);
    }
  }
}

void QuantLinearReference(const float* x, int64_t M, int64_t K, DType dt, const void* w, const float* row_scale,
                          const uint16_t* block_scale, const float* bias, float* y, int64_t N) {
  const int64_t kp = PaddedK(K), blocks = QuantBlocks(K);
  std::vector<int8_t> xq(static_cast<size_t>(kp));
  std::vector<float> dx(static_cast<size_t>(kp / kQuantBlock));
  for (int64_t m = 0; m < M; ++m) {
    QuantizeRow(x + m * K, K, kp, xq.data(), dx.data());
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        const double s = dt == qeff::v1::I8 ? row_scale[n] : Bf16ToFloat(block_scale[n * blocks + b]);
        acc += static_cast<double>(BlockDot(xq.data(), dt, w, K, n, b)) * dx[b] * s;
      }
      y[m * N + n] = static_cast<float>(acc + (bias ? bias[n] : 0.0f));
    }
  }
}

}  // namespace qeff::device
