// The input loop the local JSON-lines commands (tokenize, chat-template) share.
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>

namespace qeffctl {

// Calls fn(line_no, line) for every non-blank line of `path` ("-" = stdin), a trailing CR
// removed. Returns false when the file cannot be opened (after writing "<command>: cannot open
// PATH" to err) or as soon as fn returns false.
bool ForEachJsonLine(const std::string& path, const std::string& command, std::ostream& err,
                     const std::function<bool(size_t line_no, const std::string& line)>& fn);

}  // namespace qeffctl
