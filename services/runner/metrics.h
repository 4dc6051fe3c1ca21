// Prometheus metrics of the generation engine, with vLLM's names and meanings (docs/design/
// metrics.md) under the `qeff:` prefix, every series labelled with `model_name`.
//
// The front ends (gRPC Runner.Generate, the HTTP/OpenAI API) call RecordRequest once per engine
// request (one per choice: n = 2 is two requests) when it ends; the gauges are read from the
// schedulers at scrape time. Intervals come from the engine's monotonic clock (GenerationStats
// and the per-token sampling times), never from wall time. RecordRequest also writes the
// request's structured log line.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/runner/scheduler.h"

namespace qeff::runner {

// One engine request that ended.
struct RequestRecord {
  std::string request_id;  // the front end's id (e.g. "cmpl-...", choice index appended for n > 1)
  std::string model;
  std::string frontend;    // "http" or "grpc" (the log line only)
  int prompt_tokens = 0;
  int generated_tokens = 0;
  // "stop" (EOS, a stop token id or a stop string), "length", or "abort" (cancelled, deadline,
  // unloaded, failed). The engine's "eos" may be passed as is: it counts as "stop".
  std::string finish_reason;
  absl::Status status;  // OK for stop/length
  GenerationStats stats;  // queue/prefill/TTFT/E2E; zeros when the request never ran
  std::vector<Clock::time_point> token_times;  // when each generated token was sampled
};

// A loaded causal LM's scheduler load, read at scrape time.
struct ModelGauges {
  std::string model;
  int running = 0;  // requests holding a KV slot
  int waiting = 0;  // queued for one
  int slots = 0;    // KV slots the scheduler uses
};

// A Prometheus histogram with fixed bucket bounds.
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds) : bounds_(&bounds), counts_(bounds.size() + 1, 0) {}
  void Observe(double v);
  const std::vector<double>& bounds() const { return *bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket (not cumulative); last: +Inf
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  const std::vector<double>* bounds_;  // static storage
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  // The process's metrics (both front ends record into it).
  static Metrics& Global();

  // Counters and histograms for one ended request, then one log line (spdlog, info):
  //   request_done id=... model=... frontend=... prompt_tokens=N generated_tokens=N ttft_ms=X
  //   e2e_ms=X finish_reason=... status=OK|CANCELLED: ...
  void RecordRequest(const RequestRecord& record);

  // The Prometheus text exposition (format 0.0.4). Every model in `gauges` gets its gauges and
  // zero-valued counters, so a fresh model's series exist before its first request.
  std::string Render(const std::vector<ModelGauges>& gauges) const;

  // Tests: forget everything recorded.
  void Reset();

 private:
  struct PerModel {
    PerModel();
    uint64_t prompt_tokens = 0, generation_tokens = 0;
    std::map<std::string, uint64_t> success;  // by finished_reason
    Histogram ttft, itl, e2e, queue, prefill, decode, prompt_len, generation_len;
  };
  PerModel& Model(const std::string& name);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, PerModel> models_;
};

// OpenAI's finish_reason for the engine's: "eos" and "stop" are "stop"; "length" stays.
std::string OpenAiFinishReason(const std::string& engine_reason);

}  // namespace qeff::runner
