// The Linear kernel against a plain double-precision reference on odd shapes (K across the
// 256-wide k blocks, N across 64-wide panels, M across 6-row tiles): fp32 and bf16 weights
// exactly (to rounding); int8 and int4 weights (kernels_quant.h) against the reference of the
// same quantization, on the VNNI and the portable path, and within a stated error of the
// unquantized product. A row's result is bit-identical whatever the batch it runs in.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "device/cpu/kernels.h"
#include "device/cpu/kernels_linalg.h"
#include "device/cpu/kernels_quant.h"
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
  std::vector<float> f32, as_float;  // as_float: what the kernel multiplies by
  std::vector<uint16_t> bf16;
  // int8: values [N, K] and scale [N]; int4: values [N, K] in [-8, 7] and scale [N, blocks]
  // (bf16-representable floats).
  std::vector<int8_t> q;
  std::vector<float> scale;
  // The packed tensors the kernel reads, written here from the documented layouts
  // (kernels_linalg.h, kernels_quant.h) independently of the compiler's packer.
  std::vector<float> f32_panels;
  std::vector<uint16_t> bf16_panels, int4_scale;
  std::vector<uint8_t> quant_panels;

  TensorRef ref(int64_t N, int64_t K) {
    if (dtype == qeff::v1::F32) return {Panels(f32, N, K, &f32_panels), dtype, {LinearPanels(N), K, kLinearPanel}};
    if (dtype == qeff::v1::BF16) return {Panels(bf16, N, K, &bf16_panels), dtype, {LinearPanels(N), K, kLinearPanel}};
    const bool int4 = dtype == qeff::v1::I4;
    const Shape shape = QuantWeightShape(dtype, N, K);
    quant_panels.assign(static_cast<size_t>(NumElements(shape)), int4 ? 0x88 : 0x80);
    const int64_t panel_bytes = shape[1] * shape[2];
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t j = n % 64;
        uint8_t* panel = quant_panels.data() + n / 64 * panel_bytes;
        if (!int4) {
          panel[k / 4 * 256 + 4 * j + k % 4] = static_cast<uint8_t>(q[n * K + k] + 128);
        } else {
          uint8_t& byte = panel[k / 8 * 256 + 4 * j + k % 4];
          const int u = q[n * K + k] + 8;
          byte = k % 8 < 4 ? static_cast<uint8_t>((byte & 0xf0) | u) : static_cast<uint8_t>((byte & 0x0f) | (u << 4));
        }
      }
    }
    return {quant_panels.data(), dtype, shape};
  }
  TensorRef scale_ref(int64_t N, int64_t K) {
    if (dtype == qeff::v1::I8) return {scale.data(), qeff::v1::F32, {N}};
    const int64_t blocks = QuantBlocks(K);
    int4_scale.assign(static_cast<size_t>(NumElements(QuantScaleShape(dtype, N, K))), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t b = 0; b < blocks; ++b) int4_scale[(n / 64 * blocks + b) * 64 + n % 64] = Bf16(scale[n * blocks + b]);
    return {int4_scale.data(), qeff::v1::BF16, QuantScaleShape(dtype, N, K)};
  }
  // Row-major [N, K] into panels of 64 outputs; NaN in the padding proves the kernel never
  // uses it.
  template <typename T>
  static T* Panels(const std::vector<T>& rows, int64_t N, int64_t K, std::vector<T>* out) {
    T pad;
    const float nan = NAN;
    if constexpr (sizeof(T) == 4) std::memcpy(&pad, &nan, 4);
    else pad = 0x7fc0;
    out->assign(static_cast<size_t>(LinearPanels(N) * K * kLinearPanel), pad);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) (*out)[(n / kLinearPanel * K + k) * kLinearPanel + n % kLinearPanel] = rows[n * K + k];
    return out->data();
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
  } else if (dtype == qeff::v1::I4) {
    // Random values in [-8, 7] and bf16 block scales of both signs.
    const int64_t blocks = QuantBlocks(K);
    std::uniform_int_distribution<int> val(-8, 7);
    std::uniform_real_distribution<float> sd(0.01f, 0.2f);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t b = 0; b < blocks; ++b) w.scale.push_back(FromBf16(Bf16(sd(rng) * (b % 3 == 1 ? -1.0f : 1.0f))));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        w.q.push_back(static_cast<int8_t>(val(rng)));
        w.as_float[n * K + k] = w.q.back() * w.scale[n * blocks + k / 32];
      }
    }
  } else if (dtype == qeff::v1::I8) {
    for (int64_t n = 0; n < N; ++n) {
      float mx = 1e-6f;
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs(w.f32[n * K + k]));
      w.scale.push_back(mx / 127.0f);
      for (int64_t k = 0; k < K; ++k) {
        const int8_t q = static_cast<int8_t>(std::lround(w.f32[n * K + k] / w.scale.back()));
        w.q.push_back(q);
        w.as_float[n * K + k] = q * w.scale.back();
      }
    }
  }
  return w;
}

std::vector<float> RunLinear(Weights& w, const std::vector<float>& x, int64_t M, int64_t K, int64_t N,
                             const std::vector<float>& bias) {
  Op op;
  op.set_type("Linear");
  SetAttrInt(op, "out_features", N);
  std::vector<float> y(static_cast<size_t>(M * N), NAN);
  std::vector<TensorRef> in = {{const_cast<float*>(x.data()), qeff::v1::F32, {M, K}}, w.ref(N, K),
                               {const_cast<float*>(bias.data()), qeff::v1::F32, {N}}};
  if (w.dtype == qeff::v1::I8 || w.dtype == qeff::v1::I4) in.push_back(w.scale_ref(N, K));
  absl::Status st = RunKernel(op, in, {{y.data(), qeff::v1::F32, {M, N}}}, &ThreadPool::Process());
  EXPECT_TRUE(st.ok()) << st;
  return y;
}

TEST(LinearKernelTest, MatchesReferenceOnOddShapesAndRowsDoNotDependOnTheBatch) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (DType dtype : {qeff::v1::F32, qeff::v1::BF16}) {
    for (int64_t K : {1, 15, 16, 17, 31, 32, 33, 63, 100, 300}) {
      for (int64_t N : {1, 3, 4, 5, 9, 17, 33, 64, 65, 130}) {
        Weights w = MakeWeights(dtype, N, K, rng);
        std::vector<float> bias(static_cast<size_t>(N));
        for (auto& b : bias) b = d(rng);
        for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 9, 13, 17}) {
          std::vector<float> x(static_cast<size_t>(M * K));
          for (auto& v : x) v = d(rng);
          const auto y = RunLinear(w, x, M, K, N, bias);
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              double ref = bias[n];
              for (int64_t k = 0; k < K; ++k) ref += static_cast<double>(x[m * K + k]) * w.as_float[n * K + k];
              ASSERT_NEAR(y[m * N + n], ref, 1e-4 * (1 + std::sqrt(static_cast<double>(K))))
                  << DTypeName(dtype) << " M=" << M << " K=" << K << " N=" << N << " m=" << m << " n=" << n;
            }
            // The same row alone: bit-identical.
            const std::vector<float> xm(x.begin() + m * K, x.begin() + (m + 1) * K);
            const auto alone = RunLinear(w, xm, 1, K, N, bias);
            ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + m * N, sizeof(float) * N))
                << DTypeName(dtype) << " M=" << M << " K=" << K << " N=" << N << " row " << m;
          }
        }
      }
    }
  }
}

// Quantized weights: the kernel computes exactly the reference's integer block dot products, so
// it agrees with QuantLinearReference to float rounding (the VNNI and the portable path give
// the same bits: both add each block with one fused multiply-add); rows do not depend on the
// batch.
TEST(LinearKernelTest, QuantizedWeightsMatchTheirReferenceOnOddShapes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (bool portable : {false, true}) {
    SetQuantLinearPortableForTesting(portable);
    for (DType dtype : {qeff::v1::I8, qeff::v1::I4}) {
      for (int64_t K : {1, 15, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 300}) {
        for (int64_t N : {1, 3, 16, 17, 33, 64, 65, 130}) {
          Weights w = MakeWeights(dtype, N, K, rng);
          std::vector<float> bias(static_cast<size_t>(N));
          for (auto& b : bias) b = d(rng);
          for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17}) {
            std::vector<float> x(static_cast<size_t>(M * K));
            // Every 37th value an outlier, as activations have: blocks get different scales.
            for (size_t i = 0; i < x.size(); ++i) x[i] = d(rng) * (i % 37 == 0 ? 8.0f : 1.0f);
            const auto y = RunLinear(w, x, M, K, N, bias);
            std::vector<float> ref(static_cast<size_t>(M * N));
            QuantLinearReference(x.data(), M, K, w.q.data(), w.scale.data(), dtype == qeff::v1::I4, bias.data(),
                                 ref.data(), N);
            for (int64_t m = 0; m < M; ++m) {
              for (int64_t n = 0; n < N; ++n) {
                double magnitude = std::fabs(bias[n]);
                for (int64_t k = 0; k < K; ++k) magnitude += std::fabs(x[m * K + k] * w.as_float[n * K + k]);
                ASSERT_NEAR(y[m * N + n], ref[m * N + n], 1e-6 * (1 + magnitude))
                    << DTypeName(dtype) << (portable ? " portable" : "") << " M=" << M << " K=" << K << " N=" << N
                    << " m=" << m << " n=" << n;
              }
              const std::vector<float> xm(x.begin() + m * K, x.begin() + (m + 1) * K);
              const auto alone = RunLinear(w, xm, 1, K, N, bias);
              ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + m * N, sizeof(float) * N))
                  << DTypeName(dtype) << " M=" << M << " K=" << K << " N=" << N << " row " << m;
            }
          }
        }
      }
    }
  }
  SetQuantLinearPortableForTesting(false);
}

// Batches of 16+ rows take AMX tiles where the CPU has them. Here the tile kernel runs on an
// emulation of its instructions (the SDM's semantics, shape checks included) and must give the
// VNNI path's and the portable loop's bits; on an AMX host the default path is the real tiles,
// so this checks them too. K up to 19 blocks (several chunks of 8), N with partial panels, M
// with partial row tiles.
bool HostHasVnni() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

TEST(LinearKernelTest, AmxTileKernelGivesTheVnniBits) {
  std::mt19937 rng(17);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (DType dtype : {qeff::v1::I8, qeff::v1::I4}) {
    for (int64_t K : {1, 31, 33, 100, 300, 600}) {
      for (int64_t N : {1, 17, 64, 65, 130}) {
        Weights w = MakeWeights(dtype, N, K, rng);
        std::vector<float> bias(static_cast<size_t>(N));
        for (auto& b : bias) b = d(rng);
        for (int64_t M : {16, 17, 31, 33, 48}) {
          std::vector<float> x(static_cast<size_t>(M * K));
          for (size_t i = 0; i < x.size(); ++i) x[i] = d(rng) * (i % 37 == 0 ? 8.0f : 1.0f);
          const auto fast = RunLinear(w, x, M, K, N, bias);
          const int64_t dots = QuantLinearEmulatedAmxDotsForTesting();
          SetQuantLinearEmulatedAmxForTesting(true);
          const auto emulated = RunLinear(w, x, M, K, N, bias);
          SetQuantLinearEmulatedAmxForTesting(false);
          // One tdpbsud per 16 rows, 16 outputs and block of 32 inputs (the emulation closes its
          // blocks with AVX-512, so it runs where VNNI does).
          if (HostHasVnni()) {
            EXPECT_EQ(QuantLinearEmulatedAmxDotsForTesting() - dots, (M + 15) / 16 * LinearPanels(N) * 4 * QuantBlocks(K));
          }
          SetQuantLinearPortableForTesting(true);
          const auto portable = RunLinear(w, x, M, K, N, bias);
          SetQuantLinearPortableForTesting(false);
          ASSERT_EQ(0, std::memcmp(portable.data(), fast.data(), sizeof(float) * M * N))
              << DTypeName(dtype) << " default path, M=" << M << " K=" << K << " N=" << N;
          ASSERT_EQ(0, std::memcmp(portable.data(), emulated.data(), sizeof(float) * M * N))
              << DTypeName(dtype) << " emulated tiles, M=" << M << " K=" << K << " N=" << N;
        }
      }
    }
  }
}

// The error that quantizing activations per block of 32 adds to the dequantized weights'
// product: cosine similarity >= 0.9999 over a layer-sized output (stated in the README).
TEST(LinearKernelTest, ActivationQuantizationErrorIsSmall) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const int64_t M = 3, K = 1024, N = 256;
  for (DType dtype : {qeff::v1::I8, qeff::v1::I4}) {
    Weights w = MakeWeights(dtype, N, K, rng);
    std::vector<float> x(static_cast<size_t>(M * K)), bias(static_cast<size_t>(N), 0.0f);
    for (auto& v : x) v = d(rng);
    const auto y = RunLinear(w, x, M, K, N, bias);
    double dot = 0, yy = 0, rr = 0;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t k = 0; k < K; ++k) ref += static_cast<double>(x[m * K + k]) * w.as_float[n * K + k];
        dot += ref * y[m * N + n];
        yy += static_cast<double>(y[m * N + n]) * y[m * N + n];
        rr += ref * ref;
      }
    }
    EXPECT_GE(dot / std::sqrt(yy * rr), 0.9999) << DTypeName(dtype);
  }
}

}  // namespace
}  // namespace qeff::device
