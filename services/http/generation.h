// One OpenAI generation request on the engine: a runner::Completion per prompt (each with n
// choices), polled from the HTTP thread. It keeps each choice's text, tokens, logprobs and
// token times, and records every choice in the metrics when it ends (finished, failed, or
// cancelled because the client went away).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/http/openai_json.h"
#include "services/runner/completion.h"
#include "services/runner/model_registry.h"

namespace qeff::http {

class Generation {
 public:
  struct Choice {
    int prompt = 0;  // index into the prompts
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<runner::TokenLogprob> logprobs;
    std::vector<runner::Clock::time_point> token_times;
    bool done = false;
    std::string finish_reason;  // OpenAI's: "stop" or "length"
    runner::GenerationStats stats;
  };
  // What one choice produced since the last Poll.
  struct Delta {
    int index = 0;
    std::string text;
    std::vector<runner::TokenLogprob> logprobs;
    bool done = false;
  };

  // Validates the prompts against the model's context and submits every choice of every prompt
  // (all or none). `default_max_tokens` <= 0 fills the context. `prompt_param` names the request
  // field the prompts came from (for errors).
  static absl::StatusOr<std::unique_ptr<Generation>> Start(std::shared_ptr<runner::LoadedModel> model,
                                                           std::vector<std::vector<int32_t>> prompts,
                                                           const GenerationFields& fields, int default_max_tokens,
                                                           std::string request_id, const std::string& prompt_param);
  ~Generation();  // cancels what still runs (recorded as aborted)

  // Waits up to `timeout` for progress of any choice and appends what came (when `deltas` is
  // given). False once every choice is done or the request failed (status()).
  bool Poll(std::vector<Delta>* deltas, std::chrono::milliseconds timeout);
  // Stops every choice still running (client gone, server stopping); status() becomes `reason`
  // unless every choice had finished.
  void Cancel(absl::Status reason);

  const absl::Status& status() const { return status_; }
  const std::vector<Choice>& choices() const { return choices_; }
  const std::vector<std::vector<int32_t>>& prompts() const { return prompts_; }
  int n() const { return n_; }
  uint64_t seed() const { return seed_; }
  int64_t prompt_tokens() const;      // once per prompt, as OpenAI counts
  int64_t completion_tokens() const;  // over all choices
  const runner::LoadedModel& model() const { return *model_; }

 private:
  Generation() = default;
  void Record(int index, const absl::Status& status);

  std::shared_ptr<runner::LoadedModel> model_;
  std::string id_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<std::unique_ptr<runner::Completion>> completions_;  // one per prompt
  std::vector<bool> running_;                                      // per completion
  std::vector<Choice> choices_;                                    // prompt-major: prompt * n + i
  std::vector<bool> recorded_;
  int n_ = 1;
  uint64_t seed_ = 0;
  absl::Status status_;
};

}  // namespace qeff::http
