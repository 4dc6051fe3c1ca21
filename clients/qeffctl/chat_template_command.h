// `qeffctl chat-template`: render a tokenizer folder's chat template locally, no server involved.
#pragma once

#include <ostream>
#include <string>

// qeffctl chat-template --tokenizer DIR --jsonl FILE [--now "2025-01-15 14:30:00"]
// Reads DIR/tokenizer_config.json (its chat_template and special tokens) and renders each
// input line {"messages": [...], "tools": null|[...], "add_generation_prompt": bool,
// "kwargs": {...}} (all optional; "-" = stdin; blank lines are skipped) as transformers'
// apply_chat_template(tokenize=False) would. kwargs are extra template variables and override
// special tokens of the same name; `now` ("" = real clock) freezes strftime_now. Prints one line
// per input: {"rendered": "..."} or {"error": "..."} (a template's raise_exception message
// verbatim). Returns 0, or 1 after printing an error to `err` (no template, bad --now, a line
// that is not such an object: processing stops there).
int RunChatTemplateCommand(const std::string& tokenizer_dir, const std::string& jsonl_path, const std::string& now,
                           std::ostream& out, std::ostream& err);
