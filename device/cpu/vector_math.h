// Vectorized float math for the hot elementwise kernels (AVX-512), with scalar fallbacks.
// exp: Cody-Waite range reduction + degree-6 polynomial + scalef, within ~2 ulp of std::exp
// over its float range; tanh and sigmoid are built on it (absolute error < 1e-7).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::device {

bool CpuHasAvx512();

// out[i] = f(in[i]) for i < n; in and out may alias.
void ExpArray(const float* in, float* out, int64_t n);
void TanhArray(const float* in, float* out, int64_t n);
void SigmoidArray(const float* in, float* out, int64_t n);
// tanh-approximated GELU: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))), each step rounded as
// the unfused graph computes it (the exporter's GeluTanh, HF's NewGELUActivation): x³ = (x·x)·x.
void GeluTanhArray(const float* in, float* out, int64_t n);
// The constants of that formula, for the compiler pass that recognizes the unfused chain.
inline constexpr float kGeluCubeCoeff = 0.044715f;
inline constexpr float kGeluSqrt2OverPi = static_cast<float>(0.79788456080286535588);
// out[i] = exp(in[i] - shift), returns the sum of the outputs (softmax numerator).
float ExpShiftSum(const float* in, float* out, int64_t n, float shift);

#if defined(__x86_64__)
// exp of 16 lanes, as ExpArray computes it, for kernels that fuse it into their own loops (call
// only where CpuHasAvx512()).
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 Exp16(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
  const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7228f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  // exp(r) on [-ln2/2, ln2/2]
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}
#endif

// sum_i a[i] * b[i]
float Dot(const float* a, const float* b, int64_t n);
// y[i] += alpha * x[i]
void Axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace qeff::device
