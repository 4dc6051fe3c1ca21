// Python `str` semantics over UTF-8 std::string: what chat templates observe through jinja2
// (code-point lengths and slices, str.isspace()-based strip/split, case mapping, repr(), and
// repr(float)). Everything here is pure and bounded by the input size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qeff::chat::pystr {

// Decodes UTF-8; an invalid byte becomes U+FFFD so no input can make the decoder fail.
std::u32string Decode(std::string_view s);
void AppendUtf8(std::string& out, char32_t c);
std::string Encode(std::u32string_view cps);
// Number of code points (Python len()).
size_t Length(std::string_view s);

bool IsSpace(char32_t c);      // str.isspace(): Unicode White_Space as Python defines it
bool IsPrintable(char32_t c);  // str.isprintable(), used by repr()
bool IsAlpha(char32_t c);
bool IsDigit(char32_t c);
bool IsCased(char32_t c);
bool IsLowerChar(char32_t c);
bool IsUpperChar(char32_t c);
// str.islower() / str.isupper(): some cased character, and none of the other case.
bool IsLower(std::string_view s);
bool IsUpper(std::string_view s);

std::string Upper(std::string_view s);
std::string Lower(std::string_view s);
std::string Title(std::string_view s);       // str.title()
std::string Capitalize(std::string_view s);  // str.capitalize()

// str.strip/lstrip/rstrip; `chars` = nullopt strips whitespace.
std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit; `sep` = nullopt splits on whitespace runs. maxsplit < 0 = no limit.
// An empty separator is the caller's error to report (Python raises ValueError).
std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// str.splitlines(): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029.
std::vector<std::string> SplitLines(std::string_view s, bool keepends);
// str.replace(old, new, count); an empty `old` inserts `new` between code points as Python does.
std::string Replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.find / str.rfind as code-point indices (-1 when absent).
int64_t Find(std::string_view s, std::string_view sub, bool reverse);
// str.count (non-overlapping).
int64_t Count(std::string_view s, std::string_view sub);

// repr(str): quotes and escapes exactly as CPython does.
std::string Repr(std::string_view s);
// repr(float): the shortest round-tripping digits, fixed notation for 1e-4 <= |x| < 1e16.
std::string FloatRepr(double x);

}  // namespace qeff::chat::pystr
