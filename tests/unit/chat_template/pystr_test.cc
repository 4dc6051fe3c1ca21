// Python str semantics the templates observe: repr(float), repr(str), str.isspace()-based
// strip/split, splitlines, case mapping and code-point lengths. Expected values follow
// CPython's documented behaviour.
#include "common/chat_template/pystr.h"

#include <gtest/gtest.h>

namespace qeff::chat::pystr {
namespace {

TEST(ChatTemplatePyStrTest, FloatReprIsShortestRoundTrip) {
  EXPECT_EQ(FloatRepr(1.0), "1.0");
  EXPECT_EQ(FloatRepr(0.1), "0.1");
  EXPECT_EQ(FloatRepr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FloatRepr(2.5), "2.5");
  EXPECT_EQ(FloatRepr(-0.0), "-0.0");
  EXPECT_EQ(FloatRepr(1e16), "1e+16");  // exponent form from 1e16 up
  EXPECT_EQ(FloatRepr(1e15), "1000000000000000.0");
  EXPECT_EQ(FloatRepr(0.0001), "0.0001");
  EXPECT_EQ(FloatRepr(0.00001), "1e-05");  // and below 1e-4
  EXPECT_EQ(FloatRepr(1.5e-7), "1.5e-07");
  EXPECT_EQ(FloatRepr(123456789.123), "123456789.123");
  EXPECT_EQ(FloatRepr(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(FloatRepr(1e300 * 1e300), "inf");
}

TEST(ChatTemplatePyStrTest, StrRepr) {
  EXPECT_EQ(Repr("abc"), "'abc'");
  EXPECT_EQ(Repr("it's"), "\"it's\"");            // double quotes when only ' occurs
  EXPECT_EQ(Repr("a'b\"c"), "'a\\'b\"c'");        // both: single quotes, ' escaped
  EXPECT_EQ(Repr("t\tn\nr\r\\"), "'t\\tn\\nr\\r\\\\'");
  EXPECT_EQ(Repr("\x01\x7f"), "'\\x01\\x7f'");
  EXPECT_EQ(Repr("\xc2\x85"), "'\\x85'");          // NEL is not printable
  EXPECT_EQ(Repr("\xc2\xa0"), "'\\xa0'");          // neither is NBSP (Zs)
  EXPECT_EQ(Repr("\xe2\x80\xa8"), "'\\u2028'");
  EXPECT_EQ(Repr("caf\xc3\xa9 \xe4\xbd\xa0"), "'caf\xc3\xa9 \xe4\xbd\xa0'");  // printable stays raw
}

TEST(ChatTemplatePyStrTest, StripUsesPythonWhitespace) {
  // NBSP, ideographic space, U+001F and NEL are whitespace; BOM is not.
  EXPECT_EQ(Strip("\xc2\xa0x\xe3\x80\x80\x1f", std::nullopt, true, true), "x");
  EXPECT_EQ(Strip("x\xc2\x85", std::nullopt, true, true), "x");
  EXPECT_EQ(Strip("\xef\xbb\xbfx", std::nullopt, true, true), "\xef\xbb\xbfx");
  EXPECT_EQ(Strip("xxhixx", std::string("x"), true, false), "hixx");
  EXPECT_EQ(Strip("xyhiyx", std::string("xy"), false, true), "xyhi");
}

TEST(ChatTemplatePyStrTest, Split) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Split("a,b,,c", std::string(","), -1), (V{"a", "b", "", "c"}));
  EXPECT_EQ(Split("  a b  c ", std::nullopt, -1), (V{"a", "b", "c"}));
  EXPECT_EQ(Split("  a b  c ", std::nullopt, 1), (V{"a", "b  c "}));
  EXPECT_EQ(Split("", std::nullopt, -1), V{});
  EXPECT_EQ(Split("", std::string(","), -1), V{""});
  EXPECT_EQ(RSplit("a,b,c", std::string(","), 1), (V{"a,b", "c"}));
  EXPECT_EQ(RSplit("  a b  c ", std::nullopt, 1), (V{"  a b", "c"}));
  EXPECT_EQ(Split("x</think>y</think>z", std::string("</think>"), -1), (V{"x", "y", "z"}));
  EXPECT_EQ(SplitLines("a\nb\r\nc\rd\xe2\x80\xa8" "e\n", false), (V{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(SplitLines("a\n\nb", true), (V{"a\n", "\n", "b"}));
}

TEST(ChatTemplatePyStrTest, CaseMappingAndLength) {
  EXPECT_EQ(Upper("stra\xc3\x9f" "e"), "STRASSE");  // full mapping of sharp s
  EXPECT_EQ(Lower("\xc3\x9c" "BER"), "\xc3\xbc" "ber");
  EXPECT_EQ(Title("hello wORLD 3d"), "Hello World 3D");
  EXPECT_EQ(Capitalize("hELLO World"), "Hello world");
  EXPECT_EQ(Length("h\xc3\xa9llo \xf0\x9f\x98\x80"), 7u);
  EXPECT_EQ(Replace("abc", "", "-", -1), "-a-b-c-");
  EXPECT_EQ(Replace("aaa", "a", "b", 2), "bba");
  EXPECT_EQ(Find("h\xc3\xa9llo", "l", false), 2);
  EXPECT_EQ(Find("hello", "l", true), 3);
}

TEST(ChatTemplatePyStrTest, InvalidUtf8NeverFails) {
  const std::string bad = "a\xff\xc3(\xed\xa0\x80";
  EXPECT_EQ(Decode(bad).size(), 7u);  // each bad byte is one U+FFFD
  EXPECT_FALSE(Upper(bad).empty());
}

}  // namespace
}  // namespace qeff::chat::pystr
