// The worker threads for data-parallel kernels. One pool per process (Process()), shared by every
// loaded model: two models never start competing pools. The calling thread takes part, so a
// pool of N threads starts N-1 workers. Workers spin briefly before sleeping because decode
// dispatches ~50 small parallel regions per token and a condvar wake-up costs tens of µs; an
// idle pool sleeps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qeff::device {

class ThreadPool {
 public:
  // num_threads <= 0: one per hardware thread.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool, created on first use with ConfigureProcess's size (default: one
  // thread per core). ConfigureProcess after the first Process() call has no effect.
  static ThreadPool& Process();
  static void ConfigureProcess(int num_threads);

  int size() const { return num_threads_; }

  // Splits [0, n) into contiguous chunks of whole grains (but for the end of n), sizes within
  // one grain of each other, and runs fn(begin, end) on them in parallel; returns when all are
  // done. Threads take chunks from a shared counter, so a worker the OS has descheduled delays
  // one small chunk, not a fixed half of the work. Calls from different threads (several
  // models' schedulers) run one job at a time; a call from inside fn runs inline.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // While alive, ParallelFor calls made by this thread use at most `max_threads` threads
  // (<= 0: all). A session uses it to honor its qpc's num_cores on the shared pool.
  class LimitScope {
   public:
    explicit LimitScope(int max_threads);
    ~LimitScope();
    LimitScope(const LimitScope&) = delete;
    LimitScope& operator=(const LimitScope&) = delete;

   private:
    int saved_;
  };

 private:
  void Worker(int index);
  void RunChunks();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // The current job.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1, grains_ = 0, num_chunks_ = 0;
  int active_threads_ = 0;  // workers with index < this take part
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<int64_t> done_chunks_{0};
};

}  // namespace qeff::device
