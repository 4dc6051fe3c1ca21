// Python's operators as jinja2 applies them: arithmetic with int/float/bool promotion and
// Python's floor division and modulo, str/list concatenation and repetition, `~`, `%`-format,
// comparisons (TypeError for unorderable types) and `in`. Undefined operands raise
// UndefinedError, as jinja2's default Undefined does.
#pragma once

#include <string>

#include "common/chat_template/ast.h"
#include "common/chat_template/value.h"

namespace qeff::chat {

class Interp;

Value BinaryOp(Interp& in, ast::BinOp op, const Value& a, const Value& b);
Value Negate(const Value& v);
Value Positive(const Value& v);
bool CompareOp(ast::CmpOp op, const Value& a, const Value& b);
// Python `a < b`.
bool Less(const Value& a, const Value& b);
// Python `item in container`.
bool Contains(const Value& container, const Value& item);
// Python `fmt % args` (printf-style): a tuple gives several arguments, a dict named ones.
// `escape` HTML-escapes the arguments, as Markup's % does.
std::string PercentFormat(Interp& in, const std::string& fmt, const Value& args, bool escape = false);

}  // namespace qeff::chat
