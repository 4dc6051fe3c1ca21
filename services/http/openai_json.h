// OpenAI API request bodies -> validated C++ structs, and the JSON pieces of its responses.
//
// Every field is type- and range-checked; an error names the field (OpenAI's error.param) and
// says what to send instead. Unknown fields are ignored, as OpenAI and vLLM do; null means
// "not given". Besides OpenAI's fields we take vLLM's sampling extensions (top_k, min_p,
// repetition_penalty, ignore_eos, stop_token_ids, min_tokens, include_stop_str_in_output,
// skip_special_tokens, chat_template_kwargs, add_generation_prompt).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "services/runner/sampler.h"
#include "services/runner/scheduler.h"

namespace qeff::http {

// Ordered: responses keep OpenAI's field order, and messages/tools reach the chat template in
// the request's key order (its tojson preserves it, as transformers' does).
using json = nlohmann::ordered_json;

// One prompt (or embedding input): text, or token ids.
struct PromptInput {
  bool is_text = true;
  std::string text;
  std::vector<int32_t> ids;
};

// The generation fields completions and chat share.
struct GenerationFields {
  std::optional<int> max_tokens;  // max_tokens (chat: max_completion_tokens first)
  runner::SamplingConfig sampling;  // temperature default 1 (OpenAI's)
  std::optional<uint64_t> seed;
  int n = 1;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  int min_tokens = 0;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int top_logprobs = -1;       // -1: no logprobs; k: the chosen token's and the k most likely
};

struct CompletionsRequest {
  std::string model;
  std::vector<PromptInput> prompts;  // each gets n choices
  bool echo = false;
  GenerationFields gen;
};

struct ChatRequest {
  std::string model;
  json messages;  // normalized: content is a string (text parts joined) or null
  json tools;     // null or an array of tool objects
  json template_kwargs = json::object();  // chat_template_kwargs
  bool add_generation_prompt = true;
  GenerationFields gen;
};

struct EmbeddingsRequest {
  std::string model;
  std::vector<PromptInput> inputs;
  bool base64 = false;           // encoding_format "base64": little-endian float32 bytes
  std::string pooling = "mean";  // extension: mean | cls | max | pooler
  bool normalize = true;         // extension: L2-normalize (OpenAI's embeddings have length 1)
};

// POST /v1/rerank, the shape Jina, Cohere and TEI use: score every document against the query
// with a cross-encoder.
struct RerankRequest {
  std::string model;
  std::string query;
  std::vector<std::string> documents;  // strings or {"text": ...} objects
  std::optional<int> top_n;            // default: every document
  bool return_documents = true;        // Jina's default
};

// The body must be a JSON object.
absl::StatusOr<json> ParseBody(const std::string& body);
absl::StatusOr<CompletionsRequest> ParseCompletionsRequest(const json& body);
absl::StatusOr<ChatRequest> ParseChatRequest(const json& body);
absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(const json& body);
absl::StatusOr<RerankRequest> ParseRerankRequest(const json& body);

// Response pieces.
json Usage(int64_t prompt_tokens, int64_t completion_tokens);
// A token's text for logprobs (its own decode; "token_id:N" without a tokenizer).
std::string TokenText(const tokenizer::Tokenizer* tok, int32_t id);
// /v1/completions logprobs: {tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset}.
// `offset` is where the first token's text starts in the choice's text (after an echoed prompt).
json CompletionLogprobs(const tokenizer::Tokenizer* tok, const std::vector<runner::TokenLogprob>& lps, size_t offset);
// /v1/chat/completions logprobs: {content: [{token, logprob, bytes, top_logprobs: [...]}], refusal: null}.
json ChatLogprobs(const tokenizer::Tokenizer* tok, const std::vector<runner::TokenLogprob>& lps);
// "cmpl-…" / "chatcmpl-…" / "embd-…" with 32 random hex digits.
std::string NewId(const std::string& prefix);
// Dumps without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string Dump(const json& j);

}  // namespace qeff::http
