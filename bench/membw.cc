// Memory read bandwidth of this machine (the roofline for decode): sums a 1 GiB float array with
// 1..N threads, best of 5. Usage: qeff-membw [GiB=1]
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench/read_bandwidth.h"

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (!(gib > 0 && gib <= 64)) {
    std::fprintf(stderr, "usage: qeff-membw [GiB in (0, 64]]\n");
    return 2;
  }
  const size_t n = static_cast<size_t>(gib * (1ull << 30) / sizeof(float));
  qeff::bench::HugeBuffer data(n * sizeof(float));
  if (data.size() == 0) {
    std::fprintf(stderr, "cannot allocate %zu bytes\n", n * sizeof(float));
    return 1;
  }
  const unsigned max_threads = std::max(1u, std::thread::hardware_concurrency());
  std::printf("{\"bytes\": %zu, \"read_gb_per_s\": {", n * sizeof(float));
  for (unsigned t = 1; t <= max_threads; ++t) {
    const double best = qeff::bench::MeasureReadBandwidthGBs(data, static_cast<int>(t), 5);
    std::printf("%s\"%u\": %.1f", t > 1 ? ", " : "", t, best);
  }
  std::printf("}}\n");
  return 0;
}
