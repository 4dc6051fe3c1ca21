// The one error type of the template engine. The lexer, parser and evaluator are recursive and
// every sub-expression can fail, so they throw TemplateError internally; ChatTemplate::Parse and
// ChatTemplate::Render catch it and return an absl::Status. No exception leaves the library.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace qeff::chat {

enum class ErrorKind {
  kSyntax,     // TemplateSyntaxError / TemplateAssertionError: the template itself is malformed
  kRaised,     // raise_exception(msg): `message` is the template's text, verbatim
  kUndefined,  // UndefinedError
  kType,       // TypeError (and ValueError, IndexError, ZeroDivisionError ...)
  kSecurity,   // SecurityError: mutating a value in the immutable sandbox
  kRuntime,    // TemplateRuntimeError
  kLimit,      // a resource bound of this implementation (output size, steps, recursion)
};

class TemplateError : public std::runtime_error {
 public:
  TemplateError(ErrorKind kind, std::string message, int line = 0, int column = 0)
      : std::runtime_error(message), kind_(kind), message_(std::move(message)), line_(line), column_(column) {}
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  int line() const { return line_; }
  int column() const { return column_; }
  // The innermost statement or expression that knows its position fills it in.
  void SetPositionIfUnset(int line, int column) {
    if (line_ == 0) {
      line_ = line;
      column_ = column;
    }
  }

 private:
  ErrorKind kind_;
  std::string message_;
  int line_, column_;
};

[[noreturn]] inline void ThrowType(std::string message) { throw TemplateError(ErrorKind::kType, std::move(message)); }
[[noreturn]] inline void ThrowUndefined(std::string message) {
  throw TemplateError(ErrorKind::kUndefined, std::move(message));
}

}  // namespace qeff::chat
