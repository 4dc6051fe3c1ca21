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
// out[i] = exp(in[i] - shift), returns the sum of the outputs (softmax numerator).
float ExpShiftSum(const float* in, float* out, int64_t n, float shift);

// sum_i a[i] * b[i]
float Dot(const float* a, const float* b, int64_t n);
// y[i] += alpha * x[i]
void Axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace qeff::device
