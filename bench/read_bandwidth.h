// Memory read bandwidth, the roofline for decode: threads sum disjoint parts of a large buffer
// with wide vector loads and many independent accumulators, so loads (not adds) are the limit.
// The buffer lives in 2 MB pages, like the runtime's weights (4 KB pages measure ~25% lower
// here because the hardware prefetcher stops at page boundaries).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::bench {

// Sums p[0, n) read as `streams` (1, 2 or 4) sequential streams at once, one per equal part.
// Decode kernels read two or more weight streams per core; on this VM one core reads 7-17% more
// from 2-8 streams than from one, so a one-stream probe would sit below what a kernel reaches.
#if defined(__x86_64__)
// GCC 12 reports its own intrinsics' undefined-vector idiom as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
__attribute__((target("avx512f"))) inline float SumAvx512(const float* p, size_t n, int streams) {
  __m512 a[8];
  for (auto& v : a) v = _mm512_setzero_ps();
  const int per_stream = 8 / streams;  // vectors of each stream per step
  const size_t part = n / streams / 128 * 128;
  for (size_t i = 0; i < part; i += 16 * per_stream) {
    for (int s = 0; s < streams; ++s) {
      const float* q = p + s * part + i;
      for (int k = 0; k < per_stream; ++k) a[s * per_stream + k] = _mm512_add_ps(a[s * per_stream + k], _mm512_loadu_ps(q + 16 * k));
    }
  }
  for (int k = 1; k < 8; ++k) a[0] = _mm512_add_ps(a[0], a[k]);
  float s = _mm512_reduce_add_ps(a[0]);
  for (size_t i = part * streams; i < n; ++i) s += p[i];
  return s;
}
#pragma GCC diagnostic pop
#endif

inline float SumScalar(const float* p, size_t n) {
  float a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += p[i + k];
  float s = 0;
  for (float v : a) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

// A 2 MB-aligned float buffer in transparent huge pages, filled with ones.
class HugeBuffer {
 public:
  explicit HugeBuffer(size_t bytes) : bytes_((bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20)) {
    raw_ = ::mmap(nullptr, bytes_ + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw_ == MAP_FAILED) {
      raw_ = nullptr;
      return;
    }
    data_ = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(raw_) + (2u << 20) - 1) & ~uintptr_t{(2u << 20) - 1});
    ::madvise(data_, bytes_, MADV_HUGEPAGE);
    std::fill(data_, data_ + size(), 1.0f);
  }
  ~HugeBuffer() {
    if (raw_ != nullptr) ::munmap(raw_, bytes_ + (2u << 20));
  }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  const float* data() const { return data_; }
  size_t size() const { return data_ ? bytes_ / sizeof(float) : 0; }

 private:
  size_t bytes_;
  void* raw_ = nullptr;
  float* data_ = nullptr;
};

// Best of `reps` passes over `data` with `threads` threads, each pass reading 1, 2 and 4
// streams per thread (the best of all), in GB/s.
inline double MeasureReadBandwidthGBs(const HugeBuffer& data, int threads, int reps) {
  const size_t n = data.size();
#if defined(__x86_64__)
  const bool avx512 = __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    for (int streams : {1, 2, 4}) {
      if (!avx512 && streams > 1) break;
      std::vector<float> partial(threads);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int k = 0; k < threads; ++k) {
        pool.emplace_back([&, k] {
          const size_t lo = n * k / threads, hi = n * (k + 1) / threads;
#if defined(__x86_64__)
          partial[k] = avx512 ? SumAvx512(data.data() + lo, hi - lo, streams) : SumScalar(data.data() + lo, hi - lo);
#else
          partial[k] = SumScalar(data.data() + lo, hi - lo);
#endif
        });
      }
      for (auto& th : pool) th.join();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      volatile float sink = partial[0];
      (void)sink;
      best = std::max(best, static_cast<double>(n * sizeof(float)) / s / 1e9);
    }
  }
  return best;
}

}  // namespace qeff::bench
