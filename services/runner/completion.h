// A generation as the front ends (gRPC Runner.Generate, the HTTP/OpenAI API) see it: `n`
// choices submitted to the model's scheduler, each streamed as text through the tokenizer's
// stream decoder, cut at stop strings (matched across token boundaries), with per-token
// log-probabilities when asked. The text work happens on the caller's thread, never on the
// scheduler's.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "services/runner/scheduler.h"
#include "services/runner/stop_strings.h"

namespace qeff::runner {

struct CompletionOptions {
  GenerationRequest request;  // prompt, limits, stop ids, EOS handling, logprobs, sampling
  int n = 1;                  // choices; choice i samples with seed + i
  bool seeded = false;        // false: draw a fresh seed (reported by seed())
  std::vector<std::string> stop;  // stop strings; finish_reason "stop", text ends before them
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = false;  // in the streamed text
};

// One new token of one choice (with its text, after stop-string hold-back), or the final
// chunk carrying done.
struct CompletionChunk {
  int index = 0;
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<TokenLogprob> logprobs;  // one per token when logprobs were asked for
  std::vector<Clock::time_point> token_times;  // when each token was sampled
  bool done = false;                   // last chunk of this choice
  std::string finish_reason;           // on done: "length", "eos" or "stop"
  GenerationStats stats;               // on done
};

class Completion {
 public:
  // Validates and submits every choice (all or none: RESOURCE_EXHAUSTED etc. from the
  // scheduler). `tokenizer` may be null (no text, no stop strings).
  static absl::StatusOr<std::unique_ptr<Completion>> Start(Scheduler& scheduler, const tokenizer::Tokenizer* tokenizer,
                                                           CompletionOptions options);
  ~Completion();  // cancels what is still running

  // Waits up to `timeout` for progress and appends a chunk per new token of each choice (and
  // a final one carrying done when no token came with it). Returns
  // false once every choice is done and reported; an error of any choice (cancelled, deadline,
  // unloaded, device failure) ends the completion: see status().
  bool Next(std::vector<CompletionChunk>* chunks, std::chrono::milliseconds timeout);
  // Stops every choice (client gone, deadline): they end with `reason`.
  void Cancel(absl::Status reason);

  const absl::Status& status() const { return status_; }
  uint64_t seed() const { return seed_; }
  int n() const { return static_cast<int>(choices_.size()); }

 private:
  struct Choice {
    std::shared_ptr<RequestHandle> handle;
    std::unique_ptr<tokenizer::StreamDecoder> decoder;
    std::unique_ptr<StopStringMatcher> stop;
    int emitted = 0;  // tokens reported
    bool stopped = false;  // a stop string matched: the rest of the request is dropped
    bool reported = false;
  };
  Completion() = default;
  // Appends what choice `i` has (waiting up to `timeout`) to `chunks`, a chunk per token (the
  // last one carries done); true when it appended any.
  bool Drain(int i, std::vector<CompletionChunk>* chunks, std::chrono::milliseconds timeout);
  // A failed choice ends the completion: the others are cancelled.
  void Fail(absl::Status status);

  std::vector<Choice> choices_;
  uint64_t seed_ = 0;
  bool logprobs_ = false;
  absl::Status status_;
};

}  // namespace qeff::runner
