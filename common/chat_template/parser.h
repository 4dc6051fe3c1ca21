// Recursive-descent parser for the jinja2 grammar (jinja2/parser.py, same precedence and the
// same quirks, e.g. `is` tests bind tighter than arithmetic and `**` is left-associative).
// Unknown filters and tests are rejected here, as jinja2 rejects them when compiling.
#pragma once

#include <memory>
#include <string_view>

#include "common/chat_template/ast.h"

namespace qeff::chat {

// Throws TemplateError(kSyntax) with line and column. Nesting is bounded so that parsing and
// evaluating cannot exhaust the stack.
std::unique_ptr<ast::Program> ParseTemplate(std::string_view source);

}  // namespace qeff::chat
