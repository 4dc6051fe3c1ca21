#include "services/http/openai_json.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/http/errors.h"

namespace qeff::http {
namespace {

constexpr int kMaxChoices = 16;     // runner::Completion's limit
constexpr int kMaxTopLogprobs = 20;  // the scheduler's limit
constexpr size_t kMaxStops = 16, kMaxStopBytes = 1024;
constexpr size_t kMaxPrompts = 256;     // prompts (or embedding inputs) in one request
constexpr size_t kMaxTokenIds = 1 << 20;  // ids in one prompt

const char* TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "something else";
  }
}

// The field, or null when it is absent or null.
const json* Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer (a float without a fraction counts, as pydantic's lax mode does).
bool AsInt(const json& v, int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return false;
    *out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

absl::Status GetInt(const json& obj, const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return absl::OkStatus();
  int64_t x = 0;
  if (!AsInt(*v, &x)) {
    return BadParam(name, absl::StrCat("'", name, "' must be an integer, got ", TypeName(*v)));
  }
  if (x < lo || x > hi) {
    return BadParam(name, absl::StrCat("'", name, "' must be in [", lo, ", ", hi, "], got ", x));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status GetNumber(const json& obj, const char* name, double lo, double hi, bool lo_open, std::optional<double>* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return BadParam(name, absl::StrCat("'", name, "' must be a number, got ", TypeName(*v)));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
    return BadParam(name, absl::StrCat("'", name, "' must be in ", lo_open ? "(" : "[", lo, ", ", hi, "], got ", x));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status GetBool(const json& obj, const char* name, bool* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return BadParam(name, absl::StrCat("'", name, "' must be a boolean, got ", TypeName(*v)));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const json& obj, const char* name, std::optional<std::string>* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return BadParam(name, absl::StrCat("'", name, "' must be a string, got ", TypeName(*v)));
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetModel(const json& obj, std::string* model) {
  std::optional<std::string> m;
  if (absl::Status s = GetString(obj, "model", &m); !s.ok()) return s;
  if (!m || m->empty()) return BadParam("model", "'model' is required: the id of a served model (GET /v1/models)");
  *model = *m;
  return absl::OkStatus();
}

absl::Status TokenIds(const json& arr, const char* name, std::vector<int32_t>* out) {
  if (arr.size() > kMaxTokenIds) return BadParam(name, absl::StrCat("'", name, "' has more than ", kMaxTokenIds, " token ids"));
  for (const json& t : arr) {
    int64_t id = 0;
    if (!AsInt(t, &id) || id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return BadParam(name, absl::StrCat("'", name, "' token ids must be integers in [0, 2^31), got ", t.dump()));
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return absl::OkStatus();
}

// A string, a list of strings, a list of token ids, or a list of token-id lists.
absl::Status Prompts(const json& obj, const char* name, std::vector<PromptInput>* out) {
  const json* v = Field(obj, name);
  const std::string shapes = absl::StrCat("'", name,
                                          "' must be a string, an array of strings, an array of token ids, "
                                          "or an array of token-id arrays");
  if (v == nullptr) return BadParam(name, absl::StrCat("'", name, "' is required: ", shapes.substr(shapes.find("must") + 5)));
  if (v->is_string()) {
    out->push_back({true, v->get<std::string>(), {}});
    return absl::OkStatus();
  }
  if (!v->is_array()) return BadParam(name, absl::StrCat(shapes, "; got ", TypeName(*v)));
  if (v->empty()) return BadParam(name, absl::StrCat("'", name, "' is an empty array"));
  if ((*v)[0].is_number()) {
    PromptInput p;
    p.is_text = false;
    if (absl::Status s = TokenIds(*v, name, &p.ids); !s.ok()) return s;
    out->push_back(std::move(p));
    return absl::OkStatus();
  }
  if (v->size() > kMaxPrompts) return BadParam(name, absl::StrCat("at most ", kMaxPrompts, " entries in '", name, "'"));
  const bool strings = (*v)[0].is_string();
  for (const json& e : *v) {
    if (strings && e.is_string()) {
      out->push_back({true, e.get<std::string>(), {}});
    } else if (!strings && e.is_array()) {
      PromptInput p;
      p.is_text = false;
      if (e.empty()) return BadParam(name, absl::StrCat("'", name, "' has an empty token-id array"));
      if (absl::Status s = TokenIds(e, name, &p.ids); !s.ok()) return s;
      out->push_back(std::move(p));
    } else {
      return BadParam(name, absl::StrCat(shapes, " (not a mix); found ", TypeName(e)));
    }
  }
  return absl::OkStatus();
}

// Fields OpenAI defines that change the output in ways we do not implement: refuse rather than
// silently ignore them.
absl::Status Unsupported(const json& obj) {
  if (const json* v = Field(obj, "logit_bias"); v != nullptr && !(v->is_object() && v->empty())) {
    return BadParam("logit_bias", "'logit_bias' is not supported; remove it");
  }
  if (const json* v = Field(obj, "suffix"); v != nullptr && !(v->is_string() && v->get<std::string>().empty())) {
    return BadParam("suffix", "'suffix' (insertion) is not supported; remove it");
  }
  if (const json* v = Field(obj, "response_format")) {
    const bool text = v->is_object() && v->value("type", "") == "text";
    if (!text) return BadParam("response_format", "only response_format {\"type\": \"text\"} is supported");
  }
  return absl::OkStatus();
}

absl::Status Generation(const json& obj, bool chat, GenerationFields* g) {
  if (absl::Status s = Unsupported(obj); !s.ok()) return s;
  std::optional<int64_t> i;
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  const char* max_name = chat && Field(obj, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (absl::Status s = GetInt(obj, max_name, 1, kIntMax, &i); !s.ok()) {
    return BadParam(max_name, absl::StrCat(s.message(), " (the number of tokens to generate, at least 1)"));
  }
  if (i) g->max_tokens = static_cast<int>(*i);

  std::optional<double> d;
  if (absl::Status s = GetNumber(obj, "temperature", 0, 100, false, &d); !s.ok()) return s;
  g->sampling.temperature = d ? static_cast<float>(*d) : 1.0f;  // OpenAI's default
  d.reset();
  if (absl::Status s = GetNumber(obj, "top_p", 0, 1, true, &d); !s.ok()) return s;
  if (d) g->sampling.top_p = static_cast<float>(*d);
  i.reset();
  if (absl::Status s = GetInt(obj, "top_k", -1, kIntMax, &i); !s.ok()) return s;
  if (i) g->sampling.top_k = *i <= 0 ? 0 : static_cast<int>(*i);  // vLLM: -1 or 0 = off
  d.reset();
  if (absl::Status s = GetNumber(obj, "min_p", 0, 1, false, &d); !s.ok()) return s;
  if (d) g->sampling.min_p = static_cast<float>(*d);
  d.reset();
  if (absl::Status s = GetNumber(obj, "repetition_penalty", 0, 100, true, &d); !s.ok()) return s;
  if (d) g->sampling.repetition_penalty = static_cast<float>(*d);
  d.reset();
  if (absl::Status s = GetNumber(obj, "frequency_penalty", -2, 2, false, &d); !s.ok()) return s;
  if (d) g->sampling.frequency_penalty = static_cast<float>(*d);
  d.reset();
  if (absl::Status s = GetNumber(obj, "presence_penalty", -2, 2, false, &d); !s.ok()) return s;
  if (d) g->sampling.presence_penalty = static_cast<float>(*d);
  i.reset();
  if (absl::Status s = GetInt(obj, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &i);
      !s.ok()) {
    return s;
  }
  if (i) g->seed = static_cast<uint64_t>(*i);
  i.reset();
  if (absl::Status s = GetInt(obj, "n", 1, kMaxChoices, &i); !s.ok()) return s;
  if (i) g->n = static_cast<int>(*i);
  if (const json* v = Field(obj, "best_of")) {
    int64_t b = 0;
    if (!AsInt(*v, &b) || b != g->n) return BadParam("best_of", "'best_of' is not supported (other than best_of == n)");
  }

  if (const json* v = Field(obj, "stop")) {
    if (v->is_string()) {
      g->stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const json& s : *v) {
        if (!s.is_string()) return BadParam("stop", absl::StrCat("'stop' must be a string or an array of strings; found ", TypeName(s)));
        g->stop.push_back(s.get<std::string>());
      }
    } else {
      return BadParam("stop", absl::StrCat("'stop' must be a string or an array of strings, got ", TypeName(*v)));
    }
    if (g->stop.size() > kMaxStops) return BadParam("stop", absl::StrCat("at most ", kMaxStops, " stop strings"));
    for (const auto& s : g->stop) {
      if (s.size() > kMaxStopBytes) return BadParam("stop", absl::StrCat("a stop string is longer than ", kMaxStopBytes, " bytes"));
    }
  }
  if (const json* v = Field(obj, "stop_token_ids")) {
    if (!v->is_array()) return BadParam("stop_token_ids", absl::StrCat("'stop_token_ids' must be an array of token ids, got ", TypeName(*v)));
    if (v->size() > 1024) return BadParam("stop_token_ids", "at most 1024 stop token ids");
    if (absl::Status s = TokenIds(*v, "stop_token_ids", &g->stop_token_ids); !s.ok()) return s;
  }
  if (absl::Status s = GetBool(obj, "ignore_eos", &g->ignore_eos); !s.ok()) return s;
  i.reset();
  if (absl::Status s = GetInt(obj, "min_tokens", 0, kIntMax, &i); !s.ok()) return s;
  if (i) g->min_tokens = static_cast<int>(*i);
  if (g->max_tokens && g->min_tokens > *g->max_tokens) {
    return BadParam("min_tokens", absl::StrCat("'min_tokens' (", g->min_tokens, ") must not exceed '", max_name, "' (",
                                               *g->max_tokens, ")"));
  }
  if (absl::Status s = GetBool(obj, "include_stop_str_in_output", &g->include_stop_str_in_output); !s.ok()) return s;
  if (absl::Status s = GetBool(obj, "skip_special_tokens", &g->skip_special_tokens); !s.ok()) return s;
  if (absl::Status s = GetBool(obj, "stream", &g->stream); !s.ok()) return s;
  if (const json* v = Field(obj, "stream_options")) {
    if (!v->is_object()) return BadParam("stream_options", absl::StrCat("'stream_options' must be an object, got ", TypeName(*v)));
    if (!g->stream) return BadParam("stream_options", "'stream_options' is only allowed with \"stream\": true");
    if (absl::Status s = GetBool(*v, "include_usage", &g->include_usage); !s.ok()) {
      return BadParam("stream_options", "'stream_options.include_usage' must be a boolean");
    }
  }
  std::optional<std::string> user;  // accepted for compatibility; unused
  if (absl::Status s = GetString(obj, "user", &user); !s.ok()) return s;

  // Logprobs: completions take an int (how many alternatives), chat a bool + top_logprobs.
  if (!chat) {
    if (const json* v = Field(obj, "logprobs"); v != nullptr && !(v->is_boolean() && !v->get<bool>())) {
      int64_t k = 0;
      if (v->is_boolean() || !AsInt(*v, &k) || k < 0 || k > kMaxTopLogprobs) {
        return BadParam("logprobs", absl::StrCat("'logprobs' must be an integer in [0, ", kMaxTopLogprobs,
                                                 "] (how many most likely tokens to list per position)"));
      }
      g->top_logprobs = static_cast<int>(k);
    }
  } else {
    bool want = false;
    if (absl::Status s = GetBool(obj, "logprobs", &want); !s.ok()) return s;
    i.reset();
    if (absl::Status s = GetInt(obj, "top_logprobs", 0, kMaxTopLogprobs, &i); !s.ok()) return s;
    if (i && !want) return BadParam("top_logprobs", "'top_logprobs' needs \"logprobs\": true");
    if (want) g->top_logprobs = i ? static_cast<int>(*i) : 0;
  }
  return absl::OkStatus();
}

// OpenAI message content: a string, null, or an array of parts of which we take the text ones.
absl::StatusOr<json> MessageContent(const json& content, size_t index) {
  const std::string param = absl::StrCat("messages[", index, "].content");
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) return BadParam(param, absl::StrCat("'", param, "' must be a string, null or an array of content parts"));
  std::vector<std::string> texts;
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return BadParam(param, absl::StrCat("each part of '", param, "' must be an object with a string 'type'"));
    }
    const std::string type = part["type"].get<std::string>();
    if (type != "text") {
      return BadParam(param, absl::StrCat("content part type '", type, "' is not supported; send text parts only"));
    }
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) return BadParam(param, absl::StrCat("a text part of '", param, "' needs a string 'text'"));
    texts.push_back(t->get<std::string>());
  }
  return json(absl::StrJoin(texts, "\n"));  // as vLLM joins text parts
}

}  // namespace

absl::StatusOr<json> ParseBody(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions for the position and reason.
    std::string why = "not valid JSON";
    try {
      json again = json::parse(body);
    } catch (const json::parse_error& e) {
      why = e.what();
    }
    return absl::InvalidArgumentError(absl::StrCat("the request body is not valid JSON: ", why));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat("the request body must be a JSON object, got ", TypeName(j)));
  return j;
}

absl::StatusOr<CompletionsRequest> ParseCompletionsRequest(const json& body) {
  CompletionsRequest r;
  if (absl::Status s = GetModel(body, &r.model); !s.ok()) return s;
  if (absl::Status s = Prompts(body, "prompt", &r.prompts); !s.ok()) return s;
  if (absl::Status s = GetBool(body, "echo", &r.echo); !s.ok()) return s;
  if (absl::Status s = Generation(body, /*chat=*/false, &r.gen); !s.ok()) return s;
  if (r.echo && r.gen.top_logprobs >= 0) {
    return BadParam("echo", "'echo' with 'logprobs' is not supported (no prompt log-probabilities); drop one of them");
  }
  if (r.prompts.size() * static_cast<size_t>(r.gen.n) > kMaxPrompts) {
    return BadParam("n", absl::StrCat("prompts x n must be at most ", kMaxPrompts));
  }
  return r;
}

absl::StatusOr<ChatRequest> ParseChatRequest(const json& body) {
  ChatRequest r;
  if (absl::Status s = GetModel(body, &r.model); !s.ok()) return s;
  const json* m = Field(body, "messages");
  if (m == nullptr) return BadParam("messages", "'messages' is required: an array of {\"role\", \"content\"} objects");
  if (!m->is_array() || m->empty()) {
    return BadParam("messages", "'messages' must be a non-empty array of {\"role\", \"content\"} objects");
  }
  static const char* const kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};
  r.messages = json::array();
  for (size_t k = 0; k < m->size(); ++k) {
    const json& msg = (*m)[k];
    const std::string param = absl::StrCat("messages[", k, "]");
    if (!msg.is_object()) return BadParam(param, absl::StrCat("'", param, "' must be an object, got ", TypeName(msg)));
    auto role = msg.find("role");
    if (role == msg.end() || !role->is_string()) return BadParam(param + ".role", absl::StrCat("'", param, ".role' must be a string"));
    bool known = false;
    for (const char* r : kRoles) known = known || *role == r;
    if (!known) {
      return BadParam(param + ".role", absl::StrCat("'", param, ".role' must be one of system, developer, user, "
                                                                "assistant, tool; got '", role->get<std::string>(), "'"));
    }
    json out = msg;
    auto content = msg.find("content");
    const bool may_omit = *role == "assistant" && msg.contains("tool_calls");
    if (content == msg.end() || content->is_null()) {
      if (!may_omit) return BadParam(param + ".content", absl::StrCat("'", param, ".content' is required"));
      out["content"] = nullptr;
    } else {
      auto c = MessageContent(*content, k);
      if (!c.ok()) return c.status();
      out["content"] = *c;
    }
    r.messages.push_back(std::move(out));
  }
  if (const json* t = Field(body, "tools")) {
    if (!t->is_array()) return BadParam("tools", absl::StrCat("'tools' must be an array, got ", TypeName(*t)));
    for (const json& tool : *t) {
      if (!tool.is_object()) return BadParam("tools", "each entry of 'tools' must be an object");
    }
    if (!t->empty()) r.tools = *t;
  }
  if (const json* tc = Field(body, "tool_choice")) {
    if (!(tc->is_string() && (*tc == "none" || *tc == "auto"))) {
      return BadParam("tool_choice", "only tool_choice \"auto\" or \"none\" is supported");
    }
    if (*tc == "none") r.tools = nullptr;
  }
  if (const json* k = Field(body, "chat_template_kwargs")) {
    if (!k->is_object()) return BadParam("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    r.template_kwargs = *k;
  }
  if (absl::Status s = GetBool(body, "add_generation_prompt", &r.add_generation_prompt); !s.ok()) return s;
  if (absl::Status s = Generation(body, /*chat=*/true, &r.gen); !s.ok()) return s;
  return r;
}

absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(const json& body) {
  EmbeddingsRequest r;
  if (absl::Status s = GetModel(body, &r.model); !s.ok()) return s;
  if (absl::Status s = Prompts(body, "input", &r.inputs); !s.ok()) return s;
  std::optional<std::string> format;
  if (absl::Status s = GetString(body, "encoding_format", &format); !s.ok()) return s;
  if (format && *format != "float" && *format != "base64") {
    return BadParam("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
  }
  r.base64 = format && *format == "base64";
  if (Field(body, "dimensions") != nullptr) {
    return BadParam("dimensions", "'dimensions' is not supported: the model's embedding size is fixed");
  }
  std::optional<std::string> pooling;
  if (absl::Status s = GetString(body, "pooling", &pooling); !s.ok()) return s;
  if (pooling) {
    if (*pooling != "mean" && *pooling != "cls" && *pooling != "max" && *pooling != "pooler") {
      return BadParam("pooling", "'pooling' must be one of mean, cls, max, pooler");
    }
    r.pooling = *pooling;
  }
  if (absl::Status s = GetBool(body, "normalize", &r.normalize); !s.ok()) return s;
  return r;
}

absl::StatusOr<RerankRequest> ParseRerankRequest(const json& body) {
  RerankRequest r;
  if (absl::Status s = GetModel(body, &r.model); !s.ok()) return s;
  std::optional<std::string> query;
  if (absl::Status s = GetString(body, "query", &query); !s.ok()) return s;
  if (!query || query->empty()) return BadParam("query", "'query' is required: the text to rank the documents for");
  r.query = std::move(*query);
  const json* docs = Field(body, "documents");
  if (docs == nullptr || !docs->is_array() || docs->empty()) {
    return BadParam("documents", "'documents' is required: a non-empty array of strings or {\"text\": ...} objects");
  }
  if (docs->size() > kMaxPrompts) {
    return BadParam("documents", absl::StrCat("at most ", kMaxPrompts, " documents per request"));
  }
  for (const json& d : *docs) {
    const json* text = d.is_object() ? Field(d, "text") : &d;
    if (text == nullptr || !text->is_string()) {
      return BadParam("documents", absl::StrCat("each document must be a string or {\"text\": string}, got ", d.dump()));
    }
    r.documents.push_back(text->get<std::string>());
  }
  std::optional<int64_t> top_n;
  if (absl::Status s = GetInt(body, "top_n", 1, std::numeric_limits<int32_t>::max(), &top_n); !s.ok()) return s;
  if (top_n) r.top_n = static_cast<int>(*top_n);
  if (absl::Status s = GetBool(body, "return_documents", &r.return_documents); !s.ok()) return s;
  return r;
}

json Usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string TokenText(const tokenizer::Tokenizer* tok, int32_t id) {
  if (tok == nullptr) return absl::StrCat("token_id:", id);
  return tok->Decode({id}, /*skip_special_tokens=*/false);
}

json CompletionLogprobs(const tokenizer::Tokenizer* tok, const std::vector<runner::TokenLogprob>& lps, size_t offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const auto& lp : lps) {
    const std::string text = TokenText(tok, lp.token);
    tokens.push_back(text);
    token_logprobs.push_back(lp.logprob);
    // vLLM's shape: the alternatives plus the chosen token (so up to k + 1 entries).
    json alts = json::object();
    for (const auto& [id, logprob] : lp.top) {
      const std::string t = TokenText(tok, id);
      if (!alts.contains(t)) alts[t] = logprob;
    }
    if (!alts.contains(text)) alts[text] = lp.logprob;
    top.push_back(std::move(alts));
    offsets.push_back(offset);
    offset += text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json ChatLogprobs(const tokenizer::Tokenizer* tok, const std::vector<runner::TokenLogprob>& lps) {
  auto entry = [&](int32_t id, float logprob) {
    const std::string text = TokenText(tok, id);
    json bytes = json::array();
    for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
    return json{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
  };
  json content = json::array();
  for (const auto& lp : lps) {
    json e = entry(lp.token, lp.logprob);
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) top.push_back(entry(id, logprob));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return {{"content", content}, {"refusal", nullptr}};
}

std::string NewId(const std::string& prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> l(mu);
    a = rng();
    b = rng();
  }
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return prefix + buf;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace qeff::http
