// Speed of the cpu Linear kernel alone, per weight dtype and batch rows M: weight bytes streamed
// per second (decode, M small) and multiply-adds per second (prefill, M large). Interleaves the
// dtypes round by round so bandwidth drift hits all alike; prints one JSON line per case.
//
//   qeff-linear-bench [--k 2048] [--n 5632] [--m 1,4,8,32,512] [--dtypes fp32,bf16,int8,int4]
//                     [--threads 1] [--rounds 5] [--copies 1]
//   qeff-linear-bench --stack 2048x2048,2048x256,... [--layers 22] [--dtypes ...] [--threads 1]
// --copies C cycles each call through C separately allocated weight copies: with C x the weight
// size well above the last-level cache every call streams from memory, as a decode step's
// Linears do (on this VM 104 MB was still partly cached: int4 read 15-30% faster than at 550 MB).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/util/huge_buffer.h"
#include "device/cpu/kernels.h"
#include "device/cpu/kernels_linalg.h"
#include "device/cpu/kernels_quant.h"
#include "device/cpu/thread_pool.h"

namespace {

using qeff::device::DType;
using qeff::device::TensorRef;

struct Case {
  std::string name;
  DType dtype;
  std::vector<uint8_t> w, scale;  // w: the bytes until MakeCase moves them to huge_w
  size_t w_bytes = 0;
  qeff::util::HugeBuffer huge_w;  // w's bytes in 2 MB pages, as a loaded qpc holds its weights
  TensorRef wref, sref;
  bool scaled = false;
};

Case MakeCase(const std::string& name, int64_t N, int64_t K, std::mt19937& rng) {
  Case c;
  c.name = name;
  std::uniform_int_distribution<int> byte(0, 255);
  auto fill = [&](std::vector<uint8_t>& v, size_t n) {
    v.resize(n);
    for (auto& b : v) b = static_cast<uint8_t>(byte(rng));
  };
  if (name == "fp32") {
    c.dtype = qeff::v1::F32;
    std::vector<float> f(static_cast<size_t>(qeff::device::LinearPanels(N) * K * qeff::device::kLinearPanel));
    std::normal_distribution<float> d(0, 0.02f);
    for (auto& v : f) v = d(rng);
    c.w.resize(static_cast<size_t>(qeff::device::LinearPanels(N) * K * qeff::device::kLinearPanel * 4));
    std::memcpy(c.w.data(), f.data(), std::min(c.w.size(), f.size() * 4));
    c.wref = {c.w.data(), c.dtype, {qeff::device::LinearPanels(N), K, qeff::device::kLinearPanel}};
  } else if (name == "bf16") {
    c.dtype = qeff::v1::BF16;
    fill(c.w, static_cast<size_t>(qeff::device::LinearPanels(N) * K * qeff::device::kLinearPanel * 2));
    for (size_t i = 1; i < c.w.size(); i += 2) c.w[i] = 0x3c;  // finite, small
    c.wref = {c.w.data(), c.dtype, {qeff::device::LinearPanels(N), K, qeff::device::kLinearPanel}};
  } else if (name == "int8" || name == "int4") {
    c.dtype = name == "int8" ? qeff::v1::I8 : qeff::v1::I4;
    const qeff::device::Shape ws = qeff::device::QuantWeightShape(c.dtype, N, K);
    const qeff::device::Shape ss = qeff::device::QuantScaleShape(c.dtype, N, K);
    fill(c.w, static_cast<size_t>(qeff::device::NumElements(ws)));
    if (c.dtype == qeff::v1::I8) {
      std::vector<float> s(static_cast<size_t>(N), 0.001f);
      c.scale.resize(s.size() * 4);
      std::memcpy(c.scale.data(), s.data(), c.scale.size());
    } else {
      c.scale.resize(static_cast<size_t>(qeff::device::NumElements(ss) * 2));
      for (size_t i = 0; i < c.scale.size(); ++i) c.scale[i] = i % 2 ? 0x3c : 0;  // bf16 0.0078
    }
    c.wref = {c.w.data(), c.dtype, ws};
    c.sref = {c.scale.data(), c.dtype == qeff::v1::I8 ? qeff::v1::F32 : qeff::v1::BF16, ss};
    c.scaled = true;
  } else {
    std::fprintf(stderr, "unknown dtype %s (fp32, bf16, int8, int4)\n", name.c_str());
    std::exit(2);
  }
  // The weights and then their scales (64-byte aligned) in 2 MB pages, as a loaded qpc holds them.
  const size_t scale_at = (c.w.size() + 63) / 64 * 64;
  c.huge_w = qeff::util::HugeBuffer(scale_at + c.scale.size());
  std::memcpy(c.huge_w.data(), c.w.data(), c.w.size());
  c.wref.data = c.huge_w.data();
  if (c.scaled) {
    std::memcpy(static_cast<uint8_t*>(c.huge_w.data()) + scale_at, c.scale.data(), c.scale.size());
    c.sref.data = static_cast<uint8_t*>(c.huge_w.data()) + scale_at;
  }
  c.w_bytes = c.w.size();
  c.w = {};
  return c;
}

// A decode step's Linears in order (--stack, one layer's KxN list, --layers times), each with its
// own weights, back to back at M=1: what the kernel reads per second across call boundaries and
// shapes, without the step's other ops.
int RunStack(const std::string& stack, int layers, const std::string& dtypes, int threads, int rounds,
             std::mt19937& rng) {
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (const auto& kn : absl::StrSplit(stack, ',')) {
    std::vector<std::string> parts = absl::StrSplit(kn, 'x');
    int64_t K = 0, N = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &K) || !absl::SimpleAtoi(parts[1], &N) || K < 1 || N < 1) {
      std::fprintf(stderr, "--stack: expected KxN with positive K and N, got '%s'\n", std::string(kn).c_str());
      return 2;
    }
    shapes.emplace_back(K, N);
  }
  qeff::device::ThreadPool pool(threads);
  for (const auto& d : absl::StrSplit(dtypes, ',')) {
    std::vector<Case> calls;
    std::vector<qeff::v1::Op> ops;
    double bytes = 0;
    int64_t max_dim = 0;
    for (int l = 0; l < layers; ++l) {
      for (const auto& [K, N] : shapes) {
        calls.push_back(MakeCase(std::string(d), N, K, rng));
        bytes += static_cast<double>(calls.back().w_bytes + calls.back().scale.size());
        qeff::v1::Op op;
        op.set_type("Linear");
        qeff::device::SetAttrInt(op, "out_features", N);
        ops.push_back(op);
        max_dim = std::max({max_dim, K, N});
      }
    }
    std::vector<float> x(static_cast<size_t>(max_dim), 0.5f), y(static_cast<size_t>(max_dim));
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < calls.size(); ++i) {
        const auto& [K, N] = shapes[i % shapes.size()];
        const Case& c = calls[i];
        std::vector<TensorRef> in = {{x.data(), qeff::v1::F32, {1, K}}, c.wref, TensorRef{}};
        if (c.scaled) in.push_back(c.sref);
        auto st = qeff::device::RunKernel(ops[i], in, {{y.data(), qeff::v1::F32, {1, N}}}, &pool);
        if (!st.ok()) {
          std::fprintf(stderr, "%s\n", st.ToString().c_str());
          return 1;
        }
      }
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("{\"dtype\": \"%s\", \"threads\": %d, \"stack\": \"%s\", \"layers\": %d, \"ms\": %.3f, "
                "\"weight_gb_per_s\": %.2f}\n",
                std::string(d).c_str(), threads, stack.c_str(), layers, best * 1e3, bytes / best / 1e9);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qeff Linear kernel benchmark"};
  int64_t K = 2048, N = 5632;
  int threads = 1, rounds = 5, copies = 1;
  std::string ms = "1,4,8,32,512", dtypes = "fp32,bf16,int8,int4";
  app.add_option("--k", K);
  app.add_option("--n", N);
  app.add_option("--m", ms);
  app.add_option("--dtypes", dtypes);
  app.add_option("--threads", threads);
  app.add_option("--rounds", rounds);
  app.add_option("--copies", copies)->check(CLI::PositiveNumber);
  std::string stack;
  int layers = 22;
  app.add_option("--stack", stack, "KxN,KxN,...: one layer's Linears, run in order at M=1 for --layers layers");
  app.add_option("--layers", layers)->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  std::mt19937 rng(1);
  if (!stack.empty()) return RunStack(stack, layers, dtypes, threads, rounds, rng);
  std::vector<std::vector<Case>> cases;  // [dtype][copy]
  for (const auto& d : absl::StrSplit(dtypes, ',')) {
    cases.emplace_back();
    for (int c = 0; c < copies; ++c) cases.back().push_back(MakeCase(std::string(d), N, K, rng));
  }
  qeff::device::ThreadPool pool(threads);
  qeff::v1::Op op;
  op.set_type("Linear");
  qeff::device::SetAttrInt(op, "out_features", N);
  for (const auto& mstr : absl::StrSplit(ms, ',')) {
    const int64_t M = std::stoll(std::string(mstr));
    std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N));
    std::normal_distribution<float> d(0, 1);
    for (auto& v : x) v = d(rng);
    std::vector<double> best(cases.size(), 1e30);
    for (int r = 0; r < rounds; ++r) {
      for (size_t i = 0; i < cases.size(); ++i) {
        const std::vector<TensorRef> out = {{y.data(), qeff::v1::F32, {M, N}}};
        // Enough calls for ~0.2 s of work at a guessed speed, at least 3.
        const int calls = std::max<int64_t>(
            3, std::min<int64_t>(200, (int64_t{4} << 30) / (M * N * K + cases[i][0].w_bytes)));
        const auto t0 = std::chrono::steady_clock::now();
        for (int j = 0; j < calls; ++j) {
          const Case& c = cases[i][j % copies];
          std::vector<TensorRef> in = {{x.data(), qeff::v1::F32, {M, K}}, c.wref, TensorRef{}};
          if (c.scaled) in.push_back(c.sref);
          auto st = qeff::device::RunKernel(op, in, out, &pool);
          if (!st.ok()) {
            std::fprintf(stderr, "%s\n", st.ToString().c_str());
            return 1;
          }
        }
        best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
      }
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i][0];
      const double bytes = static_cast<double>(c.w_bytes + c.scale.size());
      std::printf("{\"dtype\": \"%s\", \"threads\": %d, \"M\": %lld, \"K\": %lld, \"N\": %lld, \"ms\": %.3f, "
                  "\"weight_gb_per_s\": %.2f, \"gmac_per_s\": %.2f}\n",
                  c.name.c_str(), threads, static_cast<long long>(M), static_cast<long long>(K),
                  static_cast<long long>(N), best[i] * 1e3, bytes / best[i] / 1e9,
                  static_cast<double>(M) * N * K / best[i] / 1e9);
    }
  }
  return 0;
}
