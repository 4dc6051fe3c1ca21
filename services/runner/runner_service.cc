#include "services/runner/runner_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/rpc/server.h"
#include "services/runner/embedder.h"

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
  info->set_vocab_size(m.session->vocab_size());
  info->set_full_batch_size(m.session->full_batch_size());
  if (m.scheduler) {
    const Scheduler::Load load = m.scheduler->load();
    info->set_slots(load.slots);
    info->set_active_requests(load.active);
    info->set_queued_requests(load.queued);
    info->set_max_queued_requests(load.max_queued);
  }
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
                        absl::StrCat("model '", m.model_id, "' is an encoder; use Embed (qeffctl embed)"));
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
    auto enc = m.tokenizer->Encode(req->prompt(), /*add_special_tokens=*/true);
    if (!enc.ok()) return rpc::ToGrpc(enc.status());
    gen.prompt = enc->ids;
  }
  if (req->max_new_tokens() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens must be >= 0");
  }
  gen.max_new_tokens = req->max_new_tokens();
  const std::vector<int32_t> prompt_ids = gen.prompt;
  gen.stop_at_eos = req->stop_at_eos();
  if (m.tokenizer) gen.eos_token_id = m.tokenizer->eos_token_id();
  const auto& s = req->sampling();
  if (s.temperature() < 0 || s.top_p() < 0 || s.top_p() > 1 || s.top_k() < 0 || s.repetition_penalty() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "sampling: temperature >= 0, 0 <= top_p <= 1, top_k >= 0, repetition_penalty >= 0");
  }
  gen.sampling.temperature = s.temperature();
  gen.sampling.top_k = s.top_k();
  gen.sampling.top_p = s.top_p() == 0 ? 1.0f : s.top_p();
  gen.sampling.repetition_penalty = s.repetition_penalty() == 0 ? 1.0f : s.repetition_penalty();
  gen.sampling.seed = s.seed();
  gen.deadline = SteadyDeadline(*context);

  auto handle = m.scheduler->Submit(std::move(gen));
  if (!handle.ok()) return rpc::ToGrpc(handle.status());
  RequestHandle& h = **handle;
  std::unique_ptr<tokenizer::StreamDecoder> stream;
  if (m.tokenizer) stream = std::make_unique<tokenizer::StreamDecoder>(*m.tokenizer, /*skip_special_tokens=*/false);
  // Only this thread waits on the client: the scheduler hands tokens over through the request's
  // buffer and never blocks on a slow or vanished reader.
  std::vector<int32_t> tokens;
  while (true) {
    const bool done = h.Wait(&tokens, std::chrono::milliseconds(20));
    if (context->IsCancelled()) {
      const bool expired = context->deadline() <= std::chrono::system_clock::now();
      h.Cancel(expired ? absl::DeadlineExceededError("the call's deadline passed")
                       : absl::CancelledError("the client cancelled the generation"));
      return expired ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline passed")
                     : grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the generation");
    }
    if (!tokens.empty()) {
      qeff::v1::GenerateEvent ev;
      for (int32_t t : tokens) {
        ev.add_token_ids(t);
        if (stream) ev.mutable_text()->append(stream->Push(t));
      }
      tokens.clear();
      if (!writer->Write(ev)) {
        h.Cancel(absl::CancelledError("the client went away"));
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    if (done) break;
  }
  if (!h.status().ok()) return rpc::ToGrpc(h.status());
  const GenerationResult& result = h.result();
  qeff::v1::GenerateEvent last;
  if (stream) last.set_text(stream->Flush());
  last.set_done(true);
  last.set_finish_reason(result.finish_reason);
  for (int32_t id : prompt_ids) last.add_prompt_token_ids(id);
  auto* st = last.mutable_stats();
  st->set_prefill_ms(result.stats.prefill_ms);
  st->set_ttft_ms(result.stats.ttft_ms);
  st->set_decode_tokens_per_s(result.stats.decode_tokens_per_s);
  st->set_total_tokens_per_s(result.stats.total_tokens_per_s);
  st->set_e2e_ms(result.stats.e2e_ms);
  st->set_prompt_tokens(result.stats.prompt_tokens);
  st->set_generated_tokens(result.stats.generated_tokens);
  st->set_prefill_chunks(result.stats.prefill_chunks);
  st->set_queue_ms(result.stats.queue_ms);
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status RunnerService::Embed(grpc::ServerContext*, const qeff::v1::EmbedRequest* req,
                                  qeff::v1::EmbedResponse* resp) {
  const auto t0 = std::chrono::steady_clock::now();
  auto model = registry_->Get(req->model_id());
  if (!model.ok()) return rpc::ToGrpc(model.status());
  LoadedModel& m = **model;
  if (req->texts_size() > 0 && req->inputs_size() > 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "pass either texts or inputs, not both");
  }
  if (req->texts_size() + req->inputs_size() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "nothing to embed: pass texts or inputs");
  }
  constexpr int kMaxSequences = 4096;
  if (req->texts_size() + req->inputs_size() > kMaxSequences) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("at most ", kMaxSequences, " sequences per request"));
  }
  std::vector<std::vector<int32_t>> inputs;
  for (const auto& text : req->texts()) {
    if (!m.tokenizer) return NeedTokenizer(m);
    if (text.size() > kMaxPromptBytes) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a text is larger than 4 MiB");
    auto enc = m.tokenizer->Encode(text, /*add_special_tokens=*/true);
    if (!enc.ok()) return rpc::ToGrpc(enc.status());
    inputs.push_back(enc->ids);
  }
  for (const auto& in : req->inputs()) {
    std::vector<int32_t> ids;
    for (int64_t id : in.ids()) {
      if (id < 0 || id > INT32_MAX) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("token id ", id, " is out of range"));
      }
      ids.push_back(static_cast<int32_t>(id));
    }
    inputs.push_back(std::move(ids));
  }
  EmbedOptions options;
  options.pooling = req->pooling();
  options.normalize = req->normalize();
  if (m.scheduler) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("model '", m.model_id, "' is a causal LM; use Generate (qeffctl generate)"));
  }
  std::lock_guard<std::mutex> run_lock(m.run_mu);
  auto result = runner::Embed(*m.session, inputs, options);
  if (!result.ok()) return rpc::ToGrpc(result.status());
  for (size_t i = 0; i < result->size(); ++i) {
    auto* e = resp->add_embeddings();
    e->mutable_values()->Add((*result)[i].begin(), (*result)[i].end());
    e->set_num_tokens(static_cast<int32_t>(inputs[i].size()));
  }
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
