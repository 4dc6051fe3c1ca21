// Every case of tests/fixtures/tokenizers/*/cases.jsonl (reference: HF tokenizers 0.23.2) must
// match exactly: ids, tokens, decoded and decoded_skip_special. BPE (byte-level and
// SentencePiece-style), WordPiece and Unigram (albert, unigram-synthetic) tokenizers.
#include <map>
#include <memory>
#include <sstream>

#include <gtest/gtest.h>

#include "common/tokenizer/tokenizer.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

using testing::FixtureDir;
using testing::ReadCases;

std::string Show(const std::vector<int32_t>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

const Tokenizer& Load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    auto tok = Tokenizer::FromDirectory(FixtureDir(name));
    EXPECT_TRUE(tok.ok()) << tok.status();
    if (tok.ok()) slot = std::move(*tok);
  }
  return *slot;
}

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, AllCasesMatchReference) {
  const std::string name = GetParam();
  auto cases = ReadCases(FixtureDir(name) / "cases.jsonl");
  // 231 lines each; llama3 and qwen3 add 20 lines of their own, albert (Unigram) takes llama3's
  // 251 and adds 94 (see the fixtures README).
  const size_t expected = name == "albert" || name == "unigram-synthetic" ? 345u : name == "llama3" || name == "qwen3" ? 251u : 231u;
  ASSERT_EQ(cases.size(), expected);
  const Tokenizer& tok = Load(name);
  size_t pass = 0, shown = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const bool add_special = c["add_special_tokens"];
    auto enc = tok.Encode(text, add_special);
    ASSERT_TRUE(enc.ok()) << enc.status();
    auto ids = c["ids"].get<std::vector<int32_t>>();
    auto tokens = c["tokens"].get<std::vector<std::string>>();
    std::string decoded = tok.Decode(enc->ids, false);
    std::string decoded_skip = tok.Decode(enc->ids, true);
    bool ok = enc->ids == ids && enc->tokens == tokens && decoded == c["decoded"].get<std::string>() &&
              decoded_skip == c["decoded_skip_special"].get<std::string>();
    if (ok) {
      ++pass;
    } else if (shown++ < 8) {
      ADD_FAILURE() << name << " case " << c["name"] << " add_special=" << add_special
                    << "\n  text:     " << nlohmann::json(text).dump()
                    << "\n  want ids: " << Show(ids) << "\n  got ids:  " << Show(enc->ids)
                    << "\n  tokens equal: " << (enc->tokens == tokens)
                    << "\n  want dec: " << c["decoded"].dump() << "\n  got dec:  " << nlohmann::json(decoded).dump()
                    << "\n  want skp: " << c["decoded_skip_special"].dump()
                    << "\n  got skp:  " << nlohmann::json(decoded_skip).dump();
    }
  }
  std::cout << "[ fixture  ] " << name << ": " << pass << "/" << cases.size() << " cases match\n";
  EXPECT_EQ(pass, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, FixtureTest, ::testing::ValuesIn(testing::FixtureNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// The older GPT-2 format (vocab.json + merges.txt), against the slow transformers tokenizer.
TEST(LegacyGpt2Test, VocabAndMergesMatchReference) {
  auto dir = FixtureDir("gpt2-legacy");
  auto tok = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto cases = ReadCases(dir / "cases.jsonl");
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string text = c["text"];
    auto enc = (*tok)->Encode(text, true);
    ASSERT_TRUE(enc.ok()) << enc.status();
    EXPECT_EQ(enc->ids, c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(enc->tokens, c["tokens"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ((*tok)->Decode(enc->ids, false), c["decoded"].get<std::string>()) << text;
  }
  EXPECT_EQ((*tok)->eos_token_id(), 50256);
  EXPECT_EQ((*tok)->vocab_size(), 50257u);
}

// Both GPT-2 forms give the same result on every gpt2 fixture text.
TEST(LegacyGpt2Test, AgreesWithTokenizerJson) {
  auto legacy = Tokenizer::FromDirectory(FixtureDir("gpt2-legacy"));
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  const Tokenizer& modern = Load("gpt2");
  for (const auto& c : ReadCases(FixtureDir("gpt2") / "cases.jsonl")) {
    const std::string text = c["text"];
    auto a = (*legacy)->Encode(text, false);
    auto b = modern.Encode(text, false);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->ids, b->ids) << c["name"];
  }
}

TEST(FixtureMetadataTest, SpecialIdsAndVocabSizes) {
  EXPECT_EQ(Load("gpt2").eos_token_id(), 50256);
  EXPECT_EQ(Load("gpt2").vocab_size(), 50257u);
  EXPECT_EQ(Load("bert-base-uncased").vocab_size(), 30522u);
  EXPECT_EQ(Load("mistral").eos_token_id(), 2);
  EXPECT_EQ(Load("mistral").bos_token_id(), 1);
  EXPECT_EQ(Load("mistral").vocab_size(), 32000u);
  EXPECT_EQ(Load("gemma2").eos_token_id(), 1);
  EXPECT_EQ(Load("gemma2").vocab_size(), 256000u);
  EXPECT_TRUE(Load("qwen2.5").eos_token_id().has_value());
  EXPECT_EQ(Load("qwen2.5").vocab_size(), 151665u);
  EXPECT_EQ(Load("llama3").eos_token_id(), 128009);  // <|eot_id|>
  EXPECT_EQ(Load("llama3").bos_token_id(), 128000);
  EXPECT_EQ(Load("llama3").vocab_size(), 128256u);
  EXPECT_EQ(Load("qwen3").eos_token_id(), Load("qwen3").TokenToId("<|im_end|>"));
  EXPECT_EQ(Load("qwen3").vocab_size(), 151669u);
  EXPECT_EQ(Load("albert").vocab_size(), 30000u);
  EXPECT_EQ(Load("albert").eos_token_id(), 3);  // [SEP]
  EXPECT_EQ(Load("albert").bos_token_id(), 2);  // [CLS]
  EXPECT_EQ(Load("albert").pad_token_id(), 0);
  EXPECT_EQ(Load("unigram-synthetic").vocab_size(), 30256u);
  EXPECT_EQ(Load("unigram-synthetic").eos_token_id(), 2);  // </s>
}

}  // namespace
}  // namespace qeff::tokenizer
