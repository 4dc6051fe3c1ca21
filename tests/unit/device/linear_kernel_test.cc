// The Linear kernel (decode GEMV and its multi-row tiles) against a plain double-precision
// reference on odd shapes, for fp32, bf16 and int8 weights; and with `rowwise` (what the
// compiler sets on decode specializations) a row's result is bit-identical whatever the batch.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "device/cpu/kernels.h"
#include "device/cpu/thread_pool.h"

namespace qeff::device {
namespace {

using qeff::v1::Op;

uint16_t Bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}
float FromBf16(uint16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

struct Weights {
  DType dtype;
  std::vector<float> f32, scale, as_float;  // as_float: what the kernel multiplies by
  std::vector<uint16_t> bf16;
  std::vector<int8_t> i8;
  TensorRef ref(int64_t N, int64_t K) {
    void* p = dtype == qeff::v1::F32 ? static_cast<void*>(f32.data())
              : dtype == qeff::v1::BF16 ? static_cast<void*>(bf16.data())
                                        : static_cast<void*>(i8.data());
    return {p, dtype, {N, K}};
  }
};

Weights MakeWeights(DType dtype, int64_t N, int64_t K, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 0.5f);
  Weights w;
  w.dtype = dtype;
  w.f32.resize(static_cast<size_t>(N * K));
  for (auto& v : w.f32) v = d(rng);
  w.as_float = w.f32;
  if (dtype == qeff::v1::BF16) {
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.bf16.push_back(Bf16(w.f32[i]));
      w.as_float[i] = FromBf16(w.bf16.back());
    }
  } else if (dtype == qeff::v1::I8) {
    for (int64_t n = 0; n < N; ++n) {
      float mx = 1e-6f;
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs(w.f32[n * K + k]));
      w.scale.push_back(mx / 127.0f);
      for (int64_t k = 0; k < K; ++k) {
        const int8_t q = static_cast<int8_t>(std::lround(w.f32[n * K + k] / w.scale.back()));
        w.i8.push_back(q);
        w.as_float[n * K + k] = q * w.scale.back();
      }
    }
  }
  return w;
}

std::vector<float> RunLinear(Weights& w, const std::vector<float>& x, int64_t M, int64_t K, int64_t N,
                             const std::vector<float>& bias, bool rowwise) {
  Op op;
  op.set_type("Linear");
  if (rowwise) SetAttrInt(op, "rowwise", 1);
  std::vector<float> y(static_cast<size_t>(M * N), NAN);
  std::vector<TensorRef> in = {{const_cast<float*>(x.data()), qeff::v1::F32, {M, K}}, w.ref(N, K),
                               {const_cast<float*>(bias.data()), qeff::v1::F32, {N}}};
  if (w.dtype == qeff::v1::I8) in.push_back({w.scale.data(), qeff::v1::F32, {N}});
  absl::Status st = RunKernel(op, in, {{y.data(), qeff::v1::F32, {M, N}}}, &ThreadPool::Process());
  EXPECT_TRUE(st.ok()) << st;
  return y;
}

TEST(LinearKernelTest, MatchesReferenceOnOddShapesAndRowsDoNotDependOnTheBatch) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (DType dtype : {qeff::v1::F32, qeff::v1::BF16, qeff::v1::I8}) {
    for (int64_t K : {1, 15, 16, 17, 31, 32, 33, 63, 100}) {
      for (int64_t N : {1, 3, 4, 5, 9, 17, 33}) {
        Weights w = MakeWeights(dtype, N, K, rng);
        std::vector<float> bias(static_cast<size_t>(N));
        for (auto& b : bias) b = d(rng);
        for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 9, 13, 17}) {
          std::vector<float> x(static_cast<size_t>(M * K));
          for (auto& v : x) v = d(rng);
          const auto y = RunLinear(w, x, M, K, N, bias, /*rowwise=*/true);
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              double ref = bias[n];
              for (int64_t k = 0; k < K; ++k) ref += static_cast<double>(x[m * K + k]) * w.as_float[n * K + k];
              ASSERT_NEAR(y[m * N + n], ref, 1e-4 * (1 + std::sqrt(static_cast<double>(K))))
                  << DTypeName(dtype) << " M=" << M << " K=" << K << " N=" << N << " m=" << m << " n=" << n;
            }
            // The same row alone: bit-identical.
            const std::vector<float> xm(x.begin() + m * K, x.begin() + (m + 1) * K);
            const auto alone = RunLinear(w, xm, 1, K, N, bias, /*rowwise=*/true);
            ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + m * N, sizeof(float) * N))
                << DTypeName(dtype) << " M=" << M << " K=" << K << " N=" << N << " row " << m;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qeff::device
