// jinja2's built-in filters that chat templates use, plus transformers' `tojson` (json.dumps).
// Each follows jinja2/filters.py, including its handling of Undefined (e.g. `length` is 0,
// `trim` is "", `tojson` fails).
#pragma once

#include <string_view>

#include "common/chat_template/value.h"

namespace qeff::chat {

class Interp;

bool IsKnownFilter(std::string_view name);
// `args` are the arguments after the filtered value. Throws TemplateError.
Value ApplyFilter(Interp& in, std::string_view name, const Value& v, const CallArgs& args);

}  // namespace qeff::chat
