#include "common/chat_template/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "common/chat_template/error.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

// jinja2 normalizes \r\n and \r to \n everywhere and, without keep_trailing_newline, drops one
// final newline before lexing.
std::string NormalizeNewlines(std::string_view raw) {
  std::string s;
  s.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      s.push_back('\n');
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      s.push_back(raw[i]);
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> Run() {
    const size_t n = src_.size();
    while (pos_ < n) {
      size_t p = FindTagStart(pos_);
      if (p == std::string::npos) {
        Emit(TokenType::kData, src_.substr(pos_), pos_);
        pos_ = n;
        break;
      }
      LexTag(p);
    }
    Token end;
    end.type = TokenType::kEnd;
    Locate(n, &end);
    tokens_.push_back(std::move(end));
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size()) {
        const char c = src_[i + 1];
        if (c == '{' || c == '%' || c == '#') return i;
      }
    }
    return std::string::npos;
  }

  // Python's `\s*` (Unicode whitespace) from `pos`.
  size_t SkipSpace(size_t pos) const {
    while (pos < src_.size()) {
      size_t len = 1;
      char32_t c = static_cast<unsigned char>(src_[pos]);
      if (c >= 0x80) {
        std::u32string one = pystr::Decode(std::string_view(src_).substr(pos, std::min<size_t>(4, src_.size() - pos)));
        if (one.empty()) break;
        c = one[0];
        std::string enc;
        pystr::AppendUtf8(enc, c);
        len = enc.size();
      }
      if (!pystr::IsSpace(c)) break;
      pos += len;
    }
    return pos;
  }

  bool At(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  // jinja2's OptionalLStrip: `-` strips all whitespace before the tag; otherwise lstrip_blocks
  // removes whitespace (Python's \s, so NBSP too) between the start of the line and a block or
  // comment tag.
  std::string StripText(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return pystr::Strip(text, std::nullopt, false, true);
    if (sign != '+' && !is_variable) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
        const std::u32string tail = pystr::Decode(std::string_view(text).substr(l_pos));
        bool all_space = true;
        for (char32_t c : tail) all_space = all_space && pystr::IsSpace(c);
        if (all_space) text.erase(l_pos);
      }
    }
    return text;
  }

  void LexTag(size_t p) {
    const char kind = src_[p + 1];
    size_t q = p + 2;
    char sign = 0;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
    std::string text = src_.substr(pos_, p - pos_);
    const size_t text_pos = pos_;

    size_t raw_body = 0;
    const bool is_raw = kind == '%' && MatchRawBegin(q, &raw_body);
    text = StripText(std::move(text), sign, kind == '{');
    if (!text.empty()) Emit(TokenType::kData, std::move(text), text_pos);

    if (is_raw) {
      line_starting_ = src_[raw_body - 1] == '\n';
      LexRawBody(p, raw_body);
    } else if (kind == '#') {
      LexComment(p, q);
    } else {
      Emit(kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, kind == '{' ? "{{" : "{%", p);
      LexInside(q, kind == '{');
    }
  }

  // `{%(-|+|)\s*raw\s*(-%}\s*|%})`; on success *body is where the raw text starts.
  bool MatchRawBegin(size_t q, size_t* body) const {
    size_t r = SkipSpace(q);
    if (!At(r, "raw")) return false;
    r = SkipSpace(r + 3);
    if (At(r, "-%}")) {
      *body = SkipSpace(r + 3);
      return true;
    }
    if (At(r, "%}")) {
      *body = r + 2;  // trim_blocks does not apply to the raw opener in jinja2
      return true;
    }
    return false;
  }

  void LexRawBody(size_t open, size_t body) {
    for (size_t e = src_.find("{%", body); e != std::string::npos; e = src_.find("{%", e + 1)) {
      size_t r = e + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      r = SkipSpace(r);
      if (!At(r, "endraw")) continue;
      r = SkipSpace(r + 6);
      size_t end;
      if (!MatchBlockEnd(r, &end)) continue;
      std::string text = StripText(src_.substr(body, e - body), sign, false);
      if (!text.empty()) Emit(TokenType::kData, std::move(text), body);
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    if (body >= src_.size()) {  // as for comments: nothing after the opener is not an error
      pos_ = src_.size();
      return;
    }
    Fail("Missing end of raw directive", open);
  }

  void LexComment(size_t open, size_t content) {
    const size_t e = src_.find("#}", content);
    if (e == std::string::npos) {
      // jinja2 only notices an unclosed comment when some character follows the opener.
      if (content >= src_.size()) {
        pos_ = src_.size();
        return;
      }
      Fail("Missing end of comment tag", open);
    }
    size_t end = e + 2;
    const char before = e > content ? src_[e - 1] : 0;
    if (before == '-') {
      end = SkipSpace(end);
    } else if (before != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;  // trim_blocks
    }
    pos_ = end;
    line_starting_ = src_[end - 1] == '\n';
  }

  // Block end: `+%}` | `-%}\s*` | `%}\n?` (trim_blocks).
  bool MatchBlockEnd(size_t r, size_t* end) const {
    if (At(r, "+%}")) {
      *end = r + 3;
    } else if (At(r, "-%}")) {
      *end = SkipSpace(r + 3);
    } else if (At(r, "%}")) {
      *end = r + 2;
      if (*end < src_.size() && src_[*end] == '\n') ++*end;
    } else {
      return false;
    }
    return true;
  }

  bool MatchVarEnd(size_t r, size_t* end) const {
    if (At(r, "-}}")) {
      *end = SkipSpace(r + 3);
    } else if (At(r, "}}")) {
      *end = r + 2;
    } else {
      return false;
    }
    return true;
  }

  void LexInside(size_t pos, bool variable) {
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (pos >= n) Fail(variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'", pos);
      size_t end;
      if (balance.empty() && (variable ? MatchVarEnd(pos, &end) : MatchBlockEnd(pos, &end))) {
        Emit(variable ? TokenType::kVarEnd : TokenType::kBlockEnd, variable ? "}}" : "%}", pos);
        pos_ = end;
        line_starting_ = src_[end - 1] == '\n';
        return;
      }
      const size_t ws = SkipSpace(pos);
      if (ws != pos) {
        pos = ws;
        continue;
      }
      const char c = src_[pos];
      if (IsDigit(c)) {
        pos = LexNumber(pos);
      } else if (IsNameStart(c)) {
        size_t e = pos;
        while (e < n && IsNameChar(src_[e])) ++e;
        Emit(TokenType::kName, src_.substr(pos, e - pos), pos);
        pos = e;
      } else if (c == '\'' || c == '"') {
        pos = LexString(pos);
      } else {
        pos = LexOperator(pos, &balance);
      }
    }
  }

  // Digits with optional single underscores between them ((\d+_)*\d+).
  size_t ScanDigits(size_t pos) const {
    size_t e = pos;
    while (e < src_.size() && IsDigit(src_[e])) {
      ++e;
      if (e + 1 < src_.size() && src_[e] == '_' && IsDigit(src_[e + 1])) ++e;
    }
    return e;
  }

  size_t LexNumber(size_t pos) {
    const size_t n = src_.size();
    // float_re first: digits ((.digits)? e[+-]digits | .digits), not preceded by '.'.
    if (pos == 0 || src_[pos - 1] != '.') {
      size_t e = ScanDigits(pos);
      size_t frac_end = e;
      bool has_frac = false;
      if (e + 1 < n && src_[e] == '.' && IsDigit(src_[e + 1])) {
        frac_end = ScanDigits(e + 1);
        has_frac = true;
      }
      size_t exp_end = 0;
      if (frac_end < n && (src_[frac_end] == 'e' || src_[frac_end] == 'E')) {
        size_t x = frac_end + 1;
        if (x < n && (src_[x] == '+' || src_[x] == '-')) ++x;
        if (x < n && IsDigit(src_[x])) exp_end = ScanDigits(x);
      }
      const size_t end = exp_end ? exp_end : (has_frac ? frac_end : 0);
      if (end) {
        std::string text;
        for (size_t i = pos; i < end; ++i) {
          if (src_[i] != '_') text.push_back(src_[i]);
        }
        Token t = Make(TokenType::kFloat, text, pos);
        t.float_value = std::strtod(text.c_str(), nullptr);
        tokens_.push_back(std::move(t));
        return end;
      }
    }
    // integer_re: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*.
    int base = 10;
    size_t start = pos, e = pos;
    const char p1 = pos + 1 < n ? static_cast<char>(src_[pos + 1] | 0x20) : 0;
    auto scan_base = [&](int b) {
      size_t x = pos + 2;
      size_t last = 0;
      while (x < n) {
        size_t y = x;
        if (src_[y] == '_') ++y;
        if (y < n && HexVal(src_[y]) >= 0 && HexVal(src_[y]) < b) {
          x = y + 1;
          last = x;
        } else {
          break;
        }
      }
      return last;
    };
    if (src_[pos] == '0' && (p1 == 'b' || p1 == 'o' || p1 == 'x')) {
      base = p1 == 'b' ? 2 : p1 == 'o' ? 8 : 16;
      size_t last = scan_base(base);
      if (last) {
        start = pos + 2;
        e = last;
      } else {
        base = 10;
      }
    }
    if (base == 10) {
      e = pos + 1;
      const char digit_ok = src_[pos] == '0' ? '0' : 0;
      while (e < n) {
        size_t y = e;
        if (src_[y] == '_') ++y;
        if (y < n && IsDigit(src_[y]) && (digit_ok == 0 || src_[y] == '0')) {
          e = y + 1;
        } else {
          break;
        }
      }
    }
    std::string digits;
    for (size_t i = start; i < e; ++i) {
      if (src_[i] != '_') digits.push_back(src_[i]);
    }
    errno = 0;
    const long long v = std::strtoll(digits.c_str(), nullptr, base);
    if (errno == ERANGE) Fail("integer literal too large", pos);
    Token t = Make(TokenType::kInteger, src_.substr(pos, e - pos), pos);
    t.int_value = v;
    tokens_.push_back(std::move(t));
    return e;
  }

  size_t LexString(size_t pos) {
    const char quote = src_[pos];
    size_t e = pos + 1;
    while (e < src_.size() && src_[e] != quote) {
      if (src_[e] == '\\') ++e;
      ++e;
    }
    if (e >= src_.size()) Fail(std::string("unexpected char '") + quote + "'", pos);
    Token t = Make(TokenType::kString, DecodeEscapes(pos + 1, e), pos);
    tokens_.push_back(std::move(t));
    return e + 1;
  }

  // Python's "unicode-escape" decoding, which jinja2 applies to string literals.
  std::string DecodeEscapes(size_t b, size_t e) const {
    std::string out;
    size_t i = b;
    auto hex = [&](size_t at, int count) -> int64_t {
      if (at + count > e) return -1;
      int64_t v = 0;
      for (int k = 0; k < count; ++k) {
        const int h = HexVal(src_[at + k]);
        if (h < 0) return -1;
        v = v * 16 + h;
      }
      return v;
    };
    while (i < e) {
      const char c = src_[i];
      if (c != '\\') {
        out.push_back(c);
        ++i;
        continue;
      }
      const char d = src_[i + 1];
      i += 2;
      switch (d) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          const int count = d == 'x' ? 2 : d == 'u' ? 4 : 8;
          const int64_t v = hex(i, count);
          if (v < 0) Fail(std::string("truncated \\") + d + " escape in string literal", i - 2);
          if (v > 0x10FFFF) Fail("illegal Unicode character in string literal", i - 2);
          pystr::AppendUtf8(out, static_cast<char32_t>(v));
          i += count;
          break;
        }
        case 'N':
          Fail("\\N{...} escapes are not supported", i - 2);
        default:
          if (d >= '0' && d <= '7') {
            int v = d - '0';
            for (int k = 0; k < 2 && i < e && src_[i] >= '0' && src_[i] <= '7'; ++k) v = v * 8 + (src_[i++] - '0');
            pystr::AppendUtf8(out, static_cast<char32_t>(v));
          } else {
            out.push_back('\\');  // unknown escapes stay as written
            out.push_back(d);
          }
      }
    }
    return out;
  }

  size_t LexOperator(size_t pos, std::vector<char>* balance) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (At(pos, op)) {
        Emit(TokenType::kOperator, op, pos);
        return pos + 2;
      }
    }
    const char c = src_[pos];
    static const std::string kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string::npos) {
      std::string shown;
      if (static_cast<unsigned char>(c) < 0x80) {
        shown.assign(1, c);
      } else {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
        shown = buf;
      }
      Fail("unexpected char '" + shown + "'", pos);
    }
    if (c == '(' || c == '[' || c == '{') {
      if (balance->size() >= 256) Fail("brackets nested too deep", pos);
      balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) Fail(std::string("unexpected '") + c + "'", pos);
      if (balance->back() != c) Fail(std::string("unexpected '") + c + "', expected '" + balance->back() + "'", pos);
      balance->pop_back();
    }
    Emit(TokenType::kOperator, std::string(1, c), pos);
    return pos + 1;
  }

  Token Make(TokenType type, std::string value, size_t pos) const {
    Token t;
    t.type = type;
    t.value = std::move(value);
    Locate(pos, &t);
    return t;
  }
  void Emit(TokenType type, std::string value, size_t pos) { tokens_.push_back(Make(type, std::move(value), pos)); }

  void Locate(size_t pos, Token* t) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    t->line = static_cast<int>(line);
    t->column = static_cast<int>(pos - line_starts_[line - 1] + 1);
  }

  [[noreturn]] void Fail(const std::string& msg, size_t pos) const {
    Token t;
    Locate(std::min(pos, src_.size()), &t);
    throw TemplateError(ErrorKind::kSyntax, msg, t.line, t.column);
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> Lex(std::string_view source) { return Lexer(NormalizeNewlines(source)).Run(); }

std::string DescribeToken(const Token& t) {
  switch (t.type) {
    case TokenType::kData:
      return "template data";
    case TokenType::kVarBegin:
      return "begin of print statement";
    case TokenType::kVarEnd:
      return "end of print statement";
    case TokenType::kBlockBegin:
      return "begin of statement block";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kString:
      return "string";
    case TokenType::kInteger:
      return "integer";
    case TokenType::kFloat:
      return "float";
    case TokenType::kEnd:
      return "end of template";
    default:
      return "'" + t.value + "'";
  }
}

}  // namespace qeff::chat
