#include "services/http/generation.h"

#include "absl/strings/str_cat.h"
#include "services/http/errors.h"
#include "services/runner/metrics.h"

namespace qeff::http {

absl::StatusOr<std::unique_ptr<Generation>> Generation::Start(std::shared_ptr<runner::LoadedModel> model,
                                                              std::vector<std::vector<int32_t>> prompts,
                                                              const GenerationFields& f, int default_max_tokens,
                                                              std::string request_id, const std::string& prompt_param) {
  runner::Scheduler& scheduler = *model->scheduler;
  const int ctx = scheduler.ctx_len();
  for (const auto& p : prompts) {
    if (p.empty()) return BadParam(prompt_param, "the prompt is empty (it encodes to no tokens)");
    if (static_cast<int>(p.size()) >= ctx) {
      return BadParam(prompt_param, absl::StrCat("the prompt has ", p.size(), " tokens but model '", model->model_id,
                                                 "' has a context of ", ctx,
                                                 " tokens (room is needed for at least one new token); shorten the "
                                                 "prompt or serve the model with a larger ctx_len"));
    }
  }
  const int vocab = model->session->vocab_size();
  for (const auto& p : prompts) {
    for (int32_t id : p) {
      if (id >= vocab) {
        return BadParam(prompt_param, absl::StrCat("token id ", id, " is outside the model's vocabulary [0, ", vocab, ")"));
      }
    }
  }
  for (int32_t id : f.stop_token_ids) {
    if (id >= vocab) {
      return BadParam("stop_token_ids",
                      absl::StrCat("stop token id ", id, " is outside the model's vocabulary [0, ", vocab, ")"));
    }
  }
  std::unique_ptr<Generation> g(new Generation());
  g->model_ = model;
  g->id_ = std::move(request_id);
  g->n_ = f.n;
  // One seed for the whole request (choice i of every prompt samples with seed + i), drawn when
  // the client gave none, so every request can be replayed.
  g->seed_ = f.seed ? *f.seed : runner::FreshSeed();

  runner::CompletionOptions o;
  o.request.max_new_tokens = f.max_tokens ? *f.max_tokens : default_max_tokens;
  o.request.stop_at_eos = !f.ignore_eos;
  o.request.eos_token_ids = model->eos_token_ids;
  o.request.stop_token_ids = f.stop_token_ids;
  o.request.min_tokens = f.min_tokens;
  o.request.top_logprobs = f.top_logprobs;
  o.request.sampling = f.sampling;
  o.request.sampling.seed = g->seed_;
  o.n = f.n;
  o.seeded = true;
  o.stop = f.stop;
  o.include_stop_str_in_output = f.include_stop_str_in_output;
  o.skip_special_tokens = f.skip_special_tokens;
  for (size_t p = 0; p < prompts.size(); ++p) {
    o.request.prompt = prompts[p];
    auto c = runner::Completion::Start(scheduler, model->tokenizer.get(), o);
    if (!c.ok()) {
      // Earlier prompts' choices are cancelled as `g` goes away; they never started for the client.
      g->recorded_.assign(g->choices_.size(), true);
      return c.status();
    }
    g->completions_.push_back(std::move(*c));
    g->running_.push_back(true);
    for (int i = 0; i < f.n; ++i) {
      Choice ch;
      ch.prompt = static_cast<int>(p);
      g->choices_.push_back(std::move(ch));
      g->recorded_.push_back(false);
    }
  }
  g->prompts_ = std::move(prompts);
  return g;
}

Generation::~Generation() { Cancel(absl::CancelledError("the HTTP request ended")); }

void Generation::Cancel(absl::Status reason) {
  for (const auto& ch : choices_) {
    if (!ch.done && status_.ok()) status_ = reason;  // the request did not finish
  }
  for (size_t k = 0; k < completions_.size(); ++k) {
    if (running_[k]) completions_[k]->Cancel(reason);
    running_[k] = false;
  }
  for (size_t i = 0; i < choices_.size(); ++i) Record(static_cast<int>(i), reason);
}

void Generation::Record(int index, const absl::Status& status) {
  if (recorded_[index]) return;
  recorded_[index] = true;
  const Choice& ch = choices_[index];
  runner::RequestRecord r;
  r.request_id = completions_.size() * static_cast<size_t>(n_) > 1 ? absl::StrCat(id_, "-", index) : id_;
  r.model = model_->model_id;
  r.frontend = "http";
  r.prompt_tokens = static_cast<int>(prompts_.empty() ? 0 : prompts_[ch.prompt].size());
  r.generated_tokens = static_cast<int>(ch.tokens.size());
  r.finish_reason = ch.finish_reason;
  r.status = status;
  r.stats = ch.stats;
  r.token_times = ch.token_times;
  runner::Metrics::Global().RecordRequest(r);
}

bool Generation::Poll(std::vector<Delta>* deltas, std::chrono::milliseconds timeout) {
  bool waited = false, any = false;
  for (size_t k = 0; k < completions_.size(); ++k) {
    if (!running_[k]) continue;
    any = true;
    std::vector<runner::CompletionChunk> chunks;
    // Block on the first running prompt only; the others are polled.
    const bool more = completions_[k]->Next(&chunks, waited ? std::chrono::milliseconds(0) : timeout);
    waited = true;
    for (auto& c : chunks) {
      const int index = static_cast<int>(k) * n_ + c.index;
      Choice& ch = choices_[index];
      ch.text += c.text;
      ch.tokens.insert(ch.tokens.end(), c.tokens.begin(), c.tokens.end());
      ch.token_times.insert(ch.token_times.end(), c.token_times.begin(), c.token_times.end());
      ch.logprobs.insert(ch.logprobs.end(), c.logprobs.begin(), c.logprobs.end());
      if (c.done) {
        ch.done = true;
        ch.finish_reason = runner::OpenAiFinishReason(c.finish_reason);
        ch.stats = c.stats;
      }
      if (deltas != nullptr) deltas->push_back({index, std::move(c.text), std::move(c.logprobs), c.done});
      if (c.done) Record(index, absl::OkStatus());
    }
    if (!more) {
      running_[k] = false;
      if (!completions_[k]->status().ok()) {
        status_ = completions_[k]->status();
        Cancel(status_);
        return false;
      }
    }
  }
  if (!any) return false;
  for (bool r : running_) {
    if (r) return true;
  }
  return false;
}

int64_t Generation::prompt_tokens() const {
  int64_t t = 0;
  for (const auto& p : prompts_) t += static_cast<int64_t>(p.size());
  return t;
}

int64_t Generation::completion_tokens() const {
  int64_t t = 0;
  for (const auto& c : choices_) t += static_cast<int64_t>(c.tokens.size());
  return t;
}

}  // namespace qeff::http
