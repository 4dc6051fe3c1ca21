// Tokenizer::EncodePair (and the type ids of Encode) against tests/fixtures/tokenizers/
// pair_cases.jsonl: ids, type ids and tokens from the Rust library's encode(a, b), for
// TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence and no post-processor.
#include <map>
#include <memory>
#include <sstream>

#include <gtest/gtest.h>

#include "common/tokenizer/tokenizer.h"
#include "common/util/files.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

using testing::FixtureDir;

std::string Show(const std::vector<int32_t>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

// The fixture's tokenizer, with its post-processor replaced when the case names one.
const Tokenizer* Load(const nlohmann::json& c) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  const std::string name = c["tokenizer"];
  const bool override = c.contains("post_processor");
  const std::string key = override ? name + " " + c["post_processor"].dump() : name;
  auto& slot = cache[key];
  if (!slot) {
    auto dir = FixtureDir(name);
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok;
    if (!override) {
      tok = Tokenizer::FromDirectory(dir);
    } else {
      auto text = util::ReadFile(dir / "tokenizer.json", kMaxTokenizerJsonBytes);
      auto config = util::ReadFile(dir / "tokenizer_config.json", kMaxSideFileBytes);
      EXPECT_TRUE(text.ok() && config.ok());
      if (!text.ok() || !config.ok()) return nullptr;
      nlohmann::json j = nlohmann::json::parse(*text);
      j["post_processor"] = c["post_processor"];
      tok = Tokenizer::FromJson(j.dump(), *config);
    }
    EXPECT_TRUE(tok.ok()) << key << ": " << tok.status();
    if (!tok.ok()) return nullptr;
    slot = std::move(*tok);
  }
  return slot.get();
}

TEST(PairEncodingTest, AllCasesMatchReference) {
  auto cases = testing::ReadCases(FixtureDir("") / "pair_cases.jsonl");
  ASSERT_EQ(cases.size(), 252u);
  size_t pass = 0, shown = 0, pairs = 0;
  for (const auto& c : cases) {
    const Tokenizer* tok = Load(c);
    ASSERT_NE(tok, nullptr);
    const bool add = c["add_special_tokens"];
    const std::string a = c["a"];
    absl::StatusOr<Encoding> enc;
    if (c["b"].is_null()) {
      enc = tok->Encode(a, add);
    } else {
      ++pairs;
      enc = tok->EncodePair(a, c["b"].get<std::string>(), add);
    }
    ASSERT_TRUE(enc.ok()) << enc.status();
    auto ids = c["ids"].get<std::vector<int32_t>>();
    auto type_ids = c["type_ids"].get<std::vector<int32_t>>();
    auto tokens = c["tokens"].get<std::vector<std::string>>();
    if (enc->ids == ids && enc->type_ids == type_ids && enc->tokens == tokens) {
      ++pass;
    } else if (shown++ < 8) {
      ADD_FAILURE() << c["tokenizer"] << (c.contains("post_processor") ? " " + c["post_processor"].dump() : "")
                    << " case " << c["name"] << " add_special=" << add
                    << "\n  want ids:   " << Show(ids) << "\n  got ids:    " << Show(enc->ids)
                    << "\n  want types: " << Show(type_ids) << "\n  got types:  " << Show(enc->type_ids)
                    << "\n  tokens equal: " << (enc->tokens == tokens);
    }
  }
  std::cout << "[ pairs    ] " << pass << "/" << cases.size() << " cases match (" << pairs << " pairs)\n";
  EXPECT_EQ(pass, cases.size());
}

}  // namespace
}  // namespace qeff::tokenizer
