// The SparseMoE kernel against a plain double-precision reference (softmax over every expert,
// top k with ties to the lower index, optional renormalization, each chosen expert
// down(silu(x·gate)·(x·up)) weighted), on odd shapes, for fp32 and int8 expert weights; an
// expert no token routes to is never read (its weights are null pointers here); and
// a token's result is bit-identical whatever else is in the batch.
#include <algorithm>
#include <cmath>
#include <numeric>
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

struct Expert {
  std::vector<float> gate, up, down;         // [I,H], [I,H], [H,I] as the kernel multiplies by
  std::vector<int8_t> qgate, qup, qdown;     // int8 copies
  std::vector<float> sgate, sup, sdown;      // per-row scales
};

void Quantize(const std::vector<float>& w, int64_t rows, int64_t cols, std::vector<int8_t>* q,
              std::vector<float>* scale, std::vector<float>* dequant) {
  q->resize(w.size());
  scale->resize(rows);
  dequant->resize(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    float mx = 0;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, std::fabs(w[r * cols + c]));
    const float s = mx > 0 ? mx / 127.0f : 1.0f;
    (*scale)[r] = s;
    for (int64_t c = 0; c < cols; ++c) {
      const int8_t v = static_cast<int8_t>(std::nearbyint(w[r * cols + c] / s));
      (*q)[r * cols + c] = v;
      (*dequant)[r * cols + c] = static_cast<float>(v) * s;
    }
  }
}

struct Case {
  int64_t T, H, I, E, top_k;
  bool normalize, int8;
  int64_t never_routed = -1;  // an expert whose router row makes it lose every time
};

std::vector<double> Reference(const Case& c, const std::vector<float>& x, const std::vector<float>& router,
                              const std::vector<Expert>& ex) {
  std::vector<double> y(c.T * c.H, 0.0);
  for (int64_t t = 0; t < c.T; ++t) {
    std::vector<double> p(c.E);
    for (int64_t e = 0; e < c.E; ++e) {
      double s = 0;
      for (int64_t h = 0; h < c.H; ++h) s += static_cast<double>(x[t * c.H + h]) * router[e * c.H + h];
      p[e] = s;
    }
    const double mx = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (double& v : p) sum += (v = std::exp(v - mx));
    for (double& v : p) v /= sum;
    std::vector<int64_t> order(c.E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    double top = 0;
    for (int64_t j = 0; j < c.top_k; ++j) top += p[order[j]];
    for (int64_t j = 0; j < c.top_k; ++j) {
      const int64_t e = order[j];
      const double w = c.normalize ? p[e] / top : p[e];
      std::vector<double> h(c.I);
      for (int64_t i = 0; i < c.I; ++i) {
        double g = 0, u = 0;
        for (int64_t k = 0; k < c.H; ++k) {
          g += static_cast<double>(x[t * c.H + k]) * ex[e].gate[i * c.H + k];
          u += static_cast<double>(x[t * c.H + k]) * ex[e].up[i * c.H + k];
        }
        h[i] = g / (1 + std::exp(-g)) * u;
      }
      for (int64_t k = 0; k < c.H; ++k) {
        double d = 0;
        for (int64_t i = 0; i < c.I; ++i) d += h[i] * ex[e].down[k * c.I + i];
        y[t * c.H + k] += w * d;
      }
    }
  }
  return y;
}

class MoeKernelTest : public ::testing::TestWithParam<Case> {};

TEST_P(MoeKernelTest, MatchesReferenceAndReadsOnlyRoutedExperts) {
  const Case c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.T * 131 + c.H * 7 + c.E));
  std::normal_distribution<float> n01(0.0f, 1.0f);
  auto randn = [&](size_t n, float s) {
    std::vector<float> v(n);
    for (float& f : v) f = s * n01(rng);
    return v;
  };
  std::vector<float> x = randn(c.T * c.H, 1.0f);
  if (c.never_routed >= 0)
    for (float& f : x) f = std::fabs(f);  // positive inputs, so a negative router row always loses
  std::vector<float> router = randn(c.E * c.H, 0.5f);
  if (c.never_routed >= 0)
    for (int64_t h = 0; h < c.H; ++h) router[c.never_routed * c.H + h] = -5.0f;
  std::vector<Expert> ex(c.E);
  for (auto& e : ex) {
    e.gate = randn(c.I * c.H, 0.3f);
    e.up = randn(c.I * c.H, 0.3f);
    e.down = randn(c.H * c.I, 0.3f);
    if (c.int8) {
      Quantize(e.gate, c.I, c.H, &e.qgate, &e.sgate, &e.gate);
      Quantize(e.up, c.I, c.H, &e.qup, &e.sup, &e.up);
      Quantize(e.down, c.H, c.I, &e.qdown, &e.sdown, &e.down);
    }
  }
  // fp32 weights (and the router) in Linear's panels of 64 outputs (kernels_linalg.h).
  std::vector<std::vector<float>> panels;
  panels.reserve(1 + 3 * c.E);
  auto panel = [&](const std::vector<float>& rows, int64_t N, int64_t K) -> TensorRef {
    auto& out = panels.emplace_back(static_cast<size_t>(LinearPanels(N) * K * kLinearPanel), 0.0f);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) out[(n / kLinearPanel * K + k) * kLinearPanel + n % kLinearPanel] = rows[n * K + k];
    return {out.data(), qeff::v1::F32, {LinearPanels(N), K, kLinearPanel}};
  };
  // int8 weights in VNNI-ordered panels (kernels_quant.h): byte 4j + t of input group g of
  // panel p holds w[64p + j][4g + t] + 128.
  std::vector<std::vector<uint8_t>> qpanels;
  qpanels.reserve(3 * c.E);
  auto qpanel = [&](const std::vector<int8_t>& rows, int64_t N, int64_t K) -> TensorRef {
    const Shape shape = QuantWeightShape(qeff::v1::I8, N, K);
    auto& out = qpanels.emplace_back(static_cast<size_t>(NumElements(shape)), uint8_t{128});
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        out[n / 64 * shape[1] * shape[2] + k / 4 * 256 + 4 * (n % 64) + k % 4] = static_cast<uint8_t>(rows[n * K + k] + 128);
    return {out.data(), qeff::v1::I8, shape};
  };
  std::vector<TensorRef> in = {{x.data(), qeff::v1::F32, {c.T, c.H}}, panel(router, c.E, c.H)};
  for (int64_t e = 0; e < c.E; ++e) {
    auto w = [&](std::vector<float>& f, std::vector<int8_t>& q, int64_t N, int64_t K) -> TensorRef {
      TensorRef t = c.int8 ? qpanel(q, N, K) : panel(f, N, K);
      if (e == c.never_routed) t.data = nullptr;  // a read would crash
      return t;
    };
    in.push_back(w(ex[e].gate, ex[e].qgate, c.I, c.H));
    in.push_back(w(ex[e].up, ex[e].qup, c.I, c.H));
    in.push_back(w(ex[e].down, ex[e].qdown, c.H, c.I));
  }
  if (c.int8) {
    for (auto& e : ex) {
      in.push_back({e.sgate.data(), qeff::v1::F32, {c.I}});
      in.push_back({e.sup.data(), qeff::v1::F32, {c.I}});
      in.push_back({e.sdown.data(), qeff::v1::F32, {c.H}});
    }
  }
  Op op;
  op.set_type("SparseMoE");
  SetAttrInt(op, "num_experts", c.E);
  SetAttrInt(op, "top_k", c.top_k);
  SetAttrInt(op, "normalize", c.normalize ? 1 : 0);
  SetAttrInt(op, "intermediate_size", c.I);
  ThreadPool pool(2);
  std::vector<float> y(c.T * c.H, -1.0f);
  std::vector<TensorRef> out = {{y.data(), qeff::v1::F32, {c.T, c.H}}};
  ASSERT_TRUE(RunSparseMoE(op, in, out, &pool).ok());
  const std::vector<double> want = Reference(c, x, router, ex);
  double worst = 0, peak = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, std::fabs(y[i] - want[i]));
    peak = std::max(peak, std::fabs(want[i]));
  }
  // int8 experts also quantize their inputs per block of 32 (kernels_quant.h), which the
  // dequantized-weight reference does not: 2% of the output's range there.
  EXPECT_LE(worst, c.int8 ? 0.02 * peak : 2e-4) << "T=" << c.T << " H=" << c.H << " I=" << c.I << " peak " << peak;

  // Row independence: the last token alone gives the same bits.
  std::vector<float> y1(c.H);
  std::vector<TensorRef> in1 = in;
  in1[0] = {x.data() + (c.T - 1) * c.H, qeff::v1::F32, {1, c.H}};
  std::vector<TensorRef> out1 = {{y1.data(), qeff::v1::F32, {1, c.H}}};
  ASSERT_TRUE(RunSparseMoE(op, in1, out1, &pool).ok());
  for (int64_t h = 0; h < c.H; ++h) ASSERT_EQ(y1[h], y[(c.T - 1) * c.H + h]) << h;
}

INSTANTIATE_TEST_SUITE_P(Shapes, MoeKernelTest,
                         ::testing::Values(Case{1, 33, 17, 4, 2, true, false}, Case{5, 64, 40, 8, 2, false, false},
                                           Case{3, 31, 96, 5, 1, true, false}, Case{17, 48, 24, 6, 3, true, false, 4},
                                           Case{2, 70, 35, 4, 2, true, true}, Case{9, 40, 20, 8, 2, false, true, 0}));

TEST(MoeKernel, RejectsInconsistentInputs) {
  std::vector<float> x(8), r(8), y(8);
  Op op;
  op.set_type("SparseMoE");
  SetAttrInt(op, "num_experts", 2);
  SetAttrInt(op, "top_k", 3);
  std::vector<TensorRef> in = {{x.data(), qeff::v1::F32, {1, 8}}, {r.data(), qeff::v1::F32, {1, 8}}};
  std::vector<TensorRef> out = {{y.data(), qeff::v1::F32, {1, 8}}};
  EXPECT_FALSE(RunSparseMoE(op, in, out, nullptr).ok());  // top_k > experts
  SetAttrInt(op, "top_k", 1);
  EXPECT_FALSE(RunSparseMoE(op, in, out, nullptr).ok());  // missing expert weights
}

}  // namespace
}  // namespace qeff::device
