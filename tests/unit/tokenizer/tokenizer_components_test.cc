// Component-level behaviour on small hand-written tokenizer.json files, and load errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

using Json = nlohmann::json;

// A tiny WordLevel/BPE vocabulary over lowercase letters.
Json TinyBpe() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* t : {"<unk>", "a", "b", "c", "ab", "abc", "\xE2\x96\x81", "\xE2\x96\x81" "a"}) vocab[t] = id++;
  return Json{{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({"a b", "ab c", Json::array({"\xE2\x96\x81", "a"})})},
              {"unk_token", "<unk>"}};
}

std::unique_ptr<Tokenizer> Make(const Json& j) {
  auto tok = Tokenizer::FromJson(j.dump());
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::vector<int32_t> Ids(const Tokenizer& t, const std::string& text, bool special = false) {
  auto enc = t.Encode(text, special);
  EXPECT_TRUE(enc.ok()) << enc.status();
  return enc.ok() ? enc->ids : std::vector<int32_t>{};
}

TEST(TokenizerErrorsTest, MalformedJson) {
  auto tok = Tokenizer::FromJson("{\"model\": ");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tok.status().message().find("not valid JSON"), std::string::npos) << tok.status();
}

TEST(TokenizerErrorsTest, UnknownComponentTypesAreNamed) {
  for (const char* field : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
    Json j{{"model", TinyBpe()}};
    j[field] = Json{{"type", "Frobnicate"}};
    auto tok = Tokenizer::FromJson(j.dump());
    ASSERT_FALSE(tok.ok()) << field;
    EXPECT_NE(tok.status().message().find(field), std::string::npos) << tok.status();
    EXPECT_NE(tok.status().message().find("Frobnicate"), std::string::npos) << tok.status();
  }
  Json j{{"model", Json{{"type", "Frobnicate"}, {"vocab", Json::array()}}}};
  auto tok = Tokenizer::FromJson(j.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("model"), std::string::npos) << tok.status();
  EXPECT_NE(tok.status().message().find("Frobnicate"), std::string::npos) << tok.status();
}

TEST(TokenizerErrorsTest, BadFieldsAreNamed) {
  Json bad_regex{{"model", TinyBpe()},
                 {"pre_tokenizer", Json{{"type", "Split"}, {"pattern", Json{{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}}};
  auto tok = Tokenizer::FromJson(bad_regex.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("pre_tokenizer Split"), std::string::npos) << tok.status();

  Json bad_merge = TinyBpe();
  bad_merge["merges"] = Json::array({"a zzz"});
  tok = Tokenizer::FromJson(Json{{"model", bad_merge}}.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("model BPE"), std::string::npos) << tok.status();

  Json bad_vocab = TinyBpe();
  bad_vocab["vocab"]["a"] = "one";
  tok = Tokenizer::FromJson(Json{{"model", bad_vocab}}.dump());
  ASSERT_FALSE(tok.ok());

  Json bad_id = TinyBpe();
  bad_id["vocab"]["a"] = -5;
  tok = Tokenizer::FromJson(Json{{"model", bad_id}}.dump());
  ASSERT_FALSE(tok.ok());

  tok = Tokenizer::FromJson(Json{{"model", TinyBpe()}, {"added_tokens", Json::array({Json{{"id", "x"}, {"content", "q"}}})}}.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("added_tokens"), std::string::npos) << tok.status();

  tok = Tokenizer::FromJson(Json{{"normalizer", nullptr}}.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("model"), std::string::npos) << tok.status();

  tok = Tokenizer::FromJson("[1, 2]");
  ASSERT_FALSE(tok.ok());
}

TEST(TokenizerErrorsTest, MissingDirectory) {
  auto tok = Tokenizer::FromDirectory("/nonexistent/qeff/tokenizer");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
}

TEST(BpeTest, MergesInBothFormatsAndUnk) {
  auto tok = Make(Json{{"model", TinyBpe()}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "abc"), (std::vector<int32_t>{5}));
  // "a b" outranks "▁ a": ▁ + ab; with no competing merge ▁a forms.
  EXPECT_EQ(Ids(*tok, "\xE2\x96\x81" "ab"), (std::vector<int32_t>{6, 4}));
  EXPECT_EQ(Ids(*tok, "\xE2\x96\x81" "ac"), (std::vector<int32_t>{7, 3}));
  EXPECT_EQ(Ids(*tok, "axxb"), (std::vector<int32_t>{1, 0, 0, 2}));
}

TEST(BpeTest, FuseUnk) {
  Json m = TinyBpe();
  m["fuse_unk"] = true;
  auto tok = Make(Json{{"model", m}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "axxb"), (std::vector<int32_t>{1, 0, 2}));
}

TEST(BpeTest, IgnoreMerges) {
  Json m = TinyBpe();
  m["vocab"]["ca"] = 8;
  m["ignore_merges"] = true;
  auto tok = Make(Json{{"model", m}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "ca"), (std::vector<int32_t>{8}));  // whole word in vocab, no merge needed
}

TEST(BpeTest, ByteFallback) {
  Json m = TinyBpe();
  m["byte_fallback"] = true;
  m["vocab"]["<0xC3>"] = 20;
  m["vocab"]["<0xA9>"] = 21;
  Json j{{"model", m}, {"decoder", Json{{"type", "Sequence"}, {"decoders", Json::array({Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}}})}}}};
  auto tok = Make(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "a\xC3\xA9"), (std::vector<int32_t>{1, 20, 21}));
  EXPECT_EQ(tok->Decode({1, 20, 21}, false), "a\xC3\xA9");
  // A lone lead byte decodes to one U+FFFD per byte.
  EXPECT_EQ(tok->Decode({1, 20, 1}, false), "a\xEF\xBF\xBD" "a");
}

TEST(WordPieceTest, TypelessModelIsWordPiece) {
  Json vocab{{"[UNK]", 0}, {"un", 1}, {"##aff", 2}, {"##able", 3}, {"[CLS]", 4}, {"[SEP]", 5}};
  Json j{{"model", Json{{"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"}, {"max_input_chars_per_word", 10}, {"vocab", vocab}}},
         {"pre_tokenizer", Json{{"type", "WhitespaceSplit"}}},
         {"post_processor", Json{{"type", "BertProcessing"}, {"sep", Json::array({"[SEP]", 5})}, {"cls", Json::array({"[CLS]", 4})}}},
         {"decoder", Json{{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}}};
  auto tok = Make(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "unaffable un unx unaffableunaffable", true), (std::vector<int32_t>{4, 1, 2, 3, 1, 0, 0, 5}));
  EXPECT_EQ(tok->Decode({1, 2, 3, 1}, false), "unaffable un");
}

TEST(PreTokenizerTest, MetaspaceFirstOnlyAtStart) {
  Json vocab{{"<unk>", 0}};
  Json j{{"model", Json{{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}},
         {"pre_tokenizer", Json{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", true}}},
         {"added_tokens", Json::array({Json{{"id", 1}, {"content", "<x>"}, {"special", true}, {"normalized", false}}})}};
  auto tok = Make(j);
  ASSERT_NE(tok, nullptr);
  auto enc = tok->Encode("hi there<x>yo", false);
  ASSERT_TRUE(enc.ok());
  // Only the segment at offset 0 gets the prefix; after <x> there is none.
  EXPECT_EQ(enc->ids.size(), 4u);
}

TEST(PreTokenizerTest, SplitBehaviors) {
  Json vocab{{"<unk>", 0}};
  auto count = [&](const char* behavior, bool invert, const std::string& text) {
    Json j{{"model", Json{{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}},
           {"pre_tokenizer", Json{{"type", "Split"}, {"pattern", Json{{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}}}};
    auto tok = Make(j);
    return tok ? Ids(*tok, text).size() : 0;
  };
  // "a-b--c": pieces per behavior, as the Rust library documents them.
  EXPECT_EQ(count("Removed", false, "a-b--c"), 3u);             // a b c
  EXPECT_EQ(count("Isolated", false, "a-b--c"), 6u);            // a - b - - c
  EXPECT_EQ(count("MergedWithPrevious", false, "a-b--c"), 4u);  // a- b- - c
  EXPECT_EQ(count("MergedWithNext", false, "a-b--c"), 4u);      // a -b - -c
  EXPECT_EQ(count("Contiguous", false, "a-b--c"), 5u);          // a - b -- c
  EXPECT_EQ(count("Removed", true, "a-b--c"), 3u);              // - - -
}

TEST(AddedTokensTest, LeftmostLongestAndFlags) {
  Json vocab{{"<unk>", 0}};
  Json added = Json::array({
      Json{{"id", 1}, {"content", "<a>"}, {"special", true}, {"normalized", false}},
      Json{{"id", 2}, {"content", "<a><b>"}, {"special", false}, {"normalized", false}},
      Json{{"id", 3}, {"content", "[M]"}, {"special", true}, {"normalized", false}, {"lstrip", true}, {"rstrip", true}},
      Json{{"id", 4}, {"content", "cat"}, {"special", false}, {"normalized", false}, {"single_word", true}},
  });
  Json j{{"model", Json{{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}},
         {"pre_tokenizer", Json{{"type", "WhitespaceSplit"}}},
         {"added_tokens", added}};
  auto tok = Make(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Ids(*tok, "<a><b><a>"), (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(Ids(*tok, "x  [M]  y"), (std::vector<int32_t>{0, 3, 0}));
  EXPECT_EQ(Ids(*tok, "cat concat cats"), (std::vector<int32_t>{4, 0, 0}));
  EXPECT_EQ(tok->Decode({2, 1, 3}, true), "<a><b>");
}

TEST(NormalizerTest, BertNormalizerAndLowercase) {
  Json vocab{{"[UNK]", 0}, {"cafe", 1}, {"i\xCC\x87", 2}, {"\xE4\xB8\xAD", 3}};
  Json j{{"model", Json{{"type", "WordPiece"}, {"vocab", vocab}}},
         {"normalizer", Json{{"type", "BertNormalizer"}, {"lowercase", true}, {"strip_accents", false}}},
         {"pre_tokenizer", Json{{"type", "BertPreTokenizer"}}}};
  auto tok = Make(j);
  ASSERT_NE(tok, nullptr);
  // U+0130 lowercases to "i" + U+0307 (full mapping); CJK gets its own word.
  EXPECT_EQ(Ids(*tok, "\xC4\xB0"), (std::vector<int32_t>{2}));
  EXPECT_EQ(Ids(*tok, "cafe\xE4\xB8\xAD" "cafe"), (std::vector<int32_t>{1, 3, 1}));
}

TEST(UnicodeTest, SanitizeMatchesRustLossy) {
  using unicode::SanitizeUtf8;
  EXPECT_EQ(SanitizeUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  // A truncated 3-byte sequence is one maximal subpart -> one U+FFFD.
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82" "a"), "\xEF\xBF\xBD" "a");
  // Surrogates and overlongs are invalid byte by byte.
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
}

TEST(UnicodeTest, InvalidUtf8InputIsEncodedAsReplacement) {
  auto tok = Tokenizer::FromDirectory(testing::FixtureDir("gpt2"));
  ASSERT_TRUE(tok.ok());
  auto bad = (*tok)->Encode("ok\xFF\xFEok", false);
  auto good = (*tok)->Encode("ok\xEF\xBF\xBD\xEF\xBF\xBDok", false);
  ASSERT_TRUE(bad.ok() && good.ok());
  EXPECT_EQ(bad->ids, good->ids);
}

TEST(DecodeTest, OutOfRangeIdsAreSkipped) {
  auto tok = Tokenizer::FromDirectory(testing::FixtureDir("gpt2"));
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->Decode({15496, -1, 1 << 30, 995}, false), "Hello world");
}

}  // namespace
}  // namespace qeff::tokenizer
