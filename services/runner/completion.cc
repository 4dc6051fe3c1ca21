#include "services/runner/completion.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {

absl::StatusOr<std::unique_ptr<Completion>> Completion::Start(Scheduler& scheduler,
                                                              const tokenizer::Tokenizer* tokenizer,
                                                              CompletionOptions options) {
  constexpr int kMaxChoices = 16;
  if (options.n < 1 || options.n > kMaxChoices) {
    return absl::InvalidArgumentError(absl::StrCat("n must be in [1, ", kMaxChoices, "], got ", options.n));
  }
  if (!options.stop.empty() && tokenizer == nullptr) {
    return absl::FailedPreconditionError("stop strings need the model's tokenizer files; pass stop token ids instead");
  }
  constexpr size_t kMaxStops = 16, kMaxStopBytes = 1024;
  if (options.stop.size() > kMaxStops) return absl::InvalidArgumentError("at most 16 stop strings");
  for (const auto& s : options.stop) {
    if (s.size() > kMaxStopBytes) return absl::InvalidArgumentError("a stop string is longer than 1024 bytes");
  }
  std::unique_ptr<Completion> c(new Completion());
  c->seed_ = options.seeded ? options.request.sampling.seed : FreshSeed();
  c->logprobs_ = options.request.top_logprobs >= 0;
  for (int i = 0; i < options.n; ++i) {
    GenerationRequest request = options.request;
    request.sampling.seed = c->seed_ + static_cast<uint64_t>(i);
    auto handle = scheduler.Submit(std::move(request));
    if (!handle.ok()) {
      c->Cancel(absl::CancelledError("another choice of the request was refused"));
      return handle.status();
    }
    Choice ch;
    ch.handle = std::move(*handle);
    if (tokenizer != nullptr) {
      ch.decoder = std::make_unique<tokenizer::StreamDecoder>(*tokenizer, options.skip_special_tokens);
      if (!options.stop.empty()) ch.stop = std::make_unique<StopStringMatcher>(options.stop, options.include_stop_str_in_output);
    }
    c->choices_.push_back(std::move(ch));
  }
  return c;
}

Completion::~Completion() { Cancel(absl::CancelledError("the caller stopped reading")); }

void Completion::Cancel(absl::Status reason) {
  for (auto& ch : choices_) {
    if (!ch.reported) ch.handle->Cancel(reason);
  }
}

void Completion::Fail(absl::Status status) {
  if (status_.ok()) status_ = std::move(status);
  Cancel(absl::CancelledError("another choice of the request failed"));
  for (auto& ch : choices_) ch.reported = true;
}

bool Completion::Next(std::vector<CompletionChunk>* chunks, std::chrono::milliseconds timeout) {
  bool waited = false;
  for (int i = 0; i < static_cast<int>(choices_.size()); ++i) {
    if (choices_[i].reported) continue;
    // Block on the first unfinished choice only; the others are polled.
    Drain(i, chunks, waited ? std::chrono::milliseconds(0) : timeout);
    waited = true;
    if (!status_.ok()) return false;
  }
  for (const auto& ch : choices_) {
    if (!ch.reported) return true;
  }
  return false;
}

bool Completion::Drain(int i, std::vector<CompletionChunk>* chunks, std::chrono::milliseconds timeout) {
  Choice& ch = choices_[i];
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;
  std::vector<Clock::time_point> times;
  const bool done = ch.handle->Wait(&tokens, timeout, logprobs_ ? &logprobs : nullptr, &times);
  const size_t first = chunks->size();
  // One chunk per token: a client streams tokens as they are sampled even when several were
  // ready at once (a fast model outruns the reader; merging them made a stream one message).
  for (size_t k = 0; k < tokens.size(); ++k) {
    CompletionChunk c;
    c.index = i;
    c.tokens.push_back(tokens[k]);
    if (k < logprobs.size()) c.logprobs.push_back(std::move(logprobs[k]));
    if (k < times.size()) c.token_times.push_back(times[k]);
    if (ch.decoder) {
      const std::string piece = ch.decoder->Push(tokens[k]);
      c.text = ch.stop ? ch.stop->Push(piece) : piece;
    }
    chunks->push_back(std::move(c));
    ++ch.emitted;
    if (ch.stop && ch.stop->stopped()) {
      // The rest is past the stop: drop it and end the request now.
      ch.stopped = true;
      ch.handle->Cancel(absl::CancelledError("a stop string matched"));
      break;
    }
  }
  // The choice's last chunk (a new, empty one when this call brought no token).
  auto last = [&]() -> CompletionChunk& {
    if (chunks->size() == first) {
      chunks->emplace_back();
      chunks->back().index = i;
    }
    return chunks->back();
  };
  if (ch.stopped) {
    // Wait for the scheduler to release the slot (at most one step) to report its stats.
    std::vector<int32_t> rest;
    while (!ch.handle->Wait(&rest, std::chrono::milliseconds(100))) rest.clear();
    CompletionChunk& c = last();
    c.done = true;
    c.finish_reason = "stop";
    c.stats = ch.handle->result().stats;
    c.stats.generated_tokens = ch.emitted;
    ch.reported = true;
    return true;
  }
  if (done) {
    if (!ch.handle->status().ok()) {
      chunks->resize(first);
      Fail(ch.handle->status());
      return false;
    }
    CompletionChunk& c = last();
    if (ch.decoder) {
      const std::string tail = ch.decoder->Flush();
      if (ch.stop) {
        c.text += ch.stop->Push(tail);
        c.text += ch.stop->Flush();
      } else {
        c.text += tail;
      }
    }
    const GenerationResult& r = ch.handle->result();
    c.done = true;
    c.finish_reason = ch.stop && ch.stop->stopped() ? "stop" : r.finish_reason;
    c.stats = r.stats;
    ch.reported = true;
  }
  return chunks->size() > first;
}

}  // namespace qeff::runner
