// Chat messages -> prompt text with the model's chat template (tokenizer_config.json's
// chat_template, rendered as transformers' apply_chat_template does). Parsed templates are
// cached per qpc folder.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "services/runner/model_registry.h"

namespace qeff::http {

struct ChatPromptInput {
  nlohmann::ordered_json messages;  // OpenAI messages, content already a string or null
  nlohmann::ordered_json tools;     // null or an array
  bool add_generation_prompt = true;
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // extra template variables
};

// NOT_FOUND when the model has no chat template (use /v1/completions); INVALID_ARGUMENT when
// the template fails on these messages (raise_exception's message verbatim) or is too costly.
absl::StatusOr<std::string> RenderChatPrompt(const runner::LoadedModel& model, const ChatPromptInput& input);

}  // namespace qeff::http
