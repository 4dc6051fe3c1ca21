#include "clients/qeffctl/tokenize_command.h"

#include <ostream>

#include <nlohmann/json.hpp>

#include "clients/qeffctl/jsonl_lines.h"
#include "common/tokenizer/tokenizer.h"

namespace {

using qeff::tokenizer::Tokenizer;

bool EmitOne(const Tokenizer& tok, const std::string& text, bool add_special, std::ostream& out,
             std::ostream& err) {
  auto enc = tok.Encode(text, add_special);
  if (!enc.ok()) {
    err << "tokenize: " << enc.status().ToString() << "\n";
    return false;
  }
  nlohmann::ordered_json line;
  line["ids"] = enc->ids;
  line["tokens"] = enc->tokens;
  line["decoded"] = tok.Decode(enc->ids, false);
  line["decoded_skip_special"] = tok.Decode(enc->ids, true);
  out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  return true;
}

}  // namespace

int RunTokenizeCommand(const std::string& tokenizer_dir, const std::string& jsonl_path,
                       const std::string& text, std::ostream& out, std::ostream& err) {
  auto tok = Tokenizer::FromDirectory(tokenizer_dir);
  if (!tok.ok()) {
    err << "tokenize: " << tok.status().ToString() << "\n";
    return 1;
  }
  if (jsonl_path.empty()) return EmitOne(**tok, text, true, out, err) ? 0 : 1;

  const bool ok = qeffctl::ForEachJsonLine(jsonl_path, "tokenize", err, [&](size_t line_no, const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      err << "tokenize: " << jsonl_path << ":" << line_no
          << ": expected {\"text\": string, \"add_special_tokens\": bool}\n";
      return false;
    }
    bool add_special = true;
    if (j.contains("add_special_tokens")) {
      if (!j["add_special_tokens"].is_boolean()) {
        err << "tokenize: " << jsonl_path << ":" << line_no << ": add_special_tokens must be a boolean\n";
        return false;
      }
      add_special = j["add_special_tokens"].get<bool>();
    }
    return EmitOne(**tok, j["text"].get<std::string>(), add_special, out, err);
  });
  if (!ok) return 1;
  out.flush();
  return 0;
}
