#include "services/runner/runner_service.h"

#include <atomic>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/rpc/server.h"
#include "common/tokenizer/unicode.h"
#include "services/runner/classifier.h"
#include "services/runner/completion.h"
#include "services/runner/embedder.h"
#include "services/runner/metrics.h"

namespace qeff::runner {
namespace {

constexpr size_t kMaxPromptBytes = 4 << 20;

void Describe(const LoadedModel& m, qeff::v1::ModelInfo* info) {
  info->set_model_id(m.model_id);
  info->set_qpc_key(m.qpc_key);
  info->set_architecture(m.architecture);
  int prefill = 0;
  for (const auto& s : m.session->specializations()) {
    info->set_batch_size(s.batch_size);
    info->set_ctx_len(s.ctx_len);
    prefill = std::max(prefill, s.seq_len);
  }
  info->set_prefill_seq_len(prefill);
  if (m.scheduler) info->set_vocab_size(m.session->vocab_size());  // a classifier's logits are labels
  info->set_full_batch_size(m.session->full_batch_size());
  if (m.scheduler) {
    const Scheduler::Load load = m.scheduler->load();
    info->set_slots(load.slots);
    info->set_active_requests(load.active);
    info->set_queued_requests(load.queued);
    info->set_max_queued_requests(load.max_queued);
  }
}

// Client text (proto bytes fields) must be UTF-8: INVALID_ARGUMENT naming the field otherwise.
grpc::Status CheckUtf8(const std::string& text, const char* field) {
  if (tokenizer::unicode::IsValidUtf8(text)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat(field, " is not valid UTF-8; send UTF-8 text"));
}

// The call's deadline on the scheduler's clock (none when the client set none).
Clock::time_point SteadyDeadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto left = deadline - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

grpc::Status NeedTokenizer(const LoadedModel& m) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("model '", m.model_id,
                                   "' has no tokenizer files; pass token ids instead of text"));
}

constexpr int kMaxSequences = 4096;  // inputs of one Embed / Classify call

// A request's token ids (and token types) as the encoder takes them.
absl::StatusOr<runner::EncoderInput> EncoderIds(const qeff::v1::TokenIds& in) {
  runner::EncoderInput e;
  for (int64_t id : in.ids()) {
    if (id < 0 || id > INT32_MAX) return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is out of range"));
    e.ids.push_back(static_cast<int32_t>(id));
  }
  for (int64_t t : in.token_type_ids()) {
    if (t < 0 || t > INT32_MAX) return absl::InvalidArgumentError(absl::StrCat("token type ", t, " is out of range"));
    e.token_type_ids.push_back(static_cast<int32_t>(t));
  }
  return e;
}

// Encoders only: what to call instead on a causal LM.
grpc::Status NeedEncoder(const LoadedModel& m) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("model '", m.model_id, "' is a causal LM; use Generate (qeffctl generate)"));
}

}  // namespace

grpc::Status RunnerService::Load(grpc::ServerContext*, const qeff::v1::LoadRequest* req,
                                 qeff::v1::LoadResponse* resp) {
  auto m = registry_->Load(req->qpc_key(), req->model_id());
  if (!m.ok()) return rpc::ToGrpc(m.status());
  Describe(**m, resp->mutable_model());
  return grpc::Status::OK;
}

grpc::Status RunnerService::Unload(grpc::ServerContext*, const qeff::v1::UnloadRequest* req,
                                   qeff::v1::UnloadResponse*) {
  return rpc::ToGrpc(registry_->Unload(req->model_id()));
}

grpc::Status RunnerService::List(grpc::ServerContext*, const qeff::v1::ListRequest*,
                                 qeff::v1::ListResponse* resp) {
  for (const auto& m : registry_->List()) Describe(*m, resp->add_models());
  return grpc::Status::OK;
}

grpc::Status RunnerService::Generate(grpc::ServerContext* context, const qeff::v1::GenerateRequest* req,
                                     grpc::ServerWriter<qeff::v1::GenerateEvent>* writer) {
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  LoadedModel& m = **model;
  if (!m.scheduler) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("model '", m.model_id,
                                     "' is an encoder; use Embed (qeffctl embed), or Classify (qeffctl classify) "
                                     "for a classifier"));
  }

  GenerationRequest gen;
  if (req->input_ids_size() > 0 && !req->prompt().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "pass either prompt or input_ids, not both");
  }
  if (req->input_ids_size() > 0) {
    for (int64_t id : req->input_ids()) {
      if (id < 0 || id > INT32_MAX) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("token id ", id, " is out of range"));
      }
      gen.prompt.push_back(static_cast<int32_t>(id));
    }
  } else {
    if (!m.tokenizer) return NeedTokenizer(m);
    if (req->prompt().size() > kMaxPromptBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the prompt is larger than 4 MiB");
    }
    if (grpc::Status u = CheckUtf8(req->prompt(), "prompt"); !u.ok()) return u;
    auto enc = m.tokenizer->Encode(req->prompt(), /*add_special_tokens=*/true);
    if (!enc.ok()) return rpc::ToGrpc(enc.status());
    gen.prompt = enc->ids;
  }
  if (req->max_new_tokens() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens must be >= 0");
  }
  const std::vector<int32_t> prompt_ids = gen.prompt;
  CompletionOptions options;
  gen.max_new_tokens = req->max_new_tokens();
  gen.stop_at_eos = req->stop_at_eos();
  gen.eos_token_ids = m.eos_token_ids;
  for (int64_t id : req->stop_token_ids()) {
    if (id < 0 || id > INT32_MAX) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "stop_token_ids out of range");
    gen.stop_token_ids.push_back(static_cast<int32_t>(id));
  }
  if (req->min_tokens() < 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "min_tokens must be >= 0");
  if (req->max_new_tokens() > 0 && req->min_tokens() > req->max_new_tokens()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("min_tokens ", req->min_tokens(), " exceeds max_new_tokens ", req->max_new_tokens()));
  }
  for (const auto& stop : req->stop()) {
    if (stop.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a stop string is empty; leave it out instead");
    }
    if (grpc::Status u = CheckUtf8(stop, "a stop string"); !u.ok()) return u;
  }
  gen.min_tokens = req->min_tokens();
  if (req->has_top_logprobs()) {
    if (req->top_logprobs() < 0 || req->top_logprobs() > 20) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "top_logprobs must be in [0, 20]");
    }
    gen.top_logprobs = req->top_logprobs();
  }
  const auto& s = req->sampling();
  // !(x >= 0) also rejects NaN.
  if (!(s.temperature() >= 0) || !(s.top_p() >= 0 && s.top_p() <= 1) || s.top_k() < 0 ||
      !(s.repetition_penalty() >= 0) || !(s.min_p() >= 0 && s.min_p() <= 1) ||
      !(s.frequency_penalty() >= -2 && s.frequency_penalty() <= 2) ||
      !(s.presence_penalty() >= -2 && s.presence_penalty() <= 2) || std::isinf(s.temperature()) ||
      std::isinf(s.repetition_penalty())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "sampling: finite temperature >= 0, 0 <= top_p <= 1, top_k >= 0, finite repetition_penalty >= 0, "
                        "0 <= min_p <= 1, frequency_penalty and presence_penalty in [-2, 2]");
  }
  gen.sampling.temperature = s.temperature();
  gen.sampling.top_k = s.top_k();
  gen.sampling.top_p = s.top_p() == 0 ? 1.0f : s.top_p();
  gen.sampling.min_p = s.min_p();
  gen.sampling.repetition_penalty = s.repetition_penalty() == 0 ? 1.0f : s.repetition_penalty();
  gen.sampling.frequency_penalty = s.frequency_penalty();
  gen.sampling.presence_penalty = s.presence_penalty();
  gen.sampling.seed = s.seed();
  gen.deadline = SteadyDeadline(*context);
  options.request = std::move(gen);
  options.seeded = s.has_seed();
  options.n = req->n() == 0 ? 1 : req->n();
  options.stop.assign(req->stop().begin(), req->stop().end());
  options.include_stop_str_in_output = req->include_stop_str_in_output();

  const int n = options.n;
  auto completion = Completion::Start(*m.scheduler, m.tokenizer.get(), std::move(options));
  if (!completion.ok()) return rpc::ToGrpc(completion.status());
  Completion& c = **completion;
  // One metrics record per choice, whatever way it ends.
  static std::atomic<uint64_t> next_id{0};
  const std::string request_id = absl::StrCat("grpc-", next_id.fetch_add(1));
  std::vector<RequestRecord> records(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    records[i].request_id = n == 1 ? request_id : absl::StrCat(request_id, "-", i);
    records[i].model = m.model_id;
    records[i].frontend = "grpc";
    records[i].prompt_tokens = static_cast<int>(prompt_ids.size());
  }
  std::vector<bool> recorded(static_cast<size_t>(n), false);
  auto record_rest = [&](const absl::Status& status) {
    for (int i = 0; i < n; ++i) {
      if (recorded[i]) continue;
      records[i].status = status;
      records[i].finish_reason = "abort";
      Metrics::Global().RecordRequest(records[i]);
    }
  };
  // Only this thread waits on the client: the scheduler hands tokens over through the request's
  // buffer and never blocks on a slow or vanished reader.
  std::vector<CompletionChunk> chunks;
  bool more = true;
  while (more) {
    chunks.clear();
    more = c.Next(&chunks, std::chrono::milliseconds(20));
    if (context->IsCancelled()) {
      const bool expired = context->deadline() <= std::chrono::system_clock::now();
      const absl::Status why = expired ? absl::DeadlineExceededError("the call's deadline passed")
                                       : absl::CancelledError("the client cancelled the generation");
      c.Cancel(why);
      record_rest(why);
      return expired ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline passed")
                     : grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the generation");
    }
    for (const CompletionChunk& chunk : chunks) {
      RequestRecord& rec = records[chunk.index];
      rec.generated_tokens += static_cast<int>(chunk.tokens.size());
      rec.token_times.insert(rec.token_times.end(), chunk.token_times.begin(), chunk.token_times.end());
      if (chunk.done) {
        rec.finish_reason = chunk.finish_reason;
        rec.stats = chunk.stats;
        Metrics::Global().RecordRequest(rec);
        recorded[chunk.index] = true;
      }
      qeff::v1::GenerateEvent ev;
      ev.set_index(chunk.index);
      for (int32_t t : chunk.tokens) ev.add_token_ids(t);
      ev.set_text(chunk.text);
      for (const TokenLogprob& lp : chunk.logprobs) {
        auto* out = ev.add_logprobs();
        out->set_token_id(lp.token);
        out->set_logprob(lp.logprob);
        for (const auto& [id, v] : lp.top) {
          auto* t = out->add_top();
          t->set_token_id(id);
          t->set_logprob(v);
        }
      }
      if (chunk.done) {
        ev.set_done(true);
        ev.set_finish_reason(chunk.finish_reason);
        ev.set_seed(c.seed());
        for (int32_t id : prompt_ids) ev.add_prompt_token_ids(id);
        auto* st = ev.mutable_stats();
        st->set_prefill_ms(chunk.stats.prefill_ms);
        st->set_ttft_ms(chunk.stats.ttft_ms);
        st->set_decode_tokens_per_s(chunk.stats.decode_tokens_per_s);
        st->set_total_tokens_per_s(chunk.stats.total_tokens_per_s);
        st->set_e2e_ms(chunk.stats.e2e_ms);
        st->set_prompt_tokens(chunk.stats.prompt_tokens);
        st->set_generated_tokens(chunk.stats.generated_tokens);
        st->set_prefill_chunks(chunk.stats.prefill_chunks);
        st->set_queue_ms(chunk.stats.queue_ms);
      }
      if (!writer->Write(ev)) {
        c.Cancel(absl::CancelledError("the client went away"));
        record_rest(absl::CancelledError("the client went away"));
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
  }
  if (!c.status().ok()) record_rest(c.status());
  return rpc::ToGrpc(c.status());
}

namespace {

// Embed and Classify take texts or token inputs (not both, at least one, bounded) on an encoder.
grpc::Status CheckEncoderCall(const LoadedModel& m, int texts, int inputs, const char* verb) {
  if (texts > 0 && inputs > 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "pass either texts or inputs, not both");
  }
  if (texts + inputs == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("nothing to ", verb, ": pass texts or inputs"));
  }
  if (texts + inputs > kMaxSequences) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("at most ", kMaxSequences, " inputs per request"));
  }
  if (m.scheduler) return NeedEncoder(m);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status RunnerService::Embed(grpc::ServerContext*, const qeff::v1::EmbedRequest* req,
                                  qeff::v1::EmbedResponse* resp) {
  const auto t0 = std::chrono::steady_clock::now();
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  LoadedModel& m = **model;
  if (grpc::Status c = CheckEncoderCall(m, req->texts_size(), req->inputs_size(), "embed"); !c.ok()) return c;
  std::vector<EncoderInput> inputs;
  for (const auto& text : req->texts()) {
    if (!m.tokenizer) return NeedTokenizer(m);
    if (text.size() > kMaxPromptBytes) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a text is larger than 4 MiB");
    if (grpc::Status u = CheckUtf8(text, "a text"); !u.ok()) return u;
    auto enc = m.tokenizer->Encode(text, /*add_special_tokens=*/true);
    if (!enc.ok()) return rpc::ToGrpc(enc.status());
    inputs.push_back({enc->ids, {}});
  }
  for (const auto& in : req->inputs()) {
    auto e = EncoderIds(in);
    if (!e.ok()) return rpc::ToGrpc(e.status());
    inputs.push_back(std::move(*e));
  }
  EmbedOptions options;
  options.pooling = req->pooling();
  options.normalize = req->normalize();
  std::lock_guard<std::mutex> run_lock(m.run_mu);
  auto result = runner::Embed(*m.session, m.encoder, inputs, options);
  if (!result.ok()) return rpc::ToGrpc(result.status());
  for (size_t i = 0; i < result->size(); ++i) {
    auto* e = resp->add_embeddings();
    e->mutable_values()->Add((*result)[i].begin(), (*result)[i].end());
    e->set_num_tokens(static_cast<int32_t>(inputs[i].ids.size()));
  }
  resp->set_e2e_ms(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return grpc::Status::OK;
}

grpc::Status RunnerService::Classify(grpc::ServerContext*, const qeff::v1::ClassifyRequest* req,
                                     qeff::v1::ClassifyResponse* resp) {
  const auto t0 = std::chrono::steady_clock::now();
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  LoadedModel& m = **model;
  if (grpc::Status c = CheckEncoderCall(m, req->texts_size(), req->inputs_size(), "classify"); !c.ok()) return c;
  std::vector<ClassifyInput> raw;
  for (const auto& t : req->texts()) {
    if (t.text().size() + t.text_pair().size() > kMaxPromptBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a text pair is larger than 4 MiB");
    }
    if (t.text().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a text pair has an empty text");
    if (grpc::Status u = CheckUtf8(t.text(), "a text"); !u.ok()) return u;
    if (grpc::Status u = CheckUtf8(t.text_pair(), "a text_pair"); !u.ok()) return u;
    ClassifyInput c;
    c.is_text = true;
    c.text = t.text();
    if (!t.text_pair().empty()) c.text_pair = t.text_pair();
    raw.push_back(std::move(c));
  }
  for (const auto& in : req->inputs()) {
    auto e = EncoderIds(in);
    if (!e.ok()) return rpc::ToGrpc(e.status());
    ClassifyInput c;
    c.tokens = std::move(*e);
    raw.push_back(std::move(c));
  }
  auto inputs = TokenizeInputs(m.tokenizer.get(), m.encoder, raw);
  if (!inputs.ok()) return rpc::ToGrpc(inputs.status());
  std::lock_guard<std::mutex> run_lock(m.run_mu);
  auto result = runner::Classify(*m.session, m.encoder, *inputs);
  if (!result.ok()) return rpc::ToGrpc(result.status());
  for (size_t i = 0; i < result->size(); ++i) {
    auto* c = resp->add_results();
    c->mutable_logits()->Add((*result)[i].logits.begin(), (*result)[i].logits.end());
    c->mutable_scores()->Add((*result)[i].scores.begin(), (*result)[i].scores.end());
    c->set_num_tokens(static_cast<int32_t>((*inputs)[i].ids.size()));
  }
  for (const auto& label : m.encoder.labels) resp->add_labels(label);
  resp->set_e2e_ms(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return grpc::Status::OK;
}

grpc::Status RunnerService::Tokenize(grpc::ServerContext*, const qeff::v1::TokenizeRequest* req,
                                     qeff::v1::TokenizeResponse* resp) {
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  if (!(*model)->tokenizer) return NeedTokenizer(**model);
  if (req->text().size() > kMaxPromptBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the text is larger than 4 MiB");
  }
  if (grpc::Status u = CheckUtf8(req->text(), "text"); !u.ok()) return u;
  auto enc = (*model)->tokenizer->Encode(req->text(), req->add_special_tokens());
  if (!enc.ok()) return rpc::ToGrpc(enc.status());
  for (int32_t id : enc->ids) resp->add_ids(id);
  for (const auto& t : enc->tokens) resp->add_tokens(t);
  return grpc::Status::OK;
}

grpc::Status RunnerService::Detokenize(grpc::ServerContext*, const qeff::v1::DetokenizeRequest* req,
                                       qeff::v1::DetokenizeResponse* resp) {
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  if (!(*model)->tokenizer) return NeedTokenizer(**model);
  std::vector<int32_t> ids;
  for (int64_t id : req->ids()) {
    if (id < 0 || id >= static_cast<int64_t>((*model)->tokenizer->vocab_size())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("token id ", id, " is not in the vocabulary"));
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  resp->set_text((*model)->tokenizer->Decode(ids, req->skip_special_tokens()));
  return grpc::Status::OK;
}

}  // namespace qeff::runner
