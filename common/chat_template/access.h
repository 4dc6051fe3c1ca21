// How a template reaches into values, with the rules of jinja2's ImmutableSandboxedEnvironment:
// `x.name` tries the Python attribute (a method such as str.strip or dict.items) before the item,
// `x[key]` tries the item before the attribute, a miss is Undefined (not an error), and methods
// that would mutate a value are refused. Also Python iteration, slicing and the str/list/dict
// methods templates call.
#pragma once

#include <string>

#include "common/chat_template/value.h"

namespace qeff::chat {

class Interp;

Value GetAttr(Interp& in, const Value& obj, const std::string& name);
Value GetItem(Interp& in, const Value& obj, const Value& key);
// obj[start:stop:step]; each bound may be None/Undefined for "omitted".
Value GetSlice(Interp& in, const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python iter(): list/tuple items, dict keys, str code points; Undefined iterates as empty.
ValueList Iterate(Interp& in, const Value& v);
Value CallValue(Interp& in, const Value& fn, CallArgs args);

}  // namespace qeff::chat
