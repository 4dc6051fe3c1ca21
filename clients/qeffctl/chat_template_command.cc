#include "clients/qeffctl/chat_template_command.h"

#include <cstdio>
#include <ostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "clients/qeffctl/jsonl_lines.h"
#include "common/chat_template/chat_template.h"
#include "common/chat_template/strftime.h"

namespace {

using Json = nlohmann::ordered_json;
using qeff::chat::ChatTemplate;

// Checks one input line; returns an error text or "".
std::string CheckLine(const Json& j) {
  if (!j.is_object()) return "expected a JSON object";
  if (j.contains("messages") && !j["messages"].is_array()) return "messages must be a list";
  if (j.contains("tools") && !j["tools"].is_null() && !j["tools"].is_array()) return "tools must be null or a list";
  if (j.contains("add_generation_prompt") && !j["add_generation_prompt"].is_boolean()) {
    return "add_generation_prompt must be a boolean";
  }
  if (j.contains("kwargs") && !j["kwargs"].is_object()) return "kwargs must be an object";
  return "";
}

// nlohmann writes DEL, C1 controls and U+2028/U+2029 raw; escape them so that every output line
// ends only at '\n', even for readers that split on Unicode line breaks (Python's splitlines()).
std::string EscapeLineBreakers(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  char buf[8];
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const unsigned char n1 = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    const unsigned char n2 = i + 2 < s.size() ? static_cast<unsigned char>(s[i + 2]) : 0;
    if (c == 0x7F) {
      out += "\\u007f";
    } else if (c == 0xC2 && n1 >= 0x80 && n1 <= 0x9F) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", n1);
      out += buf;
      ++i;
    } else if (c == 0xE2 && n1 == 0x80 && (n2 == 0xA8 || n2 == 0xA9)) {
      out += n2 == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace

int RunChatTemplateCommand(const std::string& tokenizer_dir, const std::string& jsonl_path, const std::string& now,
                           std::ostream& out, std::ostream& err) {
  if (!now.empty() && !qeff::chat::IsValidFrozenTime(now)) {
    err << "chat-template: --now must look like \"2025-01-15 14:30:00\", got \"" << now << "\"\n";
    return 1;
  }
  // transformers picks the named `tool_use` template only when tools are given.
  std::optional<ChatTemplate> templates[2];
  for (int with_tools = 0; with_tools < 2; ++with_tools) {
    auto t = ChatTemplate::FromTokenizerConfig(tokenizer_dir, with_tools == 1);
    if (!t.ok()) {
      err << "chat-template: " << t.status().ToString() << "\n";
      return 1;
    }
    templates[with_tools] = std::move(*t);
  }

  const bool ok = qeffctl::ForEachJsonLine(jsonl_path, "chat-template", err, [&](size_t line_no, const std::string& line) {
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string problem = j.is_discarded() ? "not valid JSON" : CheckLine(j);
    if (!problem.empty()) {
      err << "chat-template: " << jsonl_path << ":" << line_no << ": " << problem << "\n";
      return false;
    }
    ChatTemplate::Inputs inputs;
    if (j.contains("messages")) inputs.messages = j["messages"];
    if (j.contains("tools")) inputs.tools = j["tools"];
    inputs.add_generation_prompt = j.value("add_generation_prompt", false);
    if (j.contains("kwargs")) inputs.kwargs = j["kwargs"];
    inputs.now = now;
    auto rendered = templates[inputs.tools.is_null() ? 0 : 1]->Render(inputs);
    Json result = Json::object();
    if (rendered.ok()) {
      result["rendered"] = *rendered;
    } else {
      result["error"] = std::string(rendered.status().message());
    }
    out << EscapeLineBreakers(result.dump(-1, ' ', false, Json::error_handler_t::replace)) << "\n";
    return true;
  });
  if (!ok) return 1;
  out.flush();
  return 0;
}
