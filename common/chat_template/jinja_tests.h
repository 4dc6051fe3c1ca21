// jinja2's tests (`x is defined`, `x is string`, `x is divisibleby 3`, ...) as in jinja2/tests.py.
#pragma once

#include <string_view>

#include "common/chat_template/value.h"

namespace qeff::chat {

class Interp;

bool IsKnownTest(std::string_view name);
// `args` are the arguments after the tested value. Throws TemplateError.
bool ApplyTest(Interp& in, std::string_view name, const Value& v, const CallArgs& args);

}  // namespace qeff::chat
