// Shared helpers for the chat template tests: fixture paths, cases.jsonl, one-call rendering.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/chat_template/chat_template.h"

namespace qeff::chat::testing {

using Json = nlohmann::ordered_json;

// The clock the fixtures were rendered with.
inline constexpr char kFrozenNow[] = "2025-01-15 14:30:00";

inline std::filesystem::path FixtureDir(const std::string& name) {
  return std::filesystem::path(QEFF_SOURCE_DIR) / "tests/fixtures/chat_templates" / name;
}

inline const std::vector<std::string>& FixtureNames() {
  static const std::vector<std::string> names = {"mistral", "qwen2.5", "gemma2", "llama3"};
  return names;
}

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<Json> ReadCases(const std::filesystem::path& path) {
  std::vector<Json> cases;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) cases.push_back(Json::parse(line));
  }
  return cases;
}

// Renders `source` with `vars` as extra variables (messages etc. can be given there too, as
// kwargs would be, except for the four names render() takes itself).
struct Rendered {
  bool ok = false;
  std::string text;  // the output, or the status message
  bool raised = false;
};

inline Rendered RenderWith(const std::string& source, const Json& inputs = Json::object()) {
  Rendered r;
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) {
    r.text = std::string(t.status().message());
    return r;
  }
  ChatTemplate::Inputs in;
  if (inputs.contains("messages")) in.messages = inputs["messages"];
  if (inputs.contains("tools")) in.tools = inputs["tools"];
  in.add_generation_prompt = inputs.value("add_generation_prompt", false);
  if (inputs.contains("kwargs")) in.kwargs = inputs["kwargs"];
  in.now = inputs.value("now", std::string(kFrozenNow));
  auto out = t->Render(in);
  if (out.ok()) {
    r.ok = true;
    r.text = *out;
  } else {
    r.text = std::string(out.status().message());
    r.raised = ChatTemplate::IsRaisedByTemplate(out.status());
  }
  return r;
}

// Shorthand: the template's output with `kwargs` as variables; "ERROR: msg" when it fails.
inline std::string R(const std::string& source, const Json& kwargs = Json::object()) {
  Rendered r = RenderWith(source, Json{{"kwargs", kwargs}});
  return r.ok ? r.text : "ERROR: " + r.text;
}

}  // namespace qeff::chat::testing
