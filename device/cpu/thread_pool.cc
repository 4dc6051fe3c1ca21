#include "device/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::device {
namespace {

std::mutex process_mu;
int process_threads = 0;
thread_local int call_limit = 0;     // LimitScope
thread_local bool in_parallel = false;  // inside a ParallelFor body (nested calls run inline)

}  // namespace

ThreadPool& ThreadPool::Process() {
  static ThreadPool* pool = [] {
    std::lock_guard<std::mutex> l(process_mu);
    return new ThreadPool(process_threads);  // never destroyed: workers outlive static destructors
  }();
  return *pool;
}

void ThreadPool::ConfigureProcess(int num_threads) {
  std::lock_guard<std::mutex> l(process_mu);
  process_threads = num_threads;
}

ThreadPool::LimitScope::LimitScope(int max_threads) : saved_(call_limit) { call_limit = max_threads; }
ThreadPool::LimitScope::~LimitScope() { call_limit = saved_; }

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  while (true) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_acq_rel);
    if (c >= num_chunks_) return;
    // Chunk c holds q or q+1 grains (q = grains / chunks), the larger ones first: threads of
    // equal speed then finish together (a 40-panel decode Linear in 7 chunks of 6 ran one
    // thread 22 panels while the other ran 18).
    const int64_t q = grains_ / num_chunks_, r = grains_ % num_chunks_;
    const int64_t begin = (c * q + std::min(c, r)) * grain_;
    const int64_t end = std::min(n_, begin + (q + (c < r ? 1 : 0)) * grain_);
    if (begin < end) (*fn_)(begin, end);
    done_chunks_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Worker(int index) {
  uint64_t seen = 0;
  while (true) {
    // Spin ~100 µs for the next job, then sleep.
    auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> l(mu_);
      wake_.wait(l, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    if (index < active_threads_) {
      in_parallel = true;
      RunChunks();
      in_parallel = false;
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t grains = (n + grain - 1) / grain;
  const int threads = call_limit > 0 ? std::min(call_limit, num_threads_) : num_threads_;
  if (threads == 1 || grains == 1 || in_parallel) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> job(job_mu_);
  // Workers still leaving the previous job must see its state unchanged.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins > 1000) std::this_thread::yield();
  }
  // A few chunks per thread balance uneven progress without much counter traffic.
  fn_ = &fn;
  n_ = n;
  grain_ = grain;
  grains_ = grains;
  num_chunks_ = std::min<int64_t>(int64_t{4} * threads, grains);
  active_threads_ = threads;
  next_chunk_.store(0, std::memory_order_release);
  done_chunks_.store(0, std::memory_order_release);
  pending_.store(num_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> l(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  in_parallel = true;
  RunChunks();
  in_parallel = false;
  // Every chunk is claimed; wait for the ones still running. A worker that never got a chunk
  // leaves the job later (the next ParallelFor waits for that).
  while (done_chunks_.load(std::memory_order_acquire) != num_chunks_) {
#if defined(__x86_64__)
    _mm_pause();
#endif
  }
}

}  // namespace qeff::device
