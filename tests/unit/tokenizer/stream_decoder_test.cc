// StreamDecoder: the concatenation of Push + Flush equals Decode of all ids, for every fixture
// case, and no chunk ends inside a UTF-8 character.
#include <gtest/gtest.h>

#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

using testing::FixtureDir;

class StreamTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamTest, ConcatenationEqualsDecode) {
  auto tok = Tokenizer::FromDirectory(FixtureDir(GetParam()));
  ASSERT_TRUE(tok.ok()) << tok.status();
  for (const auto& c : testing::ReadCases(FixtureDir(GetParam()) / "cases.jsonl")) {
    auto ids = c["ids"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      StreamDecoder stream(**tok, skip);
      std::string all;
      for (int32_t id : ids) {
        std::string chunk = stream.Push(id);
        EXPECT_TRUE(unicode::IsValidUtf8(chunk));
        all += chunk;
      }
      all += stream.Flush();
      EXPECT_EQ(all, (*tok)->Decode(ids, skip)) << GetParam() << " " << c["name"] << " skip=" << skip;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, StreamTest, ::testing::ValuesIn(testing::FixtureNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// A multi-byte character split over byte-fallback tokens is emitted only once complete.
TEST(StreamDecoderTest, HoldsBackPartialByteFallback) {
  auto tok = Tokenizer::FromDirectory(FixtureDir("mistral"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // U+1F600 is not in the Mistral vocabulary: it encodes as four <0xNN> tokens.
  auto enc = (*tok)->Encode("a\xF0\x9F\x98\x80", false);
  ASSERT_TRUE(enc.ok());
  StreamDecoder stream(**tok, false);
  std::vector<std::string> chunks;
  for (int32_t id : enc->ids) chunks.push_back(stream.Push(id));
  chunks.push_back(stream.Flush());
  std::string all;
  for (const auto& c : chunks) {
    EXPECT_TRUE(c.find("\xEF\xBF\xBD") == std::string::npos) << "partial character emitted";
    all += c;
  }
  EXPECT_EQ(all, "a\xF0\x9F\x98\x80");
}

TEST(StreamDecoderTest, ByteLevelSplitCharacter) {
  auto tok = Tokenizer::FromDirectory(FixtureDir("gpt2"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto enc = (*tok)->Encode("\xE2\x9C\x85 ok \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB", false);
  ASSERT_TRUE(enc.ok());
  StreamDecoder stream(**tok, false);
  std::string all;
  for (int32_t id : enc->ids) {
    std::string c = stream.Push(id);
    EXPECT_TRUE(unicode::IsValidUtf8(c));
    EXPECT_EQ(c.find("\xEF\xBF\xBD"), std::string::npos);
    all += c;
  }
  all += stream.Flush();
  EXPECT_EQ(all, (*tok)->Decode(enc->ids, false));
}

}  // namespace
}  // namespace qeff::tokenizer
