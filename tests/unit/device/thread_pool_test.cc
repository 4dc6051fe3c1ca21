// ThreadPool::ParallelFor's partition: every index exactly once, chunks of whole grains (but
// for the end of n) whose sizes differ by at most one grain, nested calls inline.
#include "device/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace qeff::device {
namespace {

TEST(ThreadPool, ParallelForCoversEachIndexOnceInBalancedWholeGrains) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t grain : {1, 2, 3}) {
      for (int64_t n : {1, 2, 5, 7, 20, 40, 41, 176, 500, 1001}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> chunks;
        pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
          std::lock_guard<std::mutex> l(mu);
          chunks.emplace_back(b, e);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << n << " " << i;
        // Sizes in grains (the chunk ending at n may hold a partial one).
        int64_t lo = n, hi = 0;
        for (const auto& [b, e] : chunks) {
          EXPECT_EQ(b % grain, 0) << "n " << n << " grain " << grain;
          if (e != n) {
            EXPECT_EQ(e % grain, 0) << "n " << n << " grain " << grain;
          }
          lo = std::min(lo, (e - b + grain - 1) / grain);
          hi = std::max(hi, (e - b + grain - 1) / grain);
        }
        EXPECT_LE(hi - lo, 1) << "n " << n << " grain " << grain << " threads " << threads;
      }
    }
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.ParallelFor(10, 1, [&](int64_t b2, int64_t e2) { sum.fetch_add(e2 - b2); });
    }
  });
  EXPECT_EQ(sum.load(), 80);
}

}  // namespace
}  // namespace qeff::device
