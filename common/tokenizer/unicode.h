// Unicode helpers for the tokenizer: UTF-8 coding, character classes with the exact meaning the
// HuggingFace `tokenizers` library (Rust) gives them, normalization forms (utf8proc) and a
// PCRE2-backed regex with the search semantics of the Rust library's `find_iter`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

typedef struct pcre2_real_code_8 pcre2_code_8;

namespace qeff::tokenizer::unicode {

// ---- UTF-8 -----------------------------------------------------------------------------------

// Decodes the code point starting at s[*i] and advances *i. The input must be valid UTF-8
// (everything inside the tokenizer is, see SanitizeUtf8).
char32_t DecodeUtf8(std::string_view s, size_t* i);
// Length in bytes of the UTF-8 sequence introduced by lead byte `b` (1 for continuation bytes).
inline size_t Utf8Len(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
}
void AppendUtf8(char32_t cp, std::string* out);
// Number of code points.
size_t CountChars(std::string_view s);

bool IsValidUtf8(std::string_view s);
// Replaces every maximal invalid subsequence by U+FFFD, exactly like Rust's
// String::from_utf8_lossy (the "substitution of maximal subparts" practice of Unicode ch. 3).
// This is the documented treatment of invalid UTF-8 everywhere in the tokenizer.
std::string SanitizeUtf8(std::string_view s);

// ---- Character classes -------------------------------------------------------------------------

// Rust char::is_whitespace (Unicode White_Space).
bool IsWhitespace(char32_t c);
// Rust char::is_numeric (Nd, Nl, No).
bool IsNumeric(char32_t c);
// Rust char::is_alphanumeric, approximated as letters (L*) and numbers (N*).
bool IsAlphanumeric(char32_t c);
// The next three follow the reference's older character tables (Unicode 8.0): code points
// assigned to these categories later are not included (see unicode.cc).
// General category P* or ASCII punctuation (the BERT / Punctuation pre-tokenizer test).
bool IsPunctuation(char32_t c);
// General category Cc, Cf, Cs or Co (not Cn: the reference has no table for unassigned).
bool IsOther(char32_t c);
// Mn only (BertNormalizer accent stripping).
bool IsMarkNonspacing(char32_t c);
// M* (StripAccents normalizer).
bool IsMark(char32_t c);
// The CJK ideograph blocks BertNormalizer pads with spaces.
bool IsChineseChar(char32_t c);

// Appends the full Unicode lowercase mapping of c (Rust char::to_lowercase; U+0130 -> "i\u0307").
void AppendLowercase(char32_t c, std::string* out);

// End (byte offset) of the extended grapheme cluster that starts at s[start] (UAX #29, as
// utf8proc implements it; the Rust library uses the unicode-segmentation crate). s is valid UTF-8
// and start < s.size().
size_t GraphemeEnd(std::string_view s, size_t start);

enum class NormalizationForm { kNFC, kNFD, kNFKC, kNFKD };
// Returns the normalized form of valid UTF-8 `s` (embedded NULs are kept).
std::string Normalize(std::string_view s, NormalizationForm form);

// ---- Byte-level alphabet (GPT-2) ------------------------------------------------------------------

// UTF-8 of the printable character GPT-2 uses for byte b ("Ġ" for ' ').
const std::string& ByteToChar(uint8_t b);
// The byte a byte-level character stands for, or -1 when c is not in the alphabet.
int CharToByte(char32_t c);

// ---- Regex -------------------------------------------------------------------------------------

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). Immutable and thread-safe: match data
// and the JIT stack are per thread. Matching is bounded (match and heap limits): a pattern that
// exceeds them ends the search at that point, so the rest of the text counts as "no match".
class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  // A regex matching `literal` exactly.
  static absl::StatusOr<std::unique_ptr<Regex>> Literal(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of successive non-overlapping matches in `text`, with
  // the iteration rule of the Rust onig crate: an empty match directly after the previous match
  // is skipped by advancing one character.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  Regex() = default;
  pcre2_code_8* code_ = nullptr;
  bool jit_ = false;
};

// The "pattern" of a Split pre-tokenizer or a Replace normalizer/decoder: a literal string
// ({"String": s}, matched as-is, non-overlapping from the left) or a Regex ({"Regex": r}).
// An empty literal matches nothing.
class Pattern {
 public:
  static Pattern FromLiteral(std::string literal);
  static absl::StatusOr<Pattern> FromRegex(std::string_view pattern);
  Pattern() = default;
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace qeff::tokenizer::unicode
