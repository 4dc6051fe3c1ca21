// Memory read bandwidth of this machine (the roofline for decode): sums a 1 GiB float array with
// 1..N threads, best of 5. Usage: qeff-membw [GiB=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

// Four independent accumulators keep the loads, not the adds, as the bottleneck.
float SumRange(const float* p, size_t n) {
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3;
}

}  // namespace

int main(int argc, char** argv) {
  double gib = argc > 1 ? std::atof(argv[1]) : 1.0;
  size_t n = static_cast<size_t>(gib * (1ull << 30) / sizeof(float));
  std::vector<float> data(n, 1.0f);
  unsigned max_threads = std::max(1u, std::thread::hardware_concurrency());
  std::printf("{\"bytes\": %zu, \"read_gb_per_s\": {", n * sizeof(float));
  for (unsigned t = 1; t <= max_threads; ++t) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<float> partial(t);
      auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (unsigned k = 0; k < t; ++k) {
        pool.emplace_back([&, k] {
          size_t lo = n * k / t, hi = n * (k + 1) / t;
          partial[k] = SumRange(data.data() + lo, hi - lo);
        });
      }
      for (auto& th : pool) th.join();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      volatile float sink = partial[0];
      (void)sink;
      best = std::max(best, n * sizeof(float) / s / 1e9);
    }
    std::printf("%s\"%u\": %.1f", t > 1 ? ", " : "", t, best);
  }
  std::printf("}}\n");
  return 0;
}
