// Memory read bandwidth of this machine (the roofline for decode): sums a 1 GiB float array with
// 1..N threads (or THREADS only), best of 5, and prints one JSON line.
//   qeff-membw [GiB=1] [THREADS] [--each-line]
// --each-line: allocate once, then measure again for every line read on stdin (a benchmark
// probing between its runs without a new 1 GiB allocation each time, whose page compaction
// disturbs the memory of the process being measured).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/read_bandwidth.h"

int main(int argc, char** argv) {
  const bool each_line = argc > 1 && std::strcmp(argv[argc - 1], "--each-line") == 0;
  if (each_line) --argc;
  const double gib = argc > 1 ? std::atof(argv[1]) : 1.0;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int only = argc > 2 ? std::atoi(argv[2]) : 0;
  if (!(gib > 0 && gib <= 64) || argc > 3 || (argc > 2 && (only < 1 || only > static_cast<int>(cores)))) {
    std::fprintf(stderr, "usage: qeff-membw [GiB in (0, 64]] [THREADS in 1..%u] [--each-line]\n", cores);
    return 2;
  }
  const size_t n = static_cast<size_t>(gib * (1ull << 30) / sizeof(float));
  qeff::bench::HugeBuffer data(n * sizeof(float));
  if (data.size() == 0) {
    std::fprintf(stderr, "cannot allocate %zu bytes\n", n * sizeof(float));
    return 1;
  }
  const unsigned first = only > 0 ? only : 1, last = only > 0 ? only : cores;
  char line[256];
  do {
    std::printf("{\"bytes\": %zu, \"read_gb_per_s\": {", n * sizeof(float));
    for (unsigned t = first; t <= last; ++t) {
      const double best = qeff::bench::MeasureReadBandwidthGBs(data, static_cast<int>(t), 5);
      std::printf("%s\"%u\": %.1f", t > first ? ", " : "", t, best);
    }
    std::printf("}}\n");
    std::fflush(stdout);
  } while (each_line && std::fgets(line, sizeof(line), stdin) != nullptr);
  return 0;
}
