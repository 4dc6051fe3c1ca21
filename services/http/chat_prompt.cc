#include "services/http/chat_prompt.h"

#include <map>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/chat_template/chat_template.h"

namespace qeff::http {

namespace {

// Parsed templates by (qpc folder, with tools): parsing costs more than rendering, and a parsed
// template may render on several threads at once.
struct Cache {
  std::mutex mu;
  std::map<std::pair<std::string, bool>, std::shared_ptr<const chat::ChatTemplate>> templates;
};

absl::StatusOr<std::shared_ptr<const chat::ChatTemplate>> TemplateFor(const runner::LoadedModel& model, bool with_tools) {
  static Cache* cache = new Cache();
  const auto key = std::make_pair(model.dir.string(), with_tools);
  std::lock_guard<std::mutex> l(cache->mu);
  auto it = cache->templates.find(key);
  if (it != cache->templates.end()) return it->second;
  auto t = chat::ChatTemplate::FromTokenizerConfig(model.dir, with_tools);
  if (!t.ok()) return t.status();
  auto shared = std::make_shared<const chat::ChatTemplate>(std::move(*t));
  cache->templates[key] = shared;
  return shared;
}

}  // namespace

absl::StatusOr<std::string> RenderChatPrompt(const runner::LoadedModel& model, const ChatPromptInput& input) {
  const bool with_tools = input.tools.is_array() && !input.tools.empty();
  auto t = TemplateFor(model, with_tools);
  if (!t.ok()) {
    if (t.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("model '", model.model_id,
                                              "' has no chat template (tokenizer_config.json chat_template); use "
                                              "/v1/completions with a prompt in the model's own format"));
    }
    return absl::InvalidArgumentError(absl::StrCat("model '", model.model_id, "': ", t.status().message()));
  }
  chat::ChatTemplate::Inputs in;
  in.messages = input.messages;
  in.tools = input.tools;
  in.add_generation_prompt = input.add_generation_prompt;
  in.kwargs = input.kwargs;
  auto text = (*t)->Render(in);
  // A render limit is about this request's messages, not server load (not a 429).
  if (!text.ok() && text.status().code() == absl::StatusCode::kResourceExhausted) {
    return absl::InvalidArgumentError(absl::StrCat("the chat template hit a render limit: ", text.status().message()));
  }
  return text;
}

}  // namespace qeff::http
