// Tokenizer for jinja2 template source with transformers' settings: trim_blocks, lstrip_blocks,
// keep_trailing_newline=False, `{%- -%}` / `{%+ +%}` whitespace control, comments and
// `{% raw %}`. It follows jinja2.lexer rule by rule (see the .cc), so data between tags comes
// out exactly as jinja2 would print it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qeff::chat {

enum class TokenType {
  kData,        // text outside tags, already whitespace-controlled
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // value = the decoded literal
  kInteger,
  kFloat,
  kOperator,    // value = the operator text, e.g. "==" or "["
  kEnd,
};

struct Token {
  TokenType type = TokenType::kEnd;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

// Throws TemplateError(kSyntax) with the position for malformed source (unclosed tags,
// comments, strings, unbalanced brackets, bad escapes).
std::vector<Token> Lex(std::string_view source);

// Human-readable name of a token for error messages ("end of print statement", "'x'").
std::string DescribeToken(const Token& t);

}  // namespace qeff::chat
