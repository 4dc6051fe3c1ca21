// Speed of CachedAttention alone on a causal prefill (or decode) call: S query rows at positions
// [0, S) of a context of C, head_dim D, Hkv kv heads of G query heads each, fp32 cache. Reports
// multiply-adds per second (q·k and p·v: Hq x sum over rows of the keys they see x D x 2).
//
//   qeff-attention-bench [--s 512] [--c 1024] [--d 64] [--hkv 12] [--g 1] [--threads 1] [--rounds 5]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include <CLI/CLI.hpp>

#include "device/cpu/kernels.h"
#include "device/cpu/thread_pool.h"

int main(int argc, char** argv) {
  CLI::App app{"qeff CachedAttention kernel benchmark"};
  int64_t S = 512, C = 1024, D = 64, Hkv = 12, G = 1;
  int threads = 1, rounds = 5;
  app.add_option("--s", S)->check(CLI::PositiveNumber);
  app.add_option("--c", C)->check(CLI::PositiveNumber);
  app.add_option("--d", D)->check(CLI::PositiveNumber);
  app.add_option("--hkv", Hkv)->check(CLI::PositiveNumber);
  app.add_option("--g", G)->check(CLI::PositiveNumber);
  app.add_option("--threads", threads);
  app.add_option("--rounds", rounds)->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (S > C) {
    std::fprintf(stderr, "--s %lld exceeds --c %lld\n", static_cast<long long>(S), static_cast<long long>(C));
    return 2;
  }
  const int64_t Hq = Hkv * G;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> q(Hq * S * D), k(Hkv * C * D), v(Hkv * C * D), out(Hq * S * D);
  for (auto* t : {&q, &k, &v})
    for (auto& x : *t) x = nd(rng);
  // Rows at positions C - S .. C - 1 when S is 1 (decode at the end of the context), else 0 .. S - 1.
  const int64_t first = S == 1 ? C - 1 : 0;
  std::vector<uint8_t> mask(S * C);
  int64_t keys = 0;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t j = 0; j < C; ++j) mask[s * C + j] = j > first + s;
    keys += first + s + 1;
  }
  qeff::v1::Op op;
  op.set_type("CachedAttention");
  qeff::device::SetAttrInt(op, "groups", G);
  qeff::device::SetAttrInts(op, "score_ops", {static_cast<int64_t>(qeff::device::ScoreOp::kDiv)});
  qeff::device::SetAttrInts(op, "score_args", {qeff::device::ScoreArgBits(std::sqrt(static_cast<float>(D)))});
  qeff::device::SetAttrFloat(op, "mask_value", std::numeric_limits<float>::lowest());
  using qeff::device::TensorRef;
  const std::vector<TensorRef> in = {{q.data(), qeff::v1::F32, {1, Hq, S, D}},
                                     {k.data(), qeff::v1::F32, {1, Hkv, C, D}},
                                     {v.data(), qeff::v1::F32, {1, Hkv, C, D}},
                                     {mask.data(), qeff::v1::BOOL, {1, 1, S, C}},
                                     TensorRef{}};
  const std::vector<TensorRef> outs = {{out.data(), qeff::v1::F32, {1, Hq, S, D}}};
  qeff::device::ThreadPool pool(threads);
  const double macs = 2.0 * static_cast<double>(Hq) * static_cast<double>(keys) * static_cast<double>(D);
  const int calls = static_cast<int>(std::max(3.0, std::min(1000.0, 2e9 / macs)));
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) {
      if (auto st = qeff::device::RunKernel(op, in, outs, &pool); !st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  std::printf("{\"S\": %lld, \"C\": %lld, \"D\": %lld, \"Hkv\": %lld, \"G\": %lld, \"threads\": %d, \"ms\": %.3f, "
              "\"gmac_per_s\": %.2f}\n",
              static_cast<long long>(S), static_cast<long long>(C), static_cast<long long>(D),
              static_cast<long long>(Hkv), static_cast<long long>(G), threads, best * 1e3, macs / best / 1e9);
  return 0;
}
