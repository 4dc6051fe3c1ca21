// qeffctl tokenize: the --jsonl output of every fixture equals the reference fields of its
// cases.jsonl, and errors are reported with the line number.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "clients/qeffctl/tokenize_command.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

TEST(TokenizeCommandTest, JsonlOutputMatchesFixtures) {
  for (const std::string& name : testing::FixtureNames()) {
    auto dir = testing::FixtureDir(name);
    std::ostringstream out, err;
    ASSERT_EQ(RunTokenizeCommand(dir.string(), (dir / "cases.jsonl").string(), "", out, err), 0) << err.str();
    auto cases = testing::ReadCases(dir / "cases.jsonl");
    std::istringstream lines(out.str());
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
      ASSERT_LT(i, cases.size());
      nlohmann::ordered_json got = nlohmann::ordered_json::parse(line);
      std::vector<std::string> keys;
      for (auto it = got.begin(); it != got.end(); ++it) keys.push_back(it.key());
      EXPECT_EQ(keys, (std::vector<std::string>{"ids", "tokens", "decoded", "decoded_skip_special"}));
      const auto& want = cases[i++];
      EXPECT_EQ(got["ids"].dump(), want["ids"].dump()) << name << " " << want["name"];
      EXPECT_EQ(got["tokens"].dump(), want["tokens"].dump()) << name << " " << want["name"];
      EXPECT_EQ(got["decoded"].dump(), want["decoded"].dump()) << name << " " << want["name"];
      EXPECT_EQ(got["decoded_skip_special"].dump(), want["decoded_skip_special"].dump()) << name << " " << want["name"];
    }
    EXPECT_EQ(i, cases.size());
  }
}

TEST(TokenizeCommandTest, TextUsesSpecialTokens) {
  std::ostringstream out, err;
  ASSERT_EQ(RunTokenizeCommand(testing::FixtureDir("bert-base-uncased").string(), "", "Hello world", out, err), 0);
  EXPECT_EQ(out.str(),
            "{\"ids\":[101,7592,2088,102],\"tokens\":[\"[CLS]\",\"hello\",\"world\",\"[SEP]\"],"
            "\"decoded\":\"[CLS] hello world [SEP]\",\"decoded_skip_special\":\"hello world\"}\n");
}

TEST(TokenizeCommandTest, Errors) {
  std::ostringstream out, err;
  EXPECT_EQ(RunTokenizeCommand("/nonexistent", "", "x", out, err), 1);
  EXPECT_NE(err.str().find("no tokenizer.json"), std::string::npos) << err.str();

  auto bad = std::filesystem::temp_directory_path() / "qeff_tokenize_bad.jsonl";
  {
    std::ofstream f(bad);
    f << "{\"text\": \"ok\"}\n\nnot json\n";
  }
  std::ostringstream out2, err2;
  EXPECT_EQ(RunTokenizeCommand(testing::FixtureDir("gpt2").string(), bad.string(), "", out2, err2), 1);
  EXPECT_NE(err2.str().find(":3:"), std::string::npos) << err2.str();
  const std::string printed = out2.str();
  EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 1);
  std::filesystem::remove(bad);
}

}  // namespace
}  // namespace qeff::tokenizer
