// Functions a template can call by name: jinja2's range/dict/namespace/joiner and
// transformers' raise_exception(msg) and strftime_now(fmt).
#pragma once

#include <string>

#include "common/chat_template/value.h"

namespace qeff::chat {

// Sets *out and returns true when `name` is a global function.
bool LookupGlobal(const std::string& name, Value* out);

}  // namespace qeff::chat
