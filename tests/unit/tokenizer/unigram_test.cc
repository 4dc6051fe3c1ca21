// Unigram model, Precompiled normalizer and pair post-processing on small hand-written
// tokenizer.json files, load errors for malformed ones, and the Precompiled normalizer against
// the reference over the whole BMP (unigram-synthetic/precompiled_cases.jsonl).
#include <random>
#include <string>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "common/tokenizer/precompiled_normalizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode.h"
#include "common/util/files.h"
#include "tests/unit/tokenizer/test_util.h"

namespace qeff::tokenizer {
namespace {

using Json = nlohmann::json;
using testing::FixtureDir;

Json Unigram(Json vocab, Json unk_id = 0, bool byte_fallback = false) {
  return Json{{"type", "Unigram"}, {"unk_id", unk_id}, {"vocab", vocab}, {"byte_fallback", byte_fallback}};
}

std::unique_ptr<Tokenizer> Make(const Json& j) {
  auto tok = Tokenizer::FromJson(j.dump());
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

Encoding Enc(const Tokenizer& t, const std::string& text) {
  auto enc = t.Encode(text, false);
  EXPECT_TRUE(enc.ok()) << enc.status();
  return enc.ok() ? *enc : Encoding{};
}

TEST(UnigramTest, ViterbiMaximizesTheSumOfScores) {
  Json vocab = Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0}), Json::array({"b", -1.0}),
                            Json::array({"ab", -1.5}), Json::array({"c", -1.0}), Json::array({"bc", -2.0})});
  auto tok = Make(Json{{"model", Unigram(vocab)}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Enc(*tok, "ab").ids, (std::vector<int32_t>{3}));  // -1.5 beats -2
  vocab[3][1] = -3.0;
  tok = Make(Json{{"model", Unigram(vocab)}});
  EXPECT_EQ(Enc(*tok, "ab").ids, (std::vector<int32_t>{1, 2}));
  // a+bc, ab+c and a+b+c all score -3 here: the path reaching "abc" first (a, then bc) stays.
  vocab[3][1] = -2.0;
  tok = Make(Json{{"model", Unigram(vocab)}});
  EXPECT_EQ(Enc(*tok, "abc").ids, (std::vector<int32_t>{1, 5}));
  EXPECT_EQ(tok->vocab_size(), 6u);
  EXPECT_EQ(tok->IdToToken(3), "ab");
}

TEST(UnigramTest, UnknownRunsAreFusedAndKeepTheirText) {
  Json vocab = Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0}), Json::array({"b", -2.0})});
  auto tok = Make(Json{{"model", Unigram(vocab)}});
  ASSERT_NE(tok, nullptr);
  Encoding e = Enc(*tok, "xy\xC3\xA9" "ab\xE2\x98\x83");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{0, 1, 2, 0}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"xy\xC3\xA9", "a", "b", "\xE2\x98\x83"}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0}));
}

TEST(UnigramTest, ByteFallbackNeedsEveryByte) {
  Json vocab = Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0}), Json::array({"<0x78>", -5.0}),
                            Json::array({"<0xC3>", -5.0}), Json::array({"<0xA9>", -5.0})});
  auto tok = Make(Json{{"model", Unigram(vocab, 0, true)}});
  ASSERT_NE(tok, nullptr);
  Encoding e = Enc(*tok, "xa\xC3\xA9");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{2, 1, 3, 4}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"<0x78>", "a", "<0xC3>", "<0xA9>"}));
  // 'y' has no byte piece: the whole fused run is unknown.
  e = Enc(*tok, "xy");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{0}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"xy"}));
}

TEST(UnigramTest, RepeatedPieceTakesTheLastId) {
  Json vocab = Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0}), Json::array({"a", -2.0})});
  auto tok = Make(Json{{"model", Unigram(vocab)}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenToId("a"), 2);
  EXPECT_EQ(Enc(*tok, "aa").ids, (std::vector<int32_t>{2, 2}));
}

TEST(UnigramTest, TypelessListVocabIsUnigram) {
  auto tok = Make(Json{{"model", Json{{"unk_id", 0}, {"vocab", Json::array({Json::array({"<unk>", 0}), Json::array({"a", -1})})}}}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Enc(*tok, "ab").ids, (std::vector<int32_t>{1, 0}));
}

TEST(UnigramTest, MissingUnkIsAnErrorOnlyWhenNeeded) {
  Json vocab = Json::array({Json::array({"a", -1.0})});
  auto tok = Make(Json{{"model", Unigram(vocab, nullptr)}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Enc(*tok, "aa").ids, (std::vector<int32_t>{0, 0}));
  auto enc = tok->Encode("ab", false);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(enc.status().message().find("unk_id"), std::string::npos) << enc.status();
  // An empty vocabulary without unk_id loads; any text then needs the unknown piece.
  tok = Make(Json{{"model", Unigram(Json::array(), nullptr)}});
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->Encode("a", false).ok());
  EXPECT_TRUE(tok->Encode("", false).ok());
}

TEST(UnigramTest, MalformedModelsAreNamedErrors) {
  Json ok_vocab = Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0})});
  const std::vector<Json> bad = {
      Json{{"type", "Unigram"}, {"vocab", Json::object()}},
      Json{{"type", "Unigram"}},
      Unigram(Json::array({Json::array({"a"})})),
      Unigram(Json::array({Json::array({"a", "-1"})})),
      Unigram(Json::array({Json::array({1, -1.0})})),
      Unigram(Json::array({"a"})),
      Unigram(ok_vocab, 2),
      Unigram(ok_vocab, -1),
      Unigram(ok_vocab, "0"),
      Unigram(Json::array(), 0),
      Json{{"type", "Unigram"}, {"unk_id", 0}, {"vocab", ok_vocab}, {"byte_fallback", "yes"}},
  };
  for (const Json& model : bad) {
    auto tok = Tokenizer::FromJson(Json{{"model", model}}.dump());
    ASSERT_FALSE(tok.ok()) << model.dump();
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(tok.status().message().find("model Unigram"), std::string::npos) << tok.status();
  }
}

// ---- Precompiled ----------------------------------------------------------------------------

std::string AlbertCharsmapBase64() {
  auto text = util::ReadFile(FixtureDir("unigram-synthetic") / "tokenizer.json", kMaxTokenizerJsonBytes);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? Json::parse(*text)["normalizer"]["precompiled_charsmap"].get<std::string>() : "";
}

TEST(PrecompiledTest, MatchesReferenceOverTheBmp) {
  std::string blob;
  ASSERT_TRUE(absl::Base64Unescape(AlbertCharsmapBase64(), &blob));
  auto map = PrecompiledCharsMap::FromBlob(blob);
  ASSERT_TRUE(map.ok()) << map.status();
  auto cases = testing::ReadCases(FixtureDir("unigram-synthetic") / "precompiled_cases.jsonl");
  ASSERT_EQ(cases.size(), 737u);
  size_t pass = 0, shown = 0;
  for (const auto& c : cases) {
    std::string text = c["text"];
    map->Normalize(&text);
    if (text == c["normalized"].get<std::string>()) {
      ++pass;
    } else if (shown++ < 5) {
      ADD_FAILURE() << c["name"] << "\n  want " << c["normalized"].dump() << "\n  got  " << Json(text).dump();
    }
  }
  std::cout << "[ charsmap ] " << pass << "/" << cases.size() << " cases match\n";
  EXPECT_EQ(pass, cases.size());
  // A few entries by hand: compatibility forms, and NUL ends a lookup.
  EXPECT_EQ(map->Transform("\xEF\xAC\x81"), std::optional<std::string_view>("fi"));  // U+FB01
  EXPECT_EQ(map->Transform(std::string_view("\0\xEF\xAC\x81", 4)), std::nullopt);
  EXPECT_EQ(map->Transform("a"), std::nullopt);
}

TEST(PrecompiledTest, MalformedCharsmapsAreErrors) {
  auto load = [](const std::string& blob) {
    return Tokenizer::FromJson(Json{{"model", Unigram(Json::array({Json::array({"<unk>", 0.0})}))},
                                    {"normalizer", Json{{"type", "Precompiled"}, {"precompiled_charsmap", absl::Base64Escape(blob)}}}}
                                   .dump());
  };
  const std::vector<std::string> bad = {
      "", std::string("\x04\x00\x00", 3),
      std::string("\x03\x00\x00\x00\x00\x00\x00", 7),           // size not a multiple of 4
      std::string("\x08\x00\x00\x00\x00\x00\x00\x00", 8),       // size past the end
      std::string("\x04\x00\x00\x00\x00\x00\x00\x00\xFF", 9),   // strings not UTF-8
  };
  for (const std::string& blob : bad) {
    auto tok = load(blob);
    ASSERT_FALSE(tok.ok()) << absl::CEscape(blob);
    EXPECT_NE(tok.status().message().find("normalizer Precompiled"), std::string::npos) << tok.status();
  }
  auto tok = Tokenizer::FromJson(Json{{"model", Unigram(Json::array({Json::array({"<unk>", 0.0})}))},
                                      {"normalizer", Json{{"type", "Precompiled"}, {"precompiled_charsmap", "@@not base64@@"}}}}
                                     .dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("base64"), std::string::npos) << tok.status();
  tok = Tokenizer::FromJson(Json{{"model", Unigram(Json::array({Json::array({"<unk>", 0.0})}))},
                                 {"normalizer", Json{{"type", "Precompiled"}, {"precompiled_charsmap", nullptr}}}}
                                .dump());
  ASSERT_FALSE(tok.ok());
}

// Random tries (valid header, garbage units and strings) never read out of bounds and keep the
// text valid UTF-8.
TEST(PrecompiledTest, GarbageTriesAreSafe) {
  std::mt19937 rng(20240611);
  const std::string text = "abc \xC3\xA9\xE2\x80\x8D\xF0\x9F\x98\x80 e\xCC\x81\r\n\xEF\xBD\xB6\xEF\xBE\x9E";
  for (int round = 0; round < 2000; ++round) {
    const uint32_t units = rng() % 64;
    std::string blob(4 + 4 * units, '\0');
    const uint32_t size = 4 * units;
    for (int b = 0; b < 4; ++b) blob[b] = static_cast<char>((size >> (8 * b)) & 0xFF);
    for (size_t i = 4; i < blob.size(); ++i) blob[i] = static_cast<char>(rng());
    // Normalized strings: ASCII with NULs, so the blob stays valid UTF-8.
    for (uint32_t i = 0, n = rng() % 32; i < n; ++i) blob.push_back(static_cast<char>(rng() % 3 == 0 ? 0 : 'a' + rng() % 26));
    auto map = PrecompiledCharsMap::FromBlob(blob);
    ASSERT_TRUE(map.ok()) << map.status();
    std::string s = text;
    map->Normalize(&s);
    EXPECT_TRUE(unicode::IsValidUtf8(s));
  }
}

// ---- Pairs -------------------------------------------------------------------------------------

Json Vocab4() {
  return Json::array({Json::array({"<unk>", 0.0}), Json::array({"a", -1.0}), Json::array({"b", -1.0}),
                      Json::array({"[CLS]", 0.0}), Json::array({"[SEP]", 0.0})});
}

TEST(PairTest, NoPostProcessorConcatenatesWithTypeIds) {
  auto tok = Make(Json{{"model", Unigram(Vocab4())}});
  ASSERT_NE(tok, nullptr);
  for (bool add : {true, false}) {
    auto e = tok->EncodePair("aa", "b", add);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->ids, (std::vector<int32_t>{1, 1, 2}));
    EXPECT_EQ(e->type_ids, (std::vector<int32_t>{0, 0, 1}));
  }
}

TEST(PairTest, TemplateStringFormAndDefaultPair) {
  Json specials{{"[CLS]", Json{{"id", "[CLS]"}, {"ids", {3}}, {"tokens", {"[CLS]"}}}},
                {"[SEP]", Json{{"id", "[SEP]"}, {"ids", {4}}, {"tokens", {"[SEP]"}}}}};
  Json pp{{"type", "TemplateProcessing"}, {"single", "[CLS]:0 $A:0 [SEP]:0"}, {"pair", "[CLS] $A [SEP] $B:1 [SEP]:1"},
          {"special_tokens", specials}};
  auto tok = Make(Json{{"model", Unigram(Vocab4())}, {"post_processor", pp}});
  ASSERT_NE(tok, nullptr);
  auto e = tok->EncodePair("a", "b", true);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ids, (std::vector<int32_t>{3, 1, 4, 2, 4}));
  EXPECT_EQ(e->type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  // "$2" is sequence A with type id 2; without "pair" the pair template is "$A:0 $B:1".
  pp["single"] = "[CLS] $2";
  pp.erase("pair");
  tok = Make(Json{{"model", Unigram(Vocab4())}, {"post_processor", pp}});
  ASSERT_NE(tok, nullptr);
  auto s = tok->Encode("a", true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->type_ids, (std::vector<int32_t>{0, 2}));
  e = tok->EncodePair("a", "b", true);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(e->type_ids, (std::vector<int32_t>{0, 1}));
  // A sequence may appear twice.
  pp["single"] = "$A [SEP] $A:1";
  tok = Make(Json{{"model", Unigram(Vocab4())}, {"post_processor", pp}});
  ASSERT_NE(tok, nullptr);
  s = tok->Encode("ab", true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ids, (std::vector<int32_t>{1, 2, 4, 1, 2}));
  EXPECT_EQ(s->type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(s->tokens, (std::vector<std::string>{"a", "b", "[SEP]", "a", "b"}));
}

TEST(PairTest, MalformedTemplatesAreNamedErrors) {
  Json specials{{"[CLS]", Json{{"id", "[CLS]"}, {"ids", {3}}, {"tokens", {"[CLS]"}}}}};
  auto seq = [](const char* id, Json type) { return Json{{"Sequence", Json{{"id", id}, {"type_id", type}}}}; };
  const std::vector<Json> bad = {
      Json{{"type", "TemplateProcessing"}, {"single", Json::array({seq("B", 0)})}, {"special_tokens", specials}},
      Json{{"type", "TemplateProcessing"}, {"single", Json::array({seq("A", 0)})}, {"pair", Json::array({seq("C", 0)})}},
      Json{{"type", "TemplateProcessing"}, {"single", Json::array({seq("A", -1)})}},
      Json{{"type", "TemplateProcessing"}, {"single", Json::array({seq("A", "0")})}},
      Json{{"type", "TemplateProcessing"}, {"single", "$A:x"}},
      Json{{"type", "TemplateProcessing"}, {"single", "$A:0:1"}},
      Json{{"type", "TemplateProcessing"}, {"single", "$C"}},
      Json{{"type", "TemplateProcessing"}, {"single", "$A"}, {"pair", "$A [SEP] $B"}, {"special_tokens", specials}},
      Json{{"type", "TemplateProcessing"}, {"single", "$A"}, {"pair", 7}},
      Json{{"type", "TemplateProcessing"}, {"single", Json::array({Json{{"Sequence", "A"}}})}},
      Json{{"type", "RobertaProcessing"}, {"sep", Json::array({"</s>"})}, {"cls", Json::array({"<s>", 0})}},
  };
  for (const Json& pp : bad) {
    auto tok = Tokenizer::FromJson(Json{{"model", Unigram(Vocab4())}, {"post_processor", pp}}.dump());
    ASSERT_FALSE(tok.ok()) << pp.dump();
    EXPECT_NE(tok.status().message().find("post_processor"), std::string::npos) << tok.status();
  }
}

}  // namespace
}  // namespace qeff::tokenizer
