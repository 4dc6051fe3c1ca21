#include "common/tokenizer/post_processors.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/model.h"

namespace qeff::tokenizer {
namespace {

using internal::ComponentError;
using internal::Json;

// One element of a template: the input sequence, or a run of special tokens.
struct TemplatePiece {
  bool is_sequence = false;
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
};

class TemplateProcessor : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<TemplatePiece> pieces) : pieces_(std::move(pieces)) {}
  void Process(Encoding* e, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    Encoding out;
    for (const TemplatePiece& p : pieces_) {
      if (p.is_sequence) {
        out.ids.insert(out.ids.end(), e->ids.begin(), e->ids.end());
        out.tokens.insert(out.tokens.end(), e->tokens.begin(), e->tokens.end());
      } else {
        out.ids.insert(out.ids.end(), p.ids.begin(), p.ids.end());
        out.tokens.insert(out.tokens.end(), p.tokens.begin(), p.tokens.end());
      }
    }
    *e = std::move(out);
  }

 private:
  std::vector<TemplatePiece> pieces_;
};

class NoopProcessor : public PostProcessor {
 public:
  void Process(Encoding*, bool) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void Process(Encoding* e, bool add_special_tokens) const override {
    for (const auto& p : parts_) p->Process(e, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

absl::StatusOr<int32_t> CheckedId(const Json& v, std::string_view component) {
  if (!v.is_number_integer()) return ComponentError(component, "token id must be an integer");
  int64_t id = v.get<int64_t>();
  if (id < 0 || id > kMaxTokenId) return ComponentError(component, absl::StrCat("token id ", id, " out of range"));
  return static_cast<int32_t>(id);
}

// A [token, id] pair of BertProcessing / RobertaProcessing.
absl::StatusOr<TemplatePiece> TokenPair(const Json& j, const char* key, std::string_view component) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][0].is_string()) {
    return ComponentError(component, absl::StrCat("\"", key, "\" must be [token, id]"));
  }
  auto id = CheckedId(j[key][1], component);
  if (!id.ok()) return id.status();
  TemplatePiece p;
  p.tokens.push_back(j[key][0].get<std::string>());
  p.ids.push_back(*id);
  return p;
}

absl::StatusOr<std::unique_ptr<PostProcessor>> TemplateFromJson(const Json& j) {
  constexpr std::string_view kComponent = "post_processor TemplateProcessing";
  // special_tokens: {"name": {"id": name, "ids": [...], "tokens": [...]}}
  absl::flat_hash_map<std::string, TemplatePiece> specials;
  if (internal::Has(j, "special_tokens")) {
    const Json& st = j["special_tokens"];
    if (!st.is_object()) return ComponentError(kComponent, "\"special_tokens\" must be an object");
    for (auto it = st.begin(); it != st.end(); ++it) {
      const Json& v = it.value();
      if (!v.is_object() || !v.contains("ids") || !v["ids"].is_array() || !v.contains("tokens") ||
          !v["tokens"].is_array() || v["ids"].size() != v["tokens"].size()) {
        return ComponentError(kComponent, absl::StrCat("special token \"", it.key(), "\" needs ids and tokens of equal length"));
      }
      TemplatePiece p;
      for (const Json& id : v["ids"]) {
        auto checked = CheckedId(id, kComponent);
        if (!checked.ok()) return checked.status();
        p.ids.push_back(*checked);
      }
      for (const Json& t : v["tokens"]) {
        if (!t.is_string()) return ComponentError(kComponent, "special token strings must be strings");
        p.tokens.push_back(t.get<std::string>());
      }
      specials[it.key()] = std::move(p);
    }
  }
  if (!j.contains("single")) return ComponentError(kComponent, "missing \"single\"");
  std::vector<TemplatePiece> pieces;
  auto add_special = [&](const std::string& name) -> absl::Status {
    auto it = specials.find(name);
    if (it == specials.end()) {
      return ComponentError(kComponent, absl::StrCat("template uses \"", name, "\", missing from special_tokens"));
    }
    pieces.push_back(it->second);
    return absl::OkStatus();
  };
  const Json& single = j["single"];
  if (single.is_string()) {
    // The string form "[CLS] $A [SEP]" (pieces may carry ":type_id").
    for (const std::string& word : std::vector<std::string>(absl::StrSplit(single.get_ref<const std::string&>(), ' ', absl::SkipEmpty()))) {
      std::string_view name = std::string_view(word).substr(0, word.find(':'));
      if (!name.empty() && name[0] == '$') {
        if (name != "$" && name != "$A" && name != "$a" && name != "$0" && name.find_first_not_of("$0123456789") != std::string_view::npos) {
          return ComponentError(kComponent, absl::StrCat("single template uses sequence \"", std::string(name), "\""));
        }
        TemplatePiece p;
        p.is_sequence = true;
        pieces.push_back(p);
      } else {
        absl::Status s = add_special(std::string(name));
        if (!s.ok()) return s;
      }
    }
  } else if (single.is_array()) {
    for (const Json& piece : single) {
      if (piece.is_object() && piece.contains("Sequence")) {
        TemplatePiece p;
        p.is_sequence = true;
        pieces.push_back(p);
      } else if (piece.is_object() && piece.contains("SpecialToken") &&
                 piece["SpecialToken"].is_object() && piece["SpecialToken"].contains("id") &&
                 piece["SpecialToken"]["id"].is_string()) {
        absl::Status s = add_special(piece["SpecialToken"]["id"].get<std::string>());
        if (!s.ok()) return s;
      } else {
        return ComponentError(kComponent, "template pieces must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
  } else {
    return ComponentError(kComponent, "\"single\" must be a list or a string");
  }
  return std::make_unique<TemplateProcessor>(std::move(pieces));
}

}  // namespace

std::unique_ptr<PostProcessor> MakeAffixProcessor(std::vector<int32_t> prefix_ids,
                                                  std::vector<std::string> prefix_tokens,
                                                  std::vector<int32_t> suffix_ids,
                                                  std::vector<std::string> suffix_tokens) {
  std::vector<TemplatePiece> pieces;
  if (!prefix_ids.empty()) pieces.push_back({false, std::move(prefix_ids), std::move(prefix_tokens)});
  pieces.push_back({true, {}, {}});
  if (!suffix_ids.empty()) pieces.push_back({false, std::move(suffix_ids), std::move(suffix_tokens)});
  return std::make_unique<TemplateProcessor>(std::move(pieces));
}

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const Json& j) {
  auto type_or = internal::GetType(j, "post_processor");
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  const std::string component = absl::StrCat("post_processor ", type);
  if (type == "TemplateProcessing") return TemplateFromJson(j);
  if (type == "ByteLevel") return std::make_unique<NoopProcessor>();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto cls = TokenPair(j, "cls", component);
    if (!cls.ok()) return cls.status();
    auto sep = TokenPair(j, "sep", component);
    if (!sep.ok()) return sep.status();
    std::vector<TemplatePiece> pieces;
    pieces.push_back(std::move(*cls));
    pieces.push_back({true, {}, {}});
    pieces.push_back(std::move(*sep));
    return std::make_unique<TemplateProcessor>(std::move(pieces));
  }
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return ComponentError(component, "\"processors\" must be a list");
    }
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (const Json& part : j["processors"]) {
      auto p = PostProcessorFromJson(part);
      if (!p.ok()) return p.status();
      parts.push_back(std::move(*p));
    }
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  return ComponentError("post_processor", absl::StrCat("unsupported type \"", type, "\""));
}

}  // namespace qeff::tokenizer
