// libFuzzer: arbitrary bytes as a chat template (the first part) and as the conversation (the
// rest, JSON). Parsing must fail cleanly or give a template whose render, under the default
// RenderLimits, either succeeds or fails with a status: never a crash, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/chat_template/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // "<template>\0<messages json>": without a NUL the whole input is the template.
  const size_t split = input.find('\0');
  const std::string source(input.substr(0, split));
  const nlohmann::ordered_json special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  auto tmpl = qeff::chat::ChatTemplate::Parse(source, special);
  if (!tmpl.ok()) return 0;
  qeff::chat::ChatTemplate::Inputs in;
  in.now = "2025-01-15 14:30:00";
  in.messages = nlohmann::ordered_json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi \xC3\xA9"}},
       {{"role", "assistant"}, {"content", "Hello"}}, {{"role", "user"}, {"content", "Again"}}});
  (void)tmpl->Render(in);
  if (split != std::string_view::npos) {
    auto messages = nlohmann::ordered_json::parse(input.substr(split + 1), nullptr, /*allow_exceptions=*/false);
    if (!messages.is_discarded()) {
      in.messages = messages;
      in.add_generation_prompt = true;
      in.tools = nlohmann::ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
      (void)tmpl->Render(in);
    }
  }
  return 0;
}
