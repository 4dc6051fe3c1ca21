#include "common/tokenizer/post_processors.h"

#include <iterator>
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

// Largest type id accepted (the Rust type is u32; real templates use 0 and 1).
constexpr int64_t kMaxTypeId = (int64_t{1} << 31) - 1;

// One element of a template: sequence A (0) or B (1), or a run of special tokens.
struct TemplatePiece {
  int sequence = -1;  // -1: special tokens
  int32_t type_id = 0;
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
  bool last_use = false;  // the template's last reference to `sequence`
};

void Append(Encoding* out, Encoding&& e) {
  out->ids.insert(out->ids.end(), e.ids.begin(), e.ids.end());
  out->tokens.insert(out->tokens.end(), std::make_move_iterator(e.tokens.begin()), std::make_move_iterator(e.tokens.end()));
  out->type_ids.insert(out->type_ids.end(), e.type_ids.begin(), e.type_ids.end());
}

Encoding Specials(const std::vector<int32_t>& ids, const std::vector<std::string>& tokens, int32_t type_id) {
  Encoding e;
  e.ids = ids;
  e.tokens = tokens;
  e.type_ids.assign(ids.size(), type_id);
  return e;
}

class TemplateProcessor : public PostProcessor {
 public:
  TemplateProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair)
      : single_(std::move(single)), pair_(std::move(pair)) {
    MarkLastUses(&single_);
    MarkLastUses(&pair_);
  }
  void Process(std::vector<Encoding>* encodings, bool add_special_tokens) const override {
    const std::vector<TemplatePiece>& pieces = encodings->size() == 2 ? pair_ : single_;
    std::vector<Encoding> out;
    out.reserve(pieces.size());
    for (const TemplatePiece& p : pieces) {
      if (p.sequence >= 0) {
        // Validated on load: single templates name only A.
        if (static_cast<size_t>(p.sequence) >= encodings->size()) continue;
        Encoding& in = (*encodings)[p.sequence];
        // A sequence is copied only when the template uses it again later.
        Encoding e = p.last_use ? std::move(in) : in;
        e.type_ids.assign(e.ids.size(), p.type_id);
        out.push_back(std::move(e));
      } else if (add_special_tokens) {
        out.push_back(Specials(p.ids, p.tokens, p.type_id));
      }
    }
    encodings->swap(out);
  }

 private:
  static void MarkLastUses(std::vector<TemplatePiece>* pieces) {
    bool seen[2] = {false, false};
    for (auto it = pieces->rbegin(); it != pieces->rend(); ++it) {
      if (it->sequence < 0) continue;
      it->last_use = !seen[it->sequence];
      seen[it->sequence] = true;
    }
  }

  std::vector<TemplatePiece> single_, pair_;
};

class BertProcessor : public PostProcessor {
 public:
  BertProcessor(TemplatePiece cls, TemplatePiece sep, bool roberta)
      : cls_(std::move(cls)), sep_(std::move(sep)), roberta_(roberta) {}
  void Process(std::vector<Encoding>* encodings, bool add_special_tokens) const override {
    if (roberta_) {
      for (Encoding& e : *encodings) e.type_ids.assign(e.ids.size(), 0);
    }
    if (!add_special_tokens) return;
    std::vector<Encoding> out;
    for (size_t i = 0; i < encodings->size(); ++i) {
      const int32_t type = (i == 0 || roberta_) ? 0 : 1;
      if (i == 0) {
        out.push_back(Specials(cls_.ids, cls_.tokens, 0));
      } else if (roberta_) {
        out.push_back(Specials(sep_.ids, sep_.tokens, 0));
      }
      out.push_back(std::move((*encodings)[i]));
      out.push_back(Specials(sep_.ids, sep_.tokens, type));
    }
    encodings->swap(out);
  }

 private:
  TemplatePiece cls_, sep_;
  bool roberta_;
};

class NoopProcessor : public PostProcessor {
 public:
  void Process(std::vector<Encoding>*, bool) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void Process(std::vector<Encoding>* encodings, bool add_special_tokens) const override {
    for (const auto& p : parts_) p->Process(encodings, add_special_tokens);
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

// A decimal type id in [0, kMaxTypeId].
bool ParseTypeId(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoll(text);
  return *out <= kMaxTypeId;
}

// Parses one template ("single" or "pair"), array or string form.
absl::StatusOr<std::vector<TemplatePiece>> ParseTemplate(
    const Json& t, const char* name, const absl::flat_hash_map<std::string, TemplatePiece>& specials,
    std::string_view component) {
  std::vector<TemplatePiece> pieces;
  auto add_special = [&](const std::string& id, int64_t type_id) -> absl::Status {
    auto it = specials.find(id);
    if (it == specials.end()) {
      return ComponentError(component, absl::StrCat(name, " template uses \"", id, "\", missing from special_tokens"));
    }
    TemplatePiece p = it->second;
    p.type_id = static_cast<int32_t>(type_id);
    pieces.push_back(std::move(p));
    return absl::OkStatus();
  };
  auto add_sequence = [&](int sequence, int64_t type_id) {
    TemplatePiece p;
    p.sequence = sequence;
    p.type_id = static_cast<int32_t>(type_id);
    pieces.push_back(std::move(p));
  };
  auto bad_type = [](int64_t type_id) { return type_id < 0 || type_id > kMaxTypeId; };
  if (t.is_string()) {
    // "[CLS]:0 $A:0 [SEP]:0": `$`, `$A`, `$a`, `$B`, `$b` or `$<type id>`, each with an optional
    // ":<type id>".
    for (const std::string& word : std::vector<std::string>(absl::StrSplit(t.get_ref<const std::string&>(), ' ', absl::SkipEmpty()))) {
      std::vector<std::string> parts = absl::StrSplit(word, ':');
      auto error = [&]() { return ComponentError(component, absl::StrCat("cannot parse template piece \"", word, "\"")); };
      if (parts.size() > 2) return error();
      int64_t type_id = 0;
      const bool has_type = parts.size() == 2;
      if (has_type && !ParseTypeId(parts[1], &type_id)) return error();
      const std::string& id = parts[0];
      if (!id.empty() && id[0] == '$') {
        const std::string rest = id.substr(1);
        int sequence = 0;
        if (rest.empty() || rest == "A" || rest == "a") {
          sequence = 0;
        } else if (rest == "B" || rest == "b") {
          sequence = 1;
        } else {
          int64_t v = 0;
          if (!ParseTypeId(rest, &v)) return error();
          if (!has_type) type_id = v;
        }
        add_sequence(sequence, type_id);
      } else {
        absl::Status s = add_special(id, type_id);
        if (!s.ok()) return s;
      }
    }
  } else if (t.is_array()) {
    for (const Json& piece : t) {
      const char* kind = piece.is_object() && piece.contains("Sequence")       ? "Sequence"
                         : piece.is_object() && piece.contains("SpecialToken") ? "SpecialToken"
                                                                               : nullptr;
      if (kind == nullptr || !piece[kind].is_object()) {
        return ComponentError(component, "template pieces must be {\"Sequence\": {...}} or {\"SpecialToken\": {...}}");
      }
      const Json& body = piece[kind];
      auto type_id = internal::GetInt(body, "type_id", 0, component);
      if (!type_id.ok()) return type_id.status();
      if (bad_type(*type_id)) return ComponentError(component, absl::StrCat("type_id ", *type_id, " out of range"));
      if (!body.contains("id") || !body["id"].is_string()) {
        return ComponentError(component, absl::StrCat(kind, " template piece needs a string \"id\""));
      }
      const std::string& id = body["id"].get_ref<const std::string&>();
      if (std::string_view(kind) == "Sequence") {
        if (id != "A" && id != "B") return ComponentError(component, absl::StrCat("sequence id must be \"A\" or \"B\", not \"", id, "\""));
        add_sequence(id == "A" ? 0 : 1, *type_id);
      } else {
        absl::Status s = add_special(id, *type_id);
        if (!s.ok()) return s;
      }
    }
  } else {
    return ComponentError(component, absl::StrCat("\"", name, "\" must be a list or a string"));
  }
  return pieces;
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
  if (!internal::Has(j, "single")) return ComponentError(kComponent, "missing \"single\"");
  auto single = ParseTemplate(j["single"], "single", specials, kComponent);
  if (!single.ok()) return single.status();
  for (const TemplatePiece& p : *single) {
    if (p.sequence > 0) return ComponentError(kComponent, "the single template may only use sequence A");
  }
  std::vector<TemplatePiece> pair;
  if (internal::Has(j, "pair")) {
    auto parsed = ParseTemplate(j["pair"], "pair", specials, kComponent);
    if (!parsed.ok()) return parsed.status();
    pair = std::move(*parsed);
  } else {
    pair.push_back({0, 0, {}, {}});
    pair.push_back({1, 1, {}, {}});
  }
  return std::make_unique<TemplateProcessor>(std::move(*single), std::move(pair));
}

}  // namespace

std::unique_ptr<PostProcessor> MakeAffixProcessor(std::vector<int32_t> prefix_ids,
                                                  std::vector<std::string> prefix_tokens,
                                                  std::vector<int32_t> suffix_ids,
                                                  std::vector<std::string> suffix_tokens) {
  std::vector<TemplatePiece> single, pair;
  for (int32_t type : {0, 1}) {
    if (!prefix_ids.empty()) pair.push_back({-1, type, prefix_ids, prefix_tokens});
    pair.push_back({type, type, {}, {}});
    if (!suffix_ids.empty()) pair.push_back({-1, type, suffix_ids, suffix_tokens});
    if (type == 0) single = pair;
  }
  return std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
}

Encoding MergeEncodings(std::vector<Encoding>* encodings) {
  if (encodings->size() == 1) return std::move((*encodings)[0]);
  Encoding out;
  size_t n = 0;
  for (const Encoding& e : *encodings) n += e.ids.size();
  out.ids.reserve(n);
  out.tokens.reserve(n);
  out.type_ids.reserve(n);
  for (Encoding& e : *encodings) Append(&out, std::move(e));
  return out;
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
    return std::make_unique<BertProcessor>(std::move(*cls), std::move(*sep), type == "RobertaProcessing");
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
