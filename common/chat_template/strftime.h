// transformers' strftime_now(fmt) = datetime.now().strftime(fmt), with a clock the caller can
// freeze so renders are reproducible.
#pragma once

#include <string>

namespace qeff::chat {

// Formats "now" like Python's datetime.strftime on a naive local datetime in the C locale
// (%f microseconds, %z and %Z empty). `frozen` is "YYYY-MM-DD HH:MM:SS" or "" for the real
// clock. Throws TemplateError for a malformed `frozen`.
std::string StrftimeNow(const std::string& format, const std::string& frozen);

// True when `frozen` has the "YYYY-MM-DD HH:MM:SS" form and is a valid date and time.
bool IsValidFrozenTime(const std::string& frozen);

}  // namespace qeff::chat
