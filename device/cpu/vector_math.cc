#include "device/cpu/vector_math.h"

namespace qeff::device {

bool CpuHasAvx512() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

#if defined(__x86_64__)
namespace {

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as
// uninitialized here (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define QEFF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

QEFF_AVX512 inline __m512 Tanh16(__m512 x) {
  // tanh|x| = (1 - t) / (1 + t), t = exp(-2|x|); sign restored after.
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 t = Exp16(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0f)));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 y = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign));
}

template <typename F>
QEFF_AVX512 void Apply(const float* in, float* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, f(_mm512_loadu_ps(in + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, f(_mm512_maskz_loadu_ps(m, in + i)));
  }
}

QEFF_AVX512 void ExpAvx512(const float* in, float* out, int64_t n) {
  Apply(in, out, n, [](__m512 v) QEFF_AVX512 { return Exp16(v); });
}
QEFF_AVX512 void TanhAvx512(const float* in, float* out, int64_t n) {
  Apply(in, out, n, [](__m512 v) QEFF_AVX512 { return Tanh16(v); });
}
QEFF_AVX512 void GeluTanhAvx512(const float* in, float* out, int64_t n) {
  Apply(in, out, n, [](__m512 x) QEFF_AVX512 {
    const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 inner = _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(kGeluCubeCoeff), cube));
    const __m512 t = Tanh16(_mm512_mul_ps(_mm512_set1_ps(kGeluSqrt2OverPi), inner));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
  });
}
QEFF_AVX512 void SigmoidAvx512(const float* in, float* out, int64_t n) {
  Apply(in, out, n, [](__m512 v) QEFF_AVX512 {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, Exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
  });
}
QEFF_AVX512 float ExpShiftSumAvx512(const float* in, float* out, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(in + i), s));
    _mm512_storeu_ps(out + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(m, Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, in + i), s)));
    _mm512_mask_storeu_ps(out + i, m, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

QEFF_AVX512 float DotAvx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

QEFF_AVX512 void AxpyAvx512(float alpha, const float* x, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

#pragma GCC diagnostic pop
}  // namespace
#endif

float Dot(const float* a, const float* b, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return DotAvx512(a, b, n);
#endif
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float alpha, const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return AxpyAvx512(alpha, x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void ExpArray(const float* in, float* out, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return ExpAvx512(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(in[i]);
}

void TanhArray(const float* in, float* out, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return TanhAvx512(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}

void SigmoidArray(const float* in, float* out, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return SigmoidAvx512(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-in[i]));
}

void GeluTanhArray(const float* in, float* out, int64_t n) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return GeluTanhAvx512(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) {
    const float x = in[i];
    const float inner = x + kGeluCubeCoeff * (x * x * x);
    out[i] = (0.5f * x) * (1.0f + std::tanh(kGeluSqrt2OverPi * inner));
  }
}

float ExpShiftSum(const float* in, float* out, int64_t n, float shift) {
#if defined(__x86_64__)
  if (CpuHasAvx512()) return ExpShiftSumAvx512(in, out, n, shift);
#endif
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (out[i] = std::exp(in[i] - shift));
  return sum;
}

}  // namespace qeff::device
