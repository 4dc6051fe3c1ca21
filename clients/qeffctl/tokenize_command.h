// `qeffctl tokenize`: local tokenization with a tokenizer folder, no server involved.
#pragma once

#include <ostream>
#include <string>

// qeffctl tokenize --tokenizer DIR (--jsonl FILE | --text TEXT): local, no server.
// --jsonl reads one {"text": "...", "add_special_tokens": bool} object per line ("-" = stdin;
// add_special_tokens defaults to true; blank lines are skipped). --text encodes TEXT with
// add_special_tokens=true. For each input it prints one line
// {"ids": [...], "tokens": [...], "decoded": "...", "decoded_skip_special": "..."}.
// Returns 0, or 1 after printing an error to `err` (bad folder, bad line: processing stops there).
int RunTokenizeCommand(const std::string& tokenizer_dir, const std::string& jsonl_path,
                       const std::string& text, std::ostream& out, std::ostream& err);
