// The engine of one loaded causal LM: a bounded queue of generation requests and a loop that
// gives them KV slots and runs the device.
//
// A continuous-batching qpc (compiled with full_batch_size N) has N KV slots. Each loop
// iteration admits queued requests into free slots, runs one prefill chunk of one sequence that
// is still reading its prompt (batch 1, batch_index = its slot), and then one batched decode step
// for every sequence that is generating, on the smallest compiled decode batch that holds them
// (rows beyond the active ones are padding: position -1 on a slot no generating sequence uses).
// So running streams keep flowing while a new prompt is read, and a step costs what its active
// rows need. A qpc without continuous batching has one slot: requests run one after another.
//
// Requests keep their own sampling parameters, seed, limits and stop condition. Tokens go into
// the request's own buffer (RequestHandle), so a slow reader never stalls the batch.
// Cancellation and deadlines free the slot at the next iteration.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "device/session.h"
#include "services/runner/sampler.h"

namespace qeff::runner {

using Clock = std::chrono::steady_clock;

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 0;  // <= 0: fill the context (ctx_len - prompt length)
  bool stop_at_eos = false;             // end at any of eos_token_ids (finish_reason "eos")
  std::vector<int32_t> eos_token_ids;   // the tokenizer's and generation_config.json's
  std::vector<int32_t> stop_token_ids;  // always end there (finish_reason "stop")
  int min_tokens = 0;                   // EOS and stop ids do not end the request before this
  int top_logprobs = -1;                // -1: no logprobs; k >= 0: the chosen token's + k best
  SamplingConfig sampling;
  Clock::time_point deadline = Clock::time_point::max();
};

// Log-probability (log-softmax of the model's raw logits) of a generated token and of the
// `top_logprobs` most likely tokens at that step.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

// Named as QEfficient prints them (see GenerationStats in runner.proto). Times count from the
// request's arrival, so TTFT includes the wait for a slot (queue_ms).
struct GenerationStats {
  double queue_ms = 0;
  double prefill_ms = 0;           // slot granted until the first token
  double ttft_ms = 0;              // arrival until the first token
  double decode_tokens_per_s = 0;  // tokens after the first / time after the first
  double total_tokens_per_s = 0;   // all generated tokens / E2E time
  double e2e_ms = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int prefill_chunks = 0;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // new tokens only
  std::string finish_reason;    // "length", "eos" or "stop" (a stop token id)
  GenerationStats stats;
};

// One submitted request, shared by the scheduler (producer) and its reader.
class RequestHandle {
 public:
  // Waits until there are tokens the reader has not taken, the request ended, or `timeout`
  // passed. Appends the new tokens to *tokens (and their log-probabilities to *logprobs when
  // given and requested). Returns true once the request has ended and every token was taken;
  // then status() and result() are final.
  // *times gets each token's sampling time (the engine's clock) when given.
  bool Wait(std::vector<int32_t>* tokens, std::chrono::milliseconds timeout,
            std::vector<TokenLogprob>* logprobs = nullptr, std::vector<Clock::time_point>* times = nullptr);
  // Asks the scheduler to stop the request (client gone, deadline): it ends with `reason` and its
  // slot is freed at the next iteration.
  void Cancel(absl::Status reason);

  const absl::Status& status() const { return status_; }
  const GenerationResult& result() const { return result_; }

 private:
  friend class Scheduler;
  void Push(int32_t token, TokenLogprob* logprob);
  void Finish(absl::Status status);
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> unread_;
  std::vector<TokenLogprob> unread_logprobs_;
  std::vector<Clock::time_point> unread_times_;
  bool finished_ = false;
  absl::Status status_;
  GenerationResult result_;  // written by the scheduler; final once finished
  std::atomic<bool> cancelled_{false};
  absl::Status cancel_reason_;
};

struct SchedulerOptions {
  int max_queued_requests = 64;  // waiting for a slot; beyond that Submit is RESOURCE_EXHAUSTED
  int max_active_slots = 0;      // 0 = every KV slot of the qpc
  std::string model_id;          // for messages
};

class Scheduler {
 public:
  // Starts the loop thread. The session must outlive the scheduler and nobody else may run it.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(device::Session* session, SchedulerOptions options);
  ~Scheduler();  // Shutdown(UNAVAILABLE) and join.
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Validates the request (prompt length and ids against the qpc) and queues it.
  // INVALID_ARGUMENT for bad requests, RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE
  // after Shutdown.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerationRequest request);

  // Ends every queued and running request with `reason` and stops the loop.
  void Shutdown(absl::Status reason);

  struct Load {
    int slots = 0;   // KV slots in use by the scheduler
    int active = 0;  // requests holding a slot
    int queued = 0;
    int max_queued = 0;
  };
  Load load() const;
  int ctx_len() const { return ctx_len_; }

 private:
  struct Pending {
    GenerationRequest request;
    std::shared_ptr<RequestHandle> handle;
    Clock::time_point arrival;
  };
  struct Slot {
    std::shared_ptr<RequestHandle> handle;  // null = free
    GenerationRequest request;
    std::unique_ptr<Sampler> sampler;
    std::vector<int32_t> order;    // logprobs: scratch for the top-k (vocab entries)
    int prefilled = 0;             // prompt tokens already in the cache
    int position = 0;              // position of `next` once it is fed back
    int32_t next = 0;              // last sampled token, not yet in the cache
    int max_new = 0;
    int chunks = 0;
    int written = 0;               // cache positions [0, written) may hold an earlier request's rows
    Clock::time_point arrival, admitted, first_token;
    bool decoding() const { return handle && prefilled == static_cast<int>(request.prompt.size()); }
  };

  Scheduler(device::Session* session, SchedulerOptions options);
  absl::Status Init();
  void Loop();
  // Moves queued requests into free slots; drops queued requests that were cancelled or expired.
  void Admit();
  absl::Status Prefill(int slot);
  absl::Status Decode();
  // Samples from `logits` for `slot`, hands the token over and ends the request when it is done.
  void Emit(int slot, const float* logits);
  void FinishSlot(int slot, absl::Status status, std::string finish_reason);
  int FindSpec(int batch, int seq_len) const;

  device::Session* session_;
  SchedulerOptions options_;
  int vocab_ = 0;
  int ctx_len_ = 0;
  int chunk_ = 0;           // prefill seq_len
  int prefill_spec_ = -1;
  int prefill_batch_ = 1;   // rows of the prefill specialization (non-CB: every row gets the prompt)
  bool batched_ = false;    // continuous batching: batch_index picks the slot of each row
  std::vector<std::pair<int, int>> decode_specs_;  // (batch, spec), ascending batch

  // Host IO buffers, sized once for the largest call.
  std::vector<int64_t> ids_, pos_, batch_index_;
  std::vector<float> logits_row_;
  std::vector<int> rows_;  // decode: slot of each active row

  std::vector<Slot> slots_;  // touched only by the loop thread
  int next_prefill_ = 0;     // round-robin among slots reading their prompt

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  int active_ = 0;  // slots holding a request (for load())
  bool stopping_ = false;
  absl::Status stop_reason_;
  std::thread thread_;
};

}  // namespace qeff::runner
