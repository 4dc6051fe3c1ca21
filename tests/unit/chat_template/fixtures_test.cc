// Every case of the four shared golden fixtures (Python jinja2 with transformers' settings)
// renders byte-identically, or fails the same way: raise_exception messages verbatim, Python
// runtime errors (UndefinedError, TypeError) as some error.
#include <fstream>

#include <gtest/gtest.h>

#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::Json;

void CheckCases(const std::string& name, const ChatTemplate& t, int* rendered, int* errors) {
  for (const Json& c : testing::ReadCases(testing::FixtureDir(name) / "cases.jsonl")) {
    ChatTemplate::Inputs in;
    in.messages = c["messages"];
    in.tools = c["tools"];
    in.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    in.kwargs = c["kwargs"];
    in.now = testing::kFrozenNow;
    auto out = t.Render(in);
    const std::string id = name + "/" + c["name"].get<std::string>();
    if (c.contains("rendered")) {
      ASSERT_TRUE(out.ok()) << id << ": " << out.status();
      EXPECT_EQ(*out, c["rendered"].get<std::string>()) << id;
      ++*rendered;
    } else {
      ASSERT_FALSE(out.ok()) << id << " rendered " << *out;
      if (c["error_type"] == "TemplateError") {
        EXPECT_TRUE(ChatTemplate::IsRaisedByTemplate(out.status())) << id;
        EXPECT_EQ(out.status().message(), c["error"].get<std::string>()) << id;
      } else {
        EXPECT_FALSE(ChatTemplate::IsRaisedByTemplate(out.status())) << id;
      }
      ++*errors;
    }
  }
}

TEST(ChatTemplateFixturesTest, EveryCaseMatchesJinja2) {
  for (const std::string& name : testing::FixtureNames()) {
    const auto dir = testing::FixtureDir(name);
    auto special = Json::parse(testing::ReadText(dir / "special_tokens.json"));
    auto t = ChatTemplate::Parse(testing::ReadText(dir / "template.jinja"), special);
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    int rendered = 0, errors = 0;
    CheckCases(name, *t, &rendered, &errors);
    EXPECT_EQ(rendered + errors, 27) << name;
  }
}

TEST(ChatTemplateFixturesTest, FromTokenizerConfigReadsTemplateAndSpecialTokens) {
  for (const std::string& name : testing::FixtureNames()) {
    const auto dir = testing::FixtureDir(name);
    for (bool with_tools : {false, true}) {
      auto t = ChatTemplate::FromTokenizerConfig(dir, with_tools);
      ASSERT_TRUE(t.ok()) << name << ": " << t.status();
      EXPECT_EQ(t->source(), testing::ReadText(dir / "template.jinja")) << name;
      EXPECT_EQ(t->special_tokens().dump(), Json::parse(testing::ReadText(dir / "special_tokens.json")).dump()) << name;
      int rendered = 0, errors = 0;
      CheckCases(name, *t, &rendered, &errors);
    }
  }
}

// The real Qwen2.5 config (AddedToken objects in added_tokens_decoder, null bos/unk) gives
// transformers' special_tokens_map.
TEST(ChatTemplateFixturesTest, RealQwenTokenizerConfig) {
  const auto dir = std::filesystem::path(QEFF_SOURCE_DIR) / "tests/fixtures/tokenizers/qwen2.5";
  auto t = ChatTemplate::FromTokenizerConfig(dir, true);
  ASSERT_TRUE(t.ok()) << t.status();
  const auto want = Json::parse(testing::ReadText(testing::FixtureDir("qwen2.5") / "special_tokens.json"));
  EXPECT_EQ(t->special_tokens().dump(), want.dump());
  EXPECT_EQ(t->source(), testing::ReadText(testing::FixtureDir("qwen2.5") / "template.jinja"));
}

TEST(ChatTemplateFixturesTest, BaseModelConfigHasNoTemplate) {
  const auto dir = std::filesystem::path(QEFF_SOURCE_DIR) / "tests/fixtures/tokenizers/mistral";
  auto t = ChatTemplate::FromTokenizerConfig(dir, false);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound) << t.status();
  auto missing = ChatTemplate::FromTokenizerConfig("/nonexistent/dir", false);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

// The ways transformers finds a template and special tokens in a folder.
TEST(ChatTemplateFixturesTest, TemplateSourcesAndSpecialTokensOfAFolder) {
  const auto dir = std::filesystem::temp_directory_path() / "qeff_chat_template_sources";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& rel, const std::string& text) {
    std::filesystem::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  };
  auto render = [&](bool with_tools) {
    auto t = ChatTemplate::FromTokenizerConfig(dir, with_tools);
    if (!t.ok()) return "ERROR: " + std::string(t.status().message());
    return *t->Render(ChatTemplate::Inputs());
  };
  // The named list form: tool_use only with tools, default otherwise.
  write("tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "D{{ bos_token }}"},
      {"name": "tool_use", "template": "T{{ eos_token }}"}],
      "bos_token": {"__type": "AddedToken", "content": "<s>", "special": true}, "eos_token": "</s>",
      "pad_token": null, "unk_token": "", "additional_special_tokens": [{"content": "<x>"}, "<y>"],
      "extra_special_tokens": {"image_token": "<img>"}})");
  EXPECT_EQ(render(false), "D<s>");
  EXPECT_EQ(render(true), "T</s>");
  auto t = ChatTemplate::FromTokenizerConfig(dir, false);
  ASSERT_TRUE(t.ok());
  // Unset and empty tokens are left out, as in special_tokens_map.
  EXPECT_EQ(t->special_tokens().dump(),
            R"({"bos_token":"<s>","eos_token":"</s>","additional_special_tokens":["<x>","<y>"],"image_token":"<img>"})");
  // special_tokens_map.json overrides the config.
  write("special_tokens_map.json", R"({"bos_token": "<BOS>"})");
  EXPECT_EQ(render(false), "D<BOS>");
  // chat_template.jinja clobbers the config's templates; additional_chat_templates adds names.
  write("chat_template.jinja", "J{{ bos_token }}\n");
  EXPECT_EQ(render(false), "J<BOS>");
  EXPECT_EQ(render(true), "J<BOS>");
  write("additional_chat_templates/tool_use.jinja", "AT");
  EXPECT_EQ(render(true), "AT");
  // A list without "default" cannot serve a request without tools.
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(render(true), "T");
  EXPECT_NE(render(false).find("no default"), std::string::npos);
  write("tokenizer_config.json", "{not json");
  EXPECT_NE(render(false).find("ERROR"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qeff::chat
