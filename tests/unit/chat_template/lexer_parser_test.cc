// Template syntax: whitespace control with transformers' trim_blocks + lstrip_blocks, comments,
// raw blocks, literals and escapes, and syntax errors reported with line and column. Expected
// outputs follow jinja2's documented whitespace rules.
#include <gtest/gtest.h>

#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::R;

TEST(ChatTemplateSyntaxTest, TrimBlocksRemovesFirstNewlineAfterBlockTags) {
  EXPECT_EQ(R("{% if true %}\nyes\n{% endif %}\nafter"), "yes\nafter");
  // Only one newline goes; print tags keep theirs.
  EXPECT_EQ(R("{% if true %}\n\nx{% endif %}"), "\nx");
  EXPECT_EQ(R("{{ 'a' }}\nb"), "a\nb");
  EXPECT_EQ(R("{# note #}\nx"), "x");
}

TEST(ChatTemplateSyntaxTest, LstripBlocksRemovesIndentationBeforeBlockTags) {
  EXPECT_EQ(R("  {% if true %}\n  indented\n  {% endif %}\nend"), "  indented\nend");
  // Not before a print tag, and not when text precedes the tag on its line.
  EXPECT_EQ(R("  {{ 'x' }}"), "  x");
  EXPECT_EQ(R("a  {% if true %}b{% endif %}"), "a  b");
  // {%+ keeps the indentation.
  EXPECT_EQ(R("  {%+ if true %}b{% endif %}"), "  b");
}

TEST(ChatTemplateSyntaxTest, MinusStripsAllWhitespaceOnThatSide) {
  EXPECT_EQ(R("a  \n  {%- if true -%}  \n  b  \n  {%- endif %}"), "ab");
  EXPECT_EQ(R("a\n{{- 'x' -}}\n\nb"), "axb");
  EXPECT_EQ(R("a {#- c -#} b"), "ab");
  // +%} disables trim_blocks for that tag.
  EXPECT_EQ(R("{% if true +%}\nx{% endif %}"), "\nx");
}

TEST(ChatTemplateSyntaxTest, OneTrailingNewlineOfTheSourceIsDropped) {
  EXPECT_EQ(R("x\n"), "x");
  EXPECT_EQ(R("x\n\n"), "x\n");
  EXPECT_EQ(R("a\r\nb\r\n"), "a\nb");  // newlines are normalized to \n first
}

TEST(ChatTemplateSyntaxTest, RawAndComments) {
  EXPECT_EQ(R("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(R("a{# {{ ignored }} #}b"), "ab");
  EXPECT_EQ(R("{{ '{{ not a tag }}' }}"), "{{ not a tag }}");
  EXPECT_EQ(R("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");  // }} inside brackets is not the end
}

TEST(ChatTemplateSyntaxTest, LiteralsAndEscapes) {
  EXPECT_EQ(R("{{ 'a\\nb' }}"), "a\nb");
  EXPECT_EQ(R("{{ \"it's\" ~ 'x\\'y' ~ '\\\\' }}"), "it'sx'y\\");
  EXPECT_EQ(R("{{ '\\u00e9\\x41\\101\\t|' }}"), "\xc3\xa9" "AA\t|");
  EXPECT_EQ(R("{{ 'keep\\q' }}"), "keep\\q");  // unknown escapes stay
  EXPECT_EQ(R("{{ 'a' 'b' \"c\" }}"), "abc");  // adjacent strings concatenate
  EXPECT_EQ(R("{{ 1_000 + 0x10 + 0o10 + 0b11 }}"), "1027");
  EXPECT_EQ(R("{{ 1e3 }} {{ 2.50 }} {{ true }} {{ True }} {{ none }} {{ None }}"), "1000.0 2.5 True True None None");
  EXPECT_EQ(R("{{ [1, 'a', none] }} {{ (1,) }} {{ () }} {{ {'k': [true]} }}"), "[1, 'a', None] (1,) () {'k': [True]}");
}

TEST(ChatTemplateSyntaxTest, SyntaxErrorsCarryLineAndColumn) {
  auto t = ChatTemplate::Parse("line one\n{% if x %}\n  {{ x + }}\n{% endif %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("line 3, column"), std::string::npos) << t.status();

  auto unclosed = ChatTemplate::Parse("{% for m in messages %}{{ m }}");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_NE(unclosed.status().message().find("'endfor' or 'else'"), std::string::npos) << unclosed.status();

  for (const char* bad : {"{% endif %}", "{{ 'unterminated }}", "{{ x | nosuchfilter }}", "{% if x is nosuchtest %}{% endif %}",
                          "{{ (1 }}", "{{ [1, 2 }}", "{% set %}", "{% break %}", "{# never closed #", "{% foo %}",
                          "{% macro m(a=1, b) %}{% endmacro %}", "{{ 1 if 2 is defined if 3 }}", "{% include 'x' %}",
                          "{{ }}", "{{ 'a' is is }}"}) {
    auto r = ChatTemplate::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("line 1"), std::string::npos) << bad << ": " << r.status();
    }
  }
}

TEST(ChatTemplateSyntaxTest, UnclosedCommentAtTheVeryEndIsIgnoredLikeJinja2) {
  EXPECT_EQ(R("a{#"), "a");
  EXPECT_NE(R("a{# x").find("ERROR"), std::string::npos);
}

TEST(ChatTemplateSyntaxTest, NestingIsBounded) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  auto t = ChatTemplate::Parse(deep);
  ASSERT_FALSE(t.ok());
  std::string deep_if;
  for (int i = 0; i < 2000; ++i) deep_if += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::Parse(deep_if).ok());
  std::string nots = "{{ " ;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_FALSE(ChatTemplate::Parse(nots + "x }}").ok());
  // Moderate nesting is fine.
  EXPECT_EQ(R("{{ " + std::string(30, '(') + "1" + std::string(30, ')') + " }}"), "1");
}

TEST(ChatTemplateSyntaxTest, InvalidUtf8TemplateIsRejected) {
  EXPECT_FALSE(ChatTemplate::Parse("{{ 'a' }}\xff").ok());
}

}  // namespace
}  // namespace qeff::chat
