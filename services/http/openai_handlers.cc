#include "services/http/openai_handlers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/http/chat_prompt.h"
#include "services/http/errors.h"
#include "services/http/generation.h"
#include "services/http/openai_json.h"
#include "services/http/sse.h"
#include "services/runner/classifier.h"
#include "services/runner/embedder.h"

namespace qeff::http {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxTextBytes = 4 << 20;  // one prompt or input text, as the gRPC Runner takes
constexpr int kMaxEmbedInputs = 4096;
constexpr int kCompletionsDefaultMaxTokens = 16;  // OpenAI's default for /v1/completions
constexpr auto kPoll = milliseconds(50);
constexpr auto kKeepAlive = std::chrono::seconds(5);

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void SendJson(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(Dump(j), "application/json");
}

// Text prompts through the model's tokenizer; token-id prompts as they are.
absl::StatusOr<std::vector<std::vector<int32_t>>> Tokenize(const runner::LoadedModel& m,
                                                           const std::vector<PromptInput>& prompts,
                                                           const std::string& param, bool add_special_tokens) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : prompts) {
    if (!p.is_text) {
      out.push_back(p.ids);
      continue;
    }
    if (!m.tokenizer) {
      return BadParam(param, absl::StrCat("model '", m.model_id, "' has no tokenizer files; send token ids instead of text"));
    }
    if (p.text.size() > kMaxTextBytes) return BadParam(param, "a text is larger than 4 MiB");
    auto enc = m.tokenizer->Encode(p.text, add_special_tokens);
    if (!enc.ok()) return WithParam(enc.status(), param);
    out.push_back(enc->ids);
  }
  return out;
}

absl::Status NeedCausal(const runner::LoadedModel& m) {
  if (m.scheduler) return absl::OkStatus();
  if (m.encoder.classifier) {
    return BadParam("model", absl::StrCat("model '", m.model_id, "' is a sequence classifier; use /v1/rerank"));
  }
  return BadParam("model", absl::StrCat("model '", m.model_id, "' is an embedding model; use /v1/embeddings"));
}

// The shape of one endpoint's output (completions or chat).
struct Shape {
  bool chat = false;
  std::string id;
  std::string model;
  int64_t created = 0;
  std::vector<std::string> echo;  // completions: text echoed before each prompt's choices
};

json CompletionLogprobsOrNull(const Generation& g, const std::vector<runner::TokenLogprob>& lps, size_t offset,
                              bool wanted) {
  if (!wanted) return nullptr;
  return CompletionLogprobs(g.model().tokenizer.get(), lps, offset);
}

// The whole (non-streamed) response.
json FullResponse(const Shape& s, const Generation& g, bool logprobs) {
  json choices = json::array();
  const auto& cs = g.choices();
  for (size_t i = 0; i < cs.size(); ++i) {
    const auto& c = cs[i];
    json choice = {{"index", i}, {"finish_reason", c.finish_reason}};
    if (s.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] = logprobs ? ChatLogprobs(g.model().tokenizer.get(), c.logprobs) : json(nullptr);
    } else {
      const std::string& echo = s.echo.empty() ? std::string() : s.echo[c.prompt];
      choice["text"] = echo + c.text;
      choice["logprobs"] = CompletionLogprobsOrNull(g, c.logprobs, echo.size(), logprobs);
    }
    choices.push_back(std::move(choice));
  }
  return {{"id", s.id},
          {"object", s.chat ? "chat.completion" : "text_completion"},
          {"created", s.created},
          {"model", s.model},
          {"choices", choices},
          {"system_fingerprint", nullptr},
          {"usage", Usage(g.prompt_tokens(), g.completion_tokens())}};
}

json ChunkEnvelope(const Shape& s, json choices, bool include_usage) {
  json j = {{"id", s.id},
            {"object", s.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", s.created},
            {"model", s.model},
            {"system_fingerprint", nullptr},
            {"choices", std::move(choices)}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

// One streamed request: the provider httplib calls until the stream ends, and its state.
struct Stream {
  Shape shape;
  std::unique_ptr<Generation> gen;
  bool include_usage = false;
  bool logprobs = false;
  const std::atomic<bool>* stopping = nullptr;
  bool started = false;
  std::vector<size_t> offsets;  // completions logprobs: text offset per choice
  SteadyClock::time_point last_write = SteadyClock::now();

  bool Send(httplib::DataSink& sink, const std::string& frame) {
    if (!SseSend(sink, frame)) {
      gen->Cancel(absl::CancelledError("the client closed the stream"));
      return false;
    }
    last_write = SteadyClock::now();
    return true;
  }

  json Choice(int index, const std::string& text, const std::vector<runner::TokenLogprob>& lps, bool done) {
    const auto& c = gen->choices()[index];
    json choice = {{"index", index}, {"finish_reason", done ? json(c.finish_reason) : json(nullptr)}};
    if (shape.chat) {
      choice["delta"] = text.empty() ? json::object() : json{{"content", text}};
      choice["logprobs"] = logprobs && !lps.empty() ? ChatLogprobs(gen->model().tokenizer.get(), lps) : json(nullptr);
    } else {
      choice["text"] = text;
      choice["logprobs"] = CompletionLogprobsOrNull(*gen, lps, offsets[index], logprobs && !lps.empty());
      offsets[index] += text.size();
    }
    return choice;
  }

  // One step of the stream: the opening frames, then whatever the engine produced within kPoll.
  bool Step(httplib::DataSink& sink) {
    if (!started) {
      started = true;
      offsets.assign(gen->choices().size(), 0);
      for (size_t i = 0; i < gen->choices().size(); ++i) {
        json choice = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
        if (shape.chat) {
          choice["delta"] = {{"role", "assistant"}, {"content", ""}};
        } else {
          const std::string& echo = shape.echo.empty() ? std::string() : shape.echo[gen->choices()[i].prompt];
          if (echo.empty()) continue;
          choice["text"] = echo;
          offsets[i] = echo.size();
        }
        if (!Send(sink, SseData(ChunkEnvelope(shape, json::array({choice}), include_usage)))) return false;
      }
      return true;
    }
    if (stopping->load()) gen->Cancel(absl::UnavailableError("the server is shutting down"));
    std::vector<Generation::Delta> deltas;
    const bool more = gen->Poll(&deltas, kPoll);
    for (const auto& d : deltas) {
      if (d.text.empty() && d.logprobs.empty() && !d.done) continue;
      json choice = Choice(d.index, d.text, d.logprobs, d.done);
      if (!Send(sink, SseData(ChunkEnvelope(shape, json::array({choice}), include_usage)))) return false;
    }
    if (more) {
      if (SteadyClock::now() - last_write > kKeepAlive && !Send(sink, kSseKeepAlive)) return false;
      return true;
    }
    if (!gen->status().ok()) {
      // Headers are gone already: the error travels as an event (the SDKs raise it).
      const HttpError e = ToHttp(gen->status());
      if (!Send(sink, "data: " + e.body + "\n\n")) return false;
    } else if (include_usage) {
      json usage = ChunkEnvelope(shape, json::array(), false);
      usage["usage"] = Usage(gen->prompt_tokens(), gen->completion_tokens());
      if (!Send(sink, SseData(usage))) return false;
    }
    if (!Send(sink, kSseDone)) return false;
    sink.done();
    return true;
  }
};

// Runs `gen` to the end on this thread (non-streamed) or hands it to an SSE stream.
void Respond(httplib::Response& res, Shape shape, std::unique_ptr<Generation> gen, const GenerationFields& fields,
             const std::atomic<bool>* stopping, std::shared_ptr<std::atomic<int>> open_streams) {
  res.set_header("X-Qeff-Seed", std::to_string(gen->seed()));
  const bool logprobs = fields.top_logprobs >= 0;
  if (!fields.stream) {
    while (gen->Poll(nullptr, milliseconds(100))) {
      if (stopping->load()) gen->Cancel(absl::UnavailableError("the server is shutting down"));
    }
    if (!gen->status().ok()) return SendError(res, gen->status());
    SendJson(res, FullResponse(shape, *gen, logprobs));
    return;
  }
  auto st = std::make_shared<Stream>();
  st->shape = std::move(shape);
  st->gen = std::move(gen);
  st->include_usage = fields.include_usage;
  st->logprobs = logprobs;
  st->stopping = stopping;
  res.set_header("Cache-Control", "no-cache");
  open_streams->fetch_add(1);
  res.set_chunked_content_provider(
      "text/event-stream", [st](size_t, httplib::DataSink& sink) { return st->Step(sink); },
      // A stream that did not finish (client gone, server stopping) frees its KV slots now.
      [st, open_streams](bool success) {
        if (!success) st->gen->Cancel(absl::CancelledError("the client closed the stream"));
        open_streams->fetch_sub(1);
      });
}

}  // namespace

void SendError(httplib::Response& res, const absl::Status& status) {
  const HttpError e = ToHttp(status);
  res.status = e.status;
  res.set_content(e.body, "application/json");
}

OpenAiApi::OpenAiApi(runner::ModelRegistry* registry, std::shared_ptr<const Readiness> readiness,
                     const std::atomic<bool>* stopping)
    : registry_(registry), readiness_(std::move(readiness)), stopping_(stopping), created_(UnixNow()) {}

absl::StatusOr<std::shared_ptr<runner::LoadedModel>> OpenAiApi::Lookup(const std::string& id) const {
  auto m = registry_->Get(id);
  if (m.ok()) return m;
  if (readiness_->pending(id)) {
    return WithParam(absl::UnavailableError(absl::StrCat("model '", id,
                                                         "' is still being exported, compiled and loaded; retry when "
                                                         "GET /health returns 200")),
                     "model");
  }
  std::vector<std::string> ids;
  for (const auto& lm : registry_->List()) ids.push_back(lm->model_id);
  return WithParam(absl::NotFoundError(absl::StrCat("the model '", id, "' does not exist; served models: ",
                                                    ids.empty() ? "none" : absl::StrJoin(ids, ", "))),
                   "model");
}

void OpenAiApi::Completions(const httplib::Request& req, httplib::Response& res) const {
  auto body = ParseBody(req.body);
  if (!body.ok()) return SendError(res, body.status());
  auto r = ParseCompletionsRequest(*body);
  if (!r.ok()) return SendError(res, r.status());
  auto model = Lookup(r->model);
  if (!model.ok()) return SendError(res, model.status());
  const runner::LoadedModel& m = **model;
  if (absl::Status s = NeedCausal(m); !s.ok()) return SendError(res, s);
  auto ids = Tokenize(m, r->prompts, "prompt", /*add_special_tokens=*/true);
  if (!ids.ok()) return SendError(res, ids.status());
  Shape shape{false, NewId("cmpl-"), r->model, UnixNow(), {}};
  if (r->echo) {
    for (size_t p = 0; p < r->prompts.size(); ++p) {
      const PromptInput& in = r->prompts[p];
      shape.echo.push_back(in.is_text ? in.text : m.tokenizer ? m.tokenizer->Decode(in.ids, false) : std::string());
    }
  }
  auto gen = Generation::Start(*model, std::move(*ids), r->gen, kCompletionsDefaultMaxTokens, shape.id, "prompt");
  if (!gen.ok()) return SendError(res, gen.status());
  Respond(res, std::move(shape), std::move(*gen), r->gen, stopping_, open_streams_);
}

void OpenAiApi::ChatCompletions(const httplib::Request& req, httplib::Response& res) const {
  auto body = ParseBody(req.body);
  if (!body.ok()) return SendError(res, body.status());
  auto r = ParseChatRequest(*body);
  if (!r.ok()) return SendError(res, r.status());
  auto model = Lookup(r->model);
  if (!model.ok()) return SendError(res, model.status());
  const runner::LoadedModel& m = **model;
  if (absl::Status s = NeedCausal(m); !s.ok()) return SendError(res, s);
  if (!m.tokenizer) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id,
                                                         "' has no tokenizer files, so no chat template; use "
                                                         "/v1/completions with token ids")));
  }
  auto text = RenderChatPrompt(m, {r->messages, r->tools, r->add_generation_prompt, r->template_kwargs});
  if (!text.ok() && text.status().code() == absl::StatusCode::kNotFound) {
    return SendError(res, BadParam("model", std::string(text.status().message())));
  }
  if (!text.ok()) return SendError(res, WithParam(text.status(), "messages"));
  // The template writes the special tokens (BOS and all) itself, as vLLM tokenizes chat prompts.
  auto ids = Tokenize(m, {PromptInput{true, *text, {}}}, "messages", /*add_special_tokens=*/false);
  if (!ids.ok()) return SendError(res, ids.status());
  Shape shape{true, NewId("chatcmpl-"), r->model, UnixNow(), {}};
  // Chat fills the context unless told otherwise (max_completion_tokens / max_tokens).
  auto gen = Generation::Start(*model, std::move(*ids), r->gen, 0, shape.id, "messages");
  if (!gen.ok()) return SendError(res, gen.status());
  Respond(res, std::move(shape), std::move(*gen), r->gen, stopping_, open_streams_);
}

void OpenAiApi::Embeddings(const httplib::Request& req, httplib::Response& res) const {
  const auto t0 = SteadyClock::now();
  auto body = ParseBody(req.body);
  if (!body.ok()) return SendError(res, body.status());
  auto r = ParseEmbeddingsRequest(*body);
  if (!r.ok()) return SendError(res, r.status());
  auto model = Lookup(r->model);
  if (!model.ok()) return SendError(res, model.status());
  runner::LoadedModel& m = **model;
  if (m.scheduler) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id,
                                                         "' is a causal LM; /v1/embeddings needs an encoder (BERT) "
                                                         "model")));
  }
  if (m.encoder.classifier) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id,
                                                         "' is a sequence classifier (cross-encoder); use /v1/rerank")));
  }
  if (static_cast<int>(r->inputs.size()) > kMaxEmbedInputs) {
    return SendError(res, BadParam("input", absl::StrCat("at most ", kMaxEmbedInputs, " inputs per request")));
  }
  auto ids = Tokenize(m, r->inputs, "input", /*add_special_tokens=*/true);
  if (!ids.ok()) return SendError(res, ids.status());
  runner::EmbedOptions options;
  options.pooling = r->pooling;
  options.normalize = r->normalize;
  std::vector<runner::EncoderInput> inputs;
  for (auto& seq : *ids) inputs.push_back({std::move(seq), {}});
  absl::StatusOr<std::vector<std::vector<float>>> vectors;
  {
    std::lock_guard<std::mutex> run_lock(m.run_mu);
    vectors = runner::Embed(*m.session, m.encoder, inputs, options);
  }
  if (!vectors.ok()) return SendError(res, WithParam(vectors.status(), "input"));
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < vectors->size(); ++i) {
    const auto& v = (*vectors)[i];
    tokens += static_cast<int64_t>(inputs[i].ids.size());
    json e = {{"object", "embedding"}, {"index", i}};
    if (r->base64) {
      // OpenAI's base64 form: the float32 values' little-endian bytes (this is an x86/ARM LE host).
      std::string bytes(v.size() * sizeof(float), '\0');
      std::memcpy(bytes.data(), v.data(), bytes.size());
      e["embedding"] = absl::Base64Escape(bytes);
    } else {
      e["embedding"] = v;
    }
    data.push_back(std::move(e));
  }
  SendJson(res, {{"object", "list"},
                 {"data", data},
                 {"model", r->model},
                 {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  spdlog::info("request_done id={} model={} frontend=http endpoint=embeddings inputs={} prompt_tokens={} e2e_ms={:.2f} "
               "status=OK",
               NewId("embd-"), m.model_id, vectors->size(), tokens,
               std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
}

void OpenAiApi::Models(const httplib::Request&, httplib::Response& res) const {
  json data = json::array();
  for (const auto& m : registry_->List()) {
    int max_len = 0;
    for (const auto& s : m->session->specializations()) max_len = std::max(max_len, m->scheduler ? s.ctx_len : s.seq_len);
    data.push_back({{"id", m->model_id},
                    {"object", "model"},
                    {"created", created_},
                    {"owned_by", "qeff"},
                    {"root", m->qpc_key},
                    {"parent", nullptr},
                    {"max_model_len", max_len}});
  }
  SendJson(res, {{"object", "list"}, {"data", data}});
}

void OpenAiApi::Health(const httplib::Request&, httplib::Response& res) const {
  if (stopping_->load()) return SendError(res, absl::UnavailableError("the server is shutting down"));
  if (!readiness_->ready()) {
    return SendError(res, absl::UnavailableError(absl::StrCat("still loading: ", absl::StrJoin(readiness_->pending_ids(), ", "))));
  }
  SendJson(res, {{"status", "ok"}});
}

void OpenAiApi::Rerank(const httplib::Request& req, httplib::Response& res) const {
  const auto t0 = SteadyClock::now();
  auto body = ParseBody(req.body);
  if (!body.ok()) return SendError(res, body.status());
  auto r = ParseRerankRequest(*body);
  if (!r.ok()) return SendError(res, r.status());
  auto model = Lookup(r->model);
  if (!model.ok()) return SendError(res, model.status());
  runner::LoadedModel& m = **model;
  if (m.scheduler || !m.encoder.classifier) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id,
                                                         "' is not a cross-encoder; /v1/rerank needs a sequence "
                                                         "classifier with one label (e.g. bge-reranker, "
                                                         "ms-marco-MiniLM)")));
  }
  if (m.encoder.num_labels != 1) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id, "' has ", m.encoder.num_labels,
                                                         " labels; /v1/rerank needs a cross-encoder with one "
                                                         "relevance label (use Runner.Classify for the scores)")));
  }
  if (!m.tokenizer) {
    return SendError(res, BadParam("model", absl::StrCat("model '", m.model_id,
                                                         "' has no tokenizer files (tokenizer.json); /v1/rerank "
                                                         "tokenizes the query and documents with them")));
  }
  std::vector<runner::ClassifyInput> pairs;
  for (const auto& doc : r->documents) {
    if (r->query.size() + doc.size() > kMaxTextBytes) return SendError(res, BadParam("documents", "a document is larger than 4 MiB"));
    runner::ClassifyInput in;
    in.is_text = true;
    in.text = r->query;
    in.text_pair = doc;
    pairs.push_back(std::move(in));
  }
  auto inputs = runner::TokenizeInputs(m.tokenizer.get(), m.encoder, pairs);
  if (!inputs.ok()) return SendError(res, WithParam(inputs.status(), "documents"));
  absl::StatusOr<std::vector<runner::Classification>> scored;
  {
    std::lock_guard<std::mutex> run_lock(m.run_mu);
    scored = runner::Classify(*m.session, m.encoder, *inputs);
  }
  if (!scored.ok()) return SendError(res, WithParam(scored.status(), "documents"));
  std::vector<size_t> order(scored->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return (*scored)[a].scores[0] > (*scored)[b].scores[0]; });
  if (r->top_n && static_cast<size_t>(*r->top_n) < order.size()) order.resize(*r->top_n);
  json results = json::array();
  for (size_t i : order) {
    json item = {{"index", i}, {"relevance_score", (*scored)[i].scores[0]}};
    if (r->return_documents) item["document"] = {{"text", r->documents[i]}};
    results.push_back(std::move(item));
  }
  int64_t tokens = 0;
  for (const auto& in : *inputs) tokens += static_cast<int64_t>(in.ids.size());
  const std::string id = NewId("rerank-");
  SendJson(res, {{"id", id}, {"model", r->model}, {"results", results}, {"usage", {{"total_tokens", tokens}}}});
  spdlog::info("request_done id={} model={} frontend=http endpoint=rerank documents={} prompt_tokens={} e2e_ms={:.2f} "
               "status=OK",
               id, m.model_id, scored->size(), tokens,
               std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
}

}  // namespace qeff::http
