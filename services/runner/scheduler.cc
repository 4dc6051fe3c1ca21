#include "services/runner/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {
namespace {

double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

}  // namespace

// ---- RequestHandle ----

bool RequestHandle::Wait(std::vector<int32_t>* tokens, std::chrono::milliseconds timeout,
                         std::vector<TokenLogprob>* logprobs, std::vector<Clock::time_point>* times) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, timeout, [&] { return !unread_.empty() || finished_; });
  tokens->insert(tokens->end(), unread_.begin(), unread_.end());
  unread_.clear();
  if (logprobs != nullptr) {
    for (auto& lp : unread_logprobs_) logprobs->push_back(std::move(lp));
  }
  unread_logprobs_.clear();
  if (times != nullptr) times->insert(times->end(), unread_times_.begin(), unread_times_.end());
  unread_times_.clear();
  return finished_;
}

void RequestHandle::Cancel(absl::Status reason) {
  std::lock_guard<std::mutex> l(mu_);
  if (cancelled_.load()) return;
  cancel_reason_ = std::move(reason);
  cancelled_.store(true);
}

void RequestHandle::Push(int32_t token, TokenLogprob* logprob) {
  {
    std::lock_guard<std::mutex> l(mu_);
    unread_.push_back(token);
    unread_times_.push_back(Clock::now());
    if (logprob != nullptr) unread_logprobs_.push_back(std::move(*logprob));
  }
  cv_.notify_one();
}

void RequestHandle::Finish(absl::Status status) {
  {
    std::lock_guard<std::mutex> l(mu_);
    status_ = std::move(status);
    finished_ = true;
  }
  cv_.notify_all();
}

// ---- Scheduler ----

Scheduler::Scheduler(device::Session* session, SchedulerOptions options)
    : session_(session), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(device::Session* session, SchedulerOptions options) {
  if (options.max_queued_requests < 0) return absl::InvalidArgumentError("max_queued_requests must be >= 0");
  if (options.max_active_slots < 0) return absl::InvalidArgumentError("max_active_slots must be >= 0");
  std::unique_ptr<Scheduler> s(new Scheduler(session, std::move(options)));
  QEFF_RETURN_IF_ERROR(s->Init());
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  return s;
}

Scheduler::~Scheduler() { Shutdown(absl::UnavailableError("the model is being unloaded")); }

absl::Status Scheduler::Init() {
  const auto& specs = session_->specializations();
  vocab_ = session_->vocab_size();
  if (specs.empty() || vocab_ <= 0) return absl::FailedPreconditionError("the qpc has no logits output to generate from");
  batched_ = session_->full_batch_size() > 0;
  // Prefill: the longest seq_len (QEfficient: max over the allowed shapes), batch 1 when batched.
  for (int i = 0; i < static_cast<int>(specs.size()); ++i) {
    if (specs[i].has_batch_index != batched_ || (batched_ && specs[i].batch_size != 1)) continue;
    if (prefill_spec_ < 0 || specs[i].seq_len > specs[prefill_spec_].seq_len) prefill_spec_ = i;
  }
  if (prefill_spec_ < 0) return absl::FailedPreconditionError("the qpc has no prefill specialization");
  const auto& prefill = specs[prefill_spec_];
  chunk_ = prefill.seq_len;
  ctx_len_ = prefill.ctx_len;
  prefill_batch_ = prefill.batch_size;
  // Decode: the shortest seq_len, at every compiled batch size.
  int dseq = chunk_;
  for (const auto& sp : specs) dseq = std::min(dseq, sp.seq_len);
  for (int i = 0; i < static_cast<int>(specs.size()); ++i) {
    if (specs[i].seq_len != dseq || specs[i].has_batch_index != batched_ || specs[i].ctx_len != ctx_len_) continue;
    decode_specs_.emplace_back(specs[i].batch_size, i);
  }
  std::sort(decode_specs_.begin(), decode_specs_.end());
  if (decode_specs_.empty()) return absl::FailedPreconditionError("the qpc has no decode specialization");
  int slots = 1;
  if (batched_) {
    slots = session_->full_batch_size();
    if (options_.max_active_slots > 0) slots = std::min(slots, options_.max_active_slots);
    // Padding rows of a decode step need distinct slots that no generating sequence uses.
    if (decode_specs_.back().first > session_->full_batch_size()) {
      return absl::FailedPreconditionError("the qpc decodes more rows than it has KV slots");
    }
  }
  slots_.resize(static_cast<size_t>(slots));
  // Slots start zero and are zeroed later only where their last request wrote (Slot::written).
  session_->ResetState();
  const int max_rows = std::max(prefill_batch_ * chunk_, decode_specs_.back().first * dseq);
  ids_.resize(static_cast<size_t>(max_rows));
  pos_.resize(static_cast<size_t>(max_rows));
  batch_index_.resize(static_cast<size_t>(std::max(decode_specs_.back().first, 1)));
  logits_row_.resize(static_cast<size_t>(vocab_));
  rows_.reserve(slots_.size());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Scheduler::Submit(GenerationRequest request) {
  const int len = static_cast<int>(request.prompt.size());
  if (len == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (len >= ctx_len_) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", len, " tokens but the qpc's ctx_len is ", ctx_len_,
                                                   "; compile with a larger --ctx-len or shorten the prompt"));
  }
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= vocab_) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the model's vocabulary [0, ", vocab_, ")"));
    }
  }
  for (int32_t id : request.stop_token_ids) {
    if (id < 0 || id >= vocab_) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop token id ", id, " is outside the model's vocabulary [0, ", vocab_, ")"));
    }
  }
  if (request.top_logprobs > 20) return absl::InvalidArgumentError("top_logprobs must be at most 20");
  auto handle = std::make_shared<RequestHandle>();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return absl::UnavailableError(absl::StrCat("model '", options_.model_id, "' is being unloaded"));
    if (static_cast<int>(queue_.size()) >= options_.max_queued_requests) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model '", options_.model_id, "' already has ", queue_.size(),
          " requests waiting for a KV slot (the server's --max-queued-requests limit); retry later"));
    }
    queue_.push_back({std::move(request), handle, Clock::now()});
  }
  cv_.notify_one();
  return handle;
}

void Scheduler::Shutdown(absl::Status reason) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_reason_ = std::move(reason);
    }
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

Scheduler::Load Scheduler::load() const {
  std::lock_guard<std::mutex> l(mu_);
  return {static_cast<int>(slots_.size()), active_, static_cast<int>(queue_.size()), options_.max_queued_requests};
}

int Scheduler::FindSpec(int batch, int seq_len) const {
  const auto& specs = session_->specializations();
  for (int i = 0; i < static_cast<int>(specs.size()); ++i) {
    if (specs[i].batch_size == batch && specs[i].seq_len == seq_len) return i;
  }
  return -1;
}

void Scheduler::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !queue_.empty() || active_ > 0; });
      if (stopping_) break;
    }
    Admit();
    const auto now = Clock::now();
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
      Slot& s = slots_[i];
      if (!s.handle) continue;
      if (s.handle->cancelled()) {
        absl::Status reason;
        {
          std::lock_guard<std::mutex> l(s.handle->mu_);
          reason = s.handle->cancel_reason_;
        }
        FinishSlot(i, reason, "");
      } else if (now > s.request.deadline) {
        FinishSlot(i, absl::DeadlineExceededError("the request's deadline passed while it was generating"), "");
      }
    }
    // One prefill chunk (round-robin over the sequences still reading their prompt), then one
    // decode step for everyone generating.
    const int n = static_cast<int>(slots_.size());
    for (int k = 0; k < n; ++k) {
      const int i = (next_prefill_ + k) % n;
      if (!slots_[i].handle || slots_[i].decoding()) continue;
      next_prefill_ = (i + 1) % n;
      if (absl::Status st = Prefill(i); !st.ok()) FinishSlot(i, st, "");
      break;
    }
    if (absl::Status st = Decode(); !st.ok()) {
      spdlog::error("model {}: decode step failed: {}", options_.model_id, st.ToString());
      for (int i = 0; i < n; ++i) {
        if (slots_[i].decoding()) FinishSlot(i, st, "");
      }
    }
  }
  absl::Status reason;
  std::deque<Pending> queued;
  {
    std::lock_guard<std::mutex> l(mu_);
    reason = stop_reason_;
    queued.swap(queue_);
  }
  for (auto& p : queued) p.handle->Finish(reason);
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    if (slots_[i].handle) FinishSlot(i, reason, "");
  }
}

void Scheduler::Admit() {
  std::vector<std::pair<std::shared_ptr<RequestHandle>, absl::Status>> dropped;
  std::vector<std::pair<int, Pending>> admitted;
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto now = Clock::now();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->handle->cancelled()) {
        std::lock_guard<std::mutex> hl(it->handle->mu_);
        dropped.emplace_back(it->handle, it->handle->cancel_reason_);
      } else if (now > it->request.deadline) {
        dropped.emplace_back(it->handle, absl::DeadlineExceededError(
                                             "the request's deadline passed while it waited for a KV slot"));
      } else {
        ++it;
        continue;
      }
      it = queue_.erase(it);
    }
    for (int i = 0; i < static_cast<int>(slots_.size()) && !queue_.empty(); ++i) {
      if (slots_[i].handle) continue;
      admitted.emplace_back(i, std::move(queue_.front()));
      queue_.pop_front();
      ++active_;
    }
  }
  for (auto& [handle, status] : dropped) handle->Finish(status);
  for (auto& [i, p] : admitted) {
    Slot& s = slots_[i];
    if (batched_) {
      // Only what the slot's previous request wrote (a fresh session's state is zero).
      if (s.written > 0) (void)session_->ResetSlot(i, s.written);  // i < full_batch_size by construction
      s.written = 0;
    } else {
      session_->ResetState();
    }
    const int len = static_cast<int>(p.request.prompt.size());
    s.max_new = ctx_len_ - len;
    if (p.request.max_new_tokens > 0) s.max_new = std::min(s.max_new, p.request.max_new_tokens);
    s.sampler = std::make_unique<Sampler>(p.request.sampling, vocab_);
    s.sampler->AddPrompt(p.request.prompt);
    if (p.request.top_logprobs >= 0) s.order.resize(static_cast<size_t>(vocab_));
    s.prefilled = 0;
    s.chunks = 0;
    s.position = len;
    s.arrival = p.arrival;
    s.admitted = Clock::now();
    s.request = std::move(p.request);
    s.handle = std::move(p.handle);
    s.handle->result_.tokens.reserve(static_cast<size_t>(s.max_new));
  }
}

absl::Status Scheduler::Prefill(int slot) {
  Slot& s = slots_[slot];
  const auto& prompt = s.request.prompt;
  const int len = static_cast<int>(prompt.size());
  const int c0 = s.prefilled;
  const int n = std::min(chunk_, len - c0);
  // Right-padded chunk, position -1 on pads (QEfficient's loop); without continuous batching
  // every row of the qpc's batch reads the same prompt.
  for (int b = 0; b < prefill_batch_; ++b) {
    for (int t = 0; t < chunk_; ++t) {
      const size_t k = static_cast<size_t>(b) * chunk_ + t;
      ids_[k] = t < n ? prompt[c0 + t] : 0;
      pos_[k] = t < n ? c0 + t : -1;
    }
  }
  device::NamedInputs inputs = {{"input_ids", device::HostTensor::I64(ids_.data(), {prefill_batch_, chunk_})},
                                {"position_ids", device::HostTensor::I64(pos_.data(), {prefill_batch_, chunk_})}};
  if (batched_) {
    batch_index_[0] = slot;
    inputs.emplace_back("batch_index", device::HostTensor::I64(batch_index_.data(), {1, 1}));
  }
  QEFF_RETURN_IF_ERROR(session_->Run(prefill_spec_, inputs));
  s.prefilled += n;
  ++s.chunks;
  if (s.prefilled < len) return absl::OkStatus();
  QEFF_ASSIGN_OR_RETURN(device::HostTensor logits, session_->Output("logits"));
  s.first_token = Clock::now();
  Emit(slot, static_cast<const float*>(logits.data));
  return absl::OkStatus();
}

absl::Status Scheduler::Decode() {
  rows_.clear();
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    if (slots_[i].decoding()) rows_.push_back(i);
  }
  if (rows_.empty()) return absl::OkStatus();
  const int active = static_cast<int>(rows_.size());
  // The smallest compiled batch that holds every generating sequence.
  int batch = decode_specs_.back().first, spec = decode_specs_.back().second;
  for (const auto& [b, i] : decode_specs_) {
    if (b >= active) {
      batch = b;
      spec = i;
      break;
    }
  }
  const int dseq = session_->specializations()[spec].seq_len;
  int pad_slot = 0;
  for (int r = 0; r < batch; ++r) {
    // Without continuous batching the extra rows repeat the one sequence.
    const bool real = r < active || !batched_;
    const Slot& s = slots_[rows_[real ? std::min(r, active - 1) : 0]];
    for (int t = 0; t < dseq; ++t) {
      const size_t k = static_cast<size_t>(r) * dseq + t;
      ids_[k] = real && t == 0 ? s.next : 0;
      pos_[k] = real && t == 0 ? s.position : -1;
    }
    if (!batched_) continue;
    if (real) {
      batch_index_[r] = rows_[r];
    } else {
      // A padding row writes nothing visible, but give it a slot no generating row uses.
      while (slots_.size() > static_cast<size_t>(pad_slot) && slots_[pad_slot].decoding()) ++pad_slot;
      batch_index_[r] = pad_slot++;
    }
  }
  device::NamedInputs inputs = {{"input_ids", device::HostTensor::I64(ids_.data(), {batch, dseq})},
                                {"position_ids", device::HostTensor::I64(pos_.data(), {batch, dseq})}};
  if (batched_) inputs.emplace_back("batch_index", device::HostTensor::I64(batch_index_.data(), {batch, 1}));
  QEFF_RETURN_IF_ERROR(session_->Run(spec, inputs));
  QEFF_ASSIGN_OR_RETURN(device::HostTensor logits, session_->Output("logits"));
  const auto* rows = static_cast<const float*>(logits.data);
  for (int r = 0; r < active; ++r) {
    ++slots_[rows_[r]].position;
    Emit(rows_[r], rows + static_cast<size_t>(r) * vocab_);
  }
  return absl::OkStatus();
}

void Scheduler::Emit(int slot, const float* logits) {
  Slot& s = slots_[slot];
  // The sampler may rewrite logits (penalties): work on a copy, the arena is shared.
  std::memcpy(logits_row_.data(), logits, sizeof(float) * static_cast<size_t>(vocab_));
  const int32_t token = s.sampler->Next(logits_row_.data());
  TokenLogprob lp;
  if (s.request.top_logprobs >= 0) {
    // log-softmax of the raw logits (before penalties and temperature), as vLLM reports them.
    const float m = *std::max_element(logits, logits + vocab_);
    double sum = 0;
    for (int i = 0; i < vocab_; ++i) sum += std::exp(static_cast<double>(logits[i] - m));
    const float lse = m + static_cast<float>(std::log(sum));
    lp.token = token;
    lp.logprob = logits[token] - lse;
    const int k = s.request.top_logprobs;
    if (k > 0) {
      std::iota(s.order.begin(), s.order.end(), 0);
      std::partial_sort(s.order.begin(), s.order.begin() + std::min(k, vocab_), s.order.end(),
                        [logits](int32_t a, int32_t b) { return logits[a] > logits[b]; });
      for (int i = 0; i < std::min(k, vocab_); ++i) lp.top.emplace_back(s.order[i], logits[s.order[i]] - lse);
    }
  }
  s.handle->result_.tokens.push_back(token);
  s.handle->Push(token, s.request.top_logprobs >= 0 ? &lp : nullptr);
  s.next = token;
  const int generated = static_cast<int>(s.handle->result_.tokens.size());
  auto listed = [token](const std::vector<int32_t>& ids) { return std::find(ids.begin(), ids.end(), token) != ids.end(); };
  if (generated >= s.request.min_tokens && listed(s.request.stop_token_ids)) {
    FinishSlot(slot, absl::OkStatus(), "stop");
  } else if (generated >= s.request.min_tokens && s.request.stop_at_eos && listed(s.request.eos_token_ids)) {
    FinishSlot(slot, absl::OkStatus(), "eos");
  } else if (generated >= s.max_new) {
    FinishSlot(slot, absl::OkStatus(), "length");
  }
}

void Scheduler::FinishSlot(int slot, absl::Status status, std::string finish_reason) {
  Slot& s = slots_[slot];
  const auto end = Clock::now();
  GenerationResult& r = s.handle->result_;
  r.finish_reason = std::move(finish_reason);
  GenerationStats& st = r.stats;
  const bool started = s.first_token != Clock::time_point();
  st.prompt_tokens = static_cast<int>(s.request.prompt.size());
  st.generated_tokens = static_cast<int>(r.tokens.size());
  st.prefill_chunks = s.chunks;
  st.queue_ms = Ms(s.arrival, s.admitted);
  st.prefill_ms = started ? Ms(s.admitted, s.first_token) : 0;
  st.ttft_ms = started ? Ms(s.arrival, s.first_token) : 0;
  st.e2e_ms = Ms(s.arrival, end);
  const double decode_s = started ? Ms(s.first_token, end) / 1000.0 : 0;
  st.decode_tokens_per_s = decode_s > 0 ? (st.generated_tokens - 1) / decode_s : 0.0;
  st.total_tokens_per_s = st.e2e_ms > 0 ? st.generated_tokens / (st.e2e_ms / 1000.0) : 0.0;
  std::shared_ptr<RequestHandle> handle = std::move(s.handle);
  s.written = std::max(s.written, s.position);  // every write of this request was below `position`
  s.sampler.reset();
  s.first_token = Clock::time_point();
  {
    // The slot counts as free before the reader can see the end of its request.
    std::lock_guard<std::mutex> l(mu_);
    --active_;
  }
  handle->Finish(std::move(status));
}

}  // namespace qeff::runner
