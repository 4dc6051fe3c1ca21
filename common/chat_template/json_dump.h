// Python's json.dumps over template values: transformers' `tojson` filter is
// json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...), not jinja2's
// HTML-safe tojson, so nothing is HTML-escaped and key order is kept.
#pragma once

#include <optional>
#include <string>

#include "common/chat_template/value.h"

namespace qeff::chat {

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt = one line; "" = newlines without indentation
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// TypeError for values json.dumps cannot serialize (Undefined, namespace, functions, bad keys).
std::string JsonDumps(const Value& v, const JsonDumpOptions& options);

// json.dumps' string encoding ("..." with escapes).
std::string JsonQuote(const std::string& s, bool ensure_ascii);

}  // namespace qeff::chat
