// qeffctl chat-template: for every golden fixture the --jsonl output equals the reference
// (`rendered`, or the raise_exception message as `error`), through the library entry point and
// through the built binary invoked exactly as documented:
//   qeffctl chat-template --tokenizer DIR --jsonl FILE [--now "2025-01-15 14:30:00"]
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "clients/qeffctl/chat_template_command.h"
#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::Json;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Compares one output line per case with the fixture.
void ExpectMatchesCases(const std::string& name, const std::string& output) {
  const auto cases = testing::ReadCases(testing::FixtureDir(name) / "cases.jsonl");
  const auto lines = Lines(output);
  ASSERT_EQ(lines.size(), cases.size()) << name;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json got = Json::parse(lines[i]);
    const Json& want = cases[i];
    const std::string id = name + "/" + want["name"].get<std::string>();
    ASSERT_EQ(got.size(), 1u) << id << ": " << lines[i];
    if (want.contains("rendered")) {
      ASSERT_TRUE(got.contains("rendered")) << id << ": " << lines[i];
      EXPECT_EQ(got["rendered"].get<std::string>(), want["rendered"].get<std::string>()) << id;
    } else {
      ASSERT_TRUE(got.contains("error")) << id << ": " << lines[i];
      if (want["error_type"] == "TemplateError") {
        EXPECT_EQ(got["error"], want["error"]) << id;
      }
    }
  }
}

TEST(ChatTemplateCommandTest, JsonlOutputMatchesFixtures) {
  for (const std::string& name : testing::FixtureNames()) {
    const auto dir = testing::FixtureDir(name);
    std::ostringstream out, err;
    ASSERT_EQ(RunChatTemplateCommand(dir.string(), (dir / "cases.jsonl").string(), testing::kFrozenNow, out, err), 0)
        << err.str();
    ExpectMatchesCases(name, out.str());
  }
}

TEST(ChatTemplateCommandTest, FrozenClockKwargsAndLineSafeOutput) {
  const auto dir = std::filesystem::temp_directory_path() / "qeff_chat_template_cmd";
  std::filesystem::create_directories(dir);
  {
    std::ofstream cfg(dir / "tokenizer_config.json");
    cfg << R"({"chat_template": [{"name": "default", "template": "{{ bos_token }}{{ strftime_now('%d %b %Y') }}|{{ messages[0].content }}"},
                                 {"name": "tool_use", "template": "tools:{{ tools | length }}"}],
              "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "unk_token": null})";
    std::ofstream in(dir / "in.jsonl");
    in << R"({"messages": [{"role": "user", "content": "a\u2028b\u0085"}]})" << "\n\n"
       << R"({"messages": [], "tools": [{"type": "function"}], "add_generation_prompt": true})" << "\n"
       << R"({"messages": [{"content": "x"}], "kwargs": {"bos_token": "<BOS>"}})" << "\n";
  }
  std::ostringstream out, err;
  ASSERT_EQ(RunChatTemplateCommand(dir.string(), (dir / "in.jsonl").string(), "2025-01-15 14:30:00", out, err), 0)
      << err.str();
  // U+2028 and NEL are escaped so that every record is one line for any line splitter.
  EXPECT_EQ(out.str(),
            "{\"rendered\":\"<s>15 Jan 2025|a\\u2028b\\u0085\"}\n{\"rendered\":\"tools:1\"}\n"
            "{\"rendered\":\"<BOS>15 Jan 2025|x\"}\n");

  std::ostringstream out2, err2;
  EXPECT_EQ(RunChatTemplateCommand(dir.string(), (dir / "in.jsonl").string(), "15/01/2025", out2, err2), 1);
  EXPECT_NE(err2.str().find("--now"), std::string::npos);

  {
    std::ofstream bad(dir / "bad.jsonl");
    bad << R"({"messages": []})" << "\n" << R"({"messages": "not a list"})" << "\n";
  }
  std::ostringstream out3, err3;
  EXPECT_EQ(RunChatTemplateCommand(dir.string(), (dir / "bad.jsonl").string(), "", out3, err3), 1);
  EXPECT_NE(err3.str().find(":2:"), std::string::npos) << err3.str();
  EXPECT_EQ(Lines(out3.str()).size(), 1u);

  std::ostringstream out4, err4;
  EXPECT_EQ(RunChatTemplateCommand("/nonexistent", (dir / "in.jsonl").string(), "", out4, err4), 1);
  EXPECT_NE(err4.str().find("NOT_FOUND"), std::string::npos) << err4.str();
  std::filesystem::remove_all(dir);
}

// The real executable, in the documented command form.
TEST(ChatTemplateCommandTest, QeffctlBinary) {
  const std::filesystem::path qeffctl = std::filesystem::path(QEFF_BINARY_DIR) / "clients/qeffctl/qeffctl";
  if (!std::filesystem::exists(qeffctl)) GTEST_SKIP() << "qeffctl is not built in " << QEFF_BINARY_DIR;
  for (const std::string& name : testing::FixtureNames()) {
    const auto dir = testing::FixtureDir(name);
    const std::string cmd = "'" + qeffctl.string() + "' chat-template --tokenizer '" + dir.string() + "' --jsonl '" +
                            (dir / "cases.jsonl").string() + "' --now \"2025-01-15 14:30:00\"";
    FILE* pipe = popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr) << cmd;
    std::string output;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
    ASSERT_EQ(pclose(pipe), 0) << cmd;
    ExpectMatchesCases(name, output);
  }
}

}  // namespace
}  // namespace qeff::chat
