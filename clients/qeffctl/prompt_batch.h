// Several prompts in one qeffctl call (`infer` / `generate --prompts-file FILE`), like
// QEfficient's generate(prompts=[...]): every prompt is its own Generate stream, sent
// concurrently so the runner's scheduler batches them, with results kept in input order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qeff/v1/runner.pb.h"

namespace qeffctl {

// One line of a prompts file: {"prompt": "..."} or {"input_ids": [1, 2, 3]}.
struct PromptLine {
  std::string prompt;
  std::vector<int64_t> input_ids;
};

// Reads a JSON-lines prompts file (blank lines skipped). INVALID_ARGUMENT names the bad line.
absl::StatusOr<std::vector<PromptLine>> ReadPromptsFile(const std::string& path);

struct PromptResult {
  absl::Status status;
  std::vector<int64_t> generated;
  std::string text;
  qeff::v1::GenerateEvent last;  // the final event (stats, prompt ids, finish reason)
};

struct BatchStats {
  int prompts = 0;
  int64_t generated_tokens = 0;
  double e2e_ms = 0;              // wall time of the whole batch
  double ttft_ms_avg = 0;         // per prompt, QEfficient's "Average Prefill time"
  double total_tokens_per_s = 0;  // all generated tokens / e2e
  double decode_tokens_per_s = 0; // tokens after each prompt's first / (e2e - average TTFT)
};

// Runs every request against the runner at `address`, at most `concurrency` streams at a time.
std::vector<PromptResult> GenerateAll(const std::string& address, const std::vector<qeff::v1::GenerateRequest>& requests,
                                      int concurrency, BatchStats* stats);

}  // namespace qeffctl
