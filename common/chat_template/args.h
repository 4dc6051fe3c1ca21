// Python-style argument binding for the built-in filters, tests, methods and functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/chat_template/value.h"

namespace qeff::chat {

struct Param {
  const char* name;
  Value default_value = Value();  // used when the caller does not pass it
  bool required = false;
};

// Binds positional then keyword arguments to `params` in order. TypeError (with `fn` in the
// message) for surplus positionals, unknown or duplicate keywords, and missing required ones.
std::vector<Value> BindArgs(std::string_view fn, const CallArgs& args, const std::vector<Param>& params);

// Argument coercions with Python's TypeErrors.
int64_t ArgInt(std::string_view fn, const Value& v);
std::string ArgStr(std::string_view fn, const Value& v);
// None -> nullopt (Python's "no argument" for strip/split separators).
std::optional<std::string> ArgOptStr(std::string_view fn, const Value& v);

}  // namespace qeff::chat
