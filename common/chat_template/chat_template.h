// HuggingFace chat templates (the `chat_template` of tokenizer_config.json), rendered exactly as
// transformers' `apply_chat_template(..., tokenize=False)` renders them with Python's jinja2:
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
// `tojson` = json.dumps(ensure_ascii=False, ...), globals raise_exception(msg) and
// strftime_now(fmt), and the variables messages, tools, documents (None), add_generation_prompt,
// the tokenizer's special tokens and extra keyword arguments.
//
// No Debian package provides a Jinja engine for C++, so this library implements the subset of
// Jinja that real chat templates use, with jinja2's semantics (Python truthiness, str()/repr(),
// Undefined, scoping): lexer.h, parser.h, evaluator.h, filters.h, jinja_tests.h, access.h
// (attributes, items, slices, str/list/dict methods), operators.h, globals.h. It was checked
// against Python jinja2 3.1.2 (Debian 12, the fixtures' renderer) on real templates and random
// expressions. Not implemented: extends/include/import, autoescape, the filters groupby, slice,
// striptags, urlize, urlencode, xmlattr, filesizeformat, wordwrap and random, the globals
// lipsum and cycler, and format specs in str.format. Known differences: integers are 64-bit
// (overflow is an error), there are no complex numbers, generators print without Python's
// addresses, and range() gives a list.
//
// Every render is bounded (RenderLimits): any template and any input either renders or fails
// with a status; nothing crashes, hangs or exhausts memory. A parsed template is immutable and
// may be rendered from several threads at once.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/chat_template/limits.h"

namespace qeff::chat {

namespace ast {
struct Program;
}

class ChatTemplate {
 public:
  // What apply_chat_template receives. Use ordered_json (or json converted from it) so that key
  // order, which tojson preserves, matches the request's.
  struct Inputs {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    nlohmann::ordered_json tools;  // null (no tools) or an array of JSON schemas
    bool add_generation_prompt = false;
    // Extra template variables (e.g. enable_thinking, date_string); they override special tokens
    // of the same name.
    nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
    // Frozen clock for strftime_now, "YYYY-MM-DD HH:MM:SS" (local time); empty = real clock.
    std::string now;
  };

  // Parses a template; INVALID_ARGUMENT with line and column for syntax errors (and for unknown
  // filters or tests, which jinja2 rejects when compiling). `special_tokens` (an object) become
  // template variables.
  static absl::StatusOr<ChatTemplate> Parse(std::string source,
                                            nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object());

  // From a tokenizer folder, as transformers loads it: DIR/chat_template.jinja if present (it
  // overrides the config), else tokenizer_config.json's chat_template (a string, or the named
  // list form), else DIR/chat_template.json. With tools, a named `tool_use` template
  // (list entry or additional_chat_templates/tool_use.jinja) wins when present; otherwise
  // `default`.
  // Special tokens as transformers' special_tokens_map gives them: bos/eos/unk/sep/pad/cls/mask
  // when set and non-empty (an AddedToken object contributes its "content"),
  // additional_special_tokens when non-empty, and extra_special_tokens; special_tokens_map.json
  // overrides the config, as in transformers. NOT_FOUND when the folder has no chat template.
  static absl::StatusOr<ChatTemplate> FromTokenizerConfig(const std::filesystem::path& dir, bool with_tools);

  // The rendered text. Errors are INVALID_ARGUMENT: for raise_exception(msg) the message is
  // exactly `msg` (see IsRaisedByTemplate); otherwise it names the Python error and the template
  // line, e.g. "chat template line 3: TypeError: can only concatenate str (not \"NoneType\") to str".
  // RESOURCE_EXHAUSTED when a RenderLimits bound is hit.
  absl::StatusOr<std::string> Render(const Inputs& in) const;

  // True for the status of a template's raise_exception(msg).
  static bool IsRaisedByTemplate(const absl::Status& status);

  const std::string& source() const { return *source_; }
  const nlohmann::ordered_json& special_tokens() const { return *special_tokens_; }
  void set_limits(const RenderLimits& limits) { limits_ = limits; }

 private:
  ChatTemplate() = default;
  std::shared_ptr<const std::string> source_;
  std::shared_ptr<const ast::Program> program_;
  std::shared_ptr<const nlohmann::ordered_json> special_tokens_;
  RenderLimits limits_;
};

}  // namespace qeff::chat
