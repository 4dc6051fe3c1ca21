#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <exception>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/bpe_model.h"
#include "common/tokenizer/decoders.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/model.h"
#include "common/tokenizer/normalizers.h"
#include "common/tokenizer/post_processors.h"
#include "common/tokenizer/pre_tokenizers.h"
#include "common/tokenizer/unicode.h"
#include "common/util/files.h"

namespace qeff::tokenizer {
namespace {

using internal::Json;

absl::StatusOr<Json> ParseJson(std::string_view text, std::string_view file) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(std::string(file), ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(std::string(file), ": must be a JSON object"));
  return j;
}

absl::Status InFile(const absl::Status& s, std::string_view file) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(std::string(file), ": ", s.message()));
}

// An AddedToken from a tokenizer.json / tokenizer_config.json entry.
absl::StatusOr<AddedToken> ParseAddedToken(const Json& j, std::optional<int64_t> id_override) {
  constexpr std::string_view kComponent = "added_tokens";
  if (!j.is_object()) return internal::ComponentError(kComponent, "entries must be objects");
  AddedToken t;
  int64_t id = 0;
  if (id_override) {
    id = *id_override;
  } else {
    auto v = internal::GetInt(j, "id", -1, kComponent);
    if (!v.ok()) return v.status();
    id = *v;
  }
  if (id < 0 || id > kMaxTokenId) return internal::ComponentError(kComponent, absl::StrCat("id ", id, " out of range"));
  t.id = static_cast<int32_t>(id);
  auto content = internal::GetString(j, "content", "", kComponent);
  auto special = internal::GetBool(j, "special", false, kComponent);
  auto lstrip = internal::GetBool(j, "lstrip", false, kComponent);
  auto rstrip = internal::GetBool(j, "rstrip", false, kComponent);
  auto single = internal::GetBool(j, "single_word", false, kComponent);
  for (const absl::Status& s : {content.status(), special.status(), lstrip.status(), rstrip.status(), single.status()}) {
    if (!s.ok()) return s;
  }
  if (!unicode::IsValidUtf8(*content)) return internal::ComponentError(kComponent, "content is not valid UTF-8");
  // serde default for `normalized` is !special.
  auto normalized = internal::GetBool(j, "normalized", !*special, kComponent);
  if (!normalized.ok()) return normalized.status();
  t.content = *content;
  t.special = *special;
  t.lstrip = *lstrip;
  t.rstrip = *rstrip;
  t.single_word = *single;
  t.normalized = *normalized;
  return t;
}

// "eos_token": "</s>" or {"content": "</s>", ...}.
std::optional<std::string> TokenName(const Json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const Json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  auto read_optional = [&](const char* name, uint64_t bound) -> absl::StatusOr<std::string> {
    std::filesystem::path p = dir / name;
    if (!std::filesystem::is_regular_file(p, ec)) return std::string();
    auto text = util::ReadFile(p, bound);
    if (!text.ok()) return InFile(text.status(), p.string());
    return text;
  };
  auto config = read_optional("tokenizer_config.json", kMaxSideFileBytes);
  if (!config.ok()) return config.status();
  auto special_map = read_optional("special_tokens_map.json", kMaxSideFileBytes);
  if (!special_map.ok()) return special_map.status();

  std::filesystem::path json_path = dir / "tokenizer.json";
  if (std::filesystem::is_regular_file(json_path, ec)) {
    auto text = util::ReadFile(json_path, kMaxTokenizerJsonBytes);
    if (!text.ok()) return InFile(text.status(), json_path.string());
    auto tok = FromJson(*text, *config, *special_map);
    if (!tok.ok()) return InFile(tok.status(), dir.string());
    return tok;
  }
  std::filesystem::path vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  if (std::filesystem::is_regular_file(vocab_path, ec) && std::filesystem::is_regular_file(merges_path, ec)) {
    auto vocab = util::ReadFile(vocab_path, kMaxSideFileBytes);
    if (!vocab.ok()) return InFile(vocab.status(), vocab_path.string());
    auto merges = util::ReadFile(merges_path, kMaxSideFileBytes);
    if (!merges.ok()) return InFile(merges.status(), merges_path.string());
    auto tok = FromVocabAndMerges(*vocab, *merges, *config, *special_map);
    if (!tok.ok()) return InFile(tok.status(), dir.string());
    return tok;
  }
  return absl::NotFoundError(absl::StrCat(dir.string(), ": no tokenizer.json (nor vocab.json + merges.txt)"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view tokenizer_config_json,
                                                               std::string_view special_tokens_map_json) {
  // nlohmann throws on type mismatches the helpers did not foresee; nothing escapes this module.
  try {
    auto parsed = ParseJson(tokenizer_json, "tokenizer.json");
    if (!parsed.ok()) return parsed.status();
    const Json& j = *parsed;
    std::unique_ptr<Tokenizer> tok(new Tokenizer());
    if (!j.contains("model")) return absl::InvalidArgumentError("tokenizer.json: missing \"model\"");
    auto model = ModelFromJson(j["model"]);
    if (!model.ok()) return InFile(model.status(), "tokenizer.json");
    tok->model_ = std::move(*model);
    if (internal::Has(j, "normalizer")) {
      auto n = NormalizerFromJson(j["normalizer"]);
      if (!n.ok()) return InFile(n.status(), "tokenizer.json");
      tok->normalizer_ = std::move(*n);
    }
    if (internal::Has(j, "pre_tokenizer")) {
      auto p = PreTokenizerFromJson(j["pre_tokenizer"]);
      if (!p.ok()) return InFile(p.status(), "tokenizer.json");
      tok->pre_tokenizer_ = std::move(*p);
    }
    if (internal::Has(j, "post_processor")) {
      auto p = PostProcessorFromJson(j["post_processor"]);
      if (!p.ok()) return InFile(p.status(), "tokenizer.json");
      tok->post_processor_ = std::move(*p);
    }
    if (internal::Has(j, "decoder")) {
      auto d = DecoderFromJson(j["decoder"]);
      if (!d.ok()) return InFile(d.status(), "tokenizer.json");
      tok->decoder_ = std::move(*d);
    }
    std::vector<AddedToken> added;
    if (internal::Has(j, "added_tokens")) {
      if (!j["added_tokens"].is_array()) {
        return absl::InvalidArgumentError("tokenizer.json: tokenizer added_tokens: must be a list");
      }
      for (const Json& entry : j["added_tokens"]) {
        auto t = ParseAddedToken(entry, std::nullopt);
        if (!t.ok()) return InFile(t.status(), "tokenizer.json");
        added.push_back(std::move(*t));
      }
    }
    // truncation and padding are batch options of the Python API; the runner does its own.
    tok->added_.Build(added, tok->normalizer_.get());
    absl::Status s = tok->ApplyConfig(tokenizer_config_json, special_tokens_map_json, false, &added);
    if (!s.ok()) return s;
    return tok;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabAndMerges(
    std::string_view vocab_json, std::string_view merges_txt, std::string_view tokenizer_config_json,
    std::string_view special_tokens_map_json) {
  try {
    std::unique_ptr<Tokenizer> tok(new Tokenizer());
    auto model = BpeModel::FromVocabAndMerges(vocab_json, merges_txt);
    if (!model.ok()) return model.status();
    tok->model_ = std::move(*model);
    bool add_prefix_space = false;
    if (!tokenizer_config_json.empty()) {
      auto config = ParseJson(tokenizer_config_json, "tokenizer_config.json");
      if (!config.ok()) return config.status();
      auto v = internal::GetBool(*config, "add_prefix_space", false, "config");
      if (!v.ok()) return InFile(v.status(), "tokenizer_config.json");
      add_prefix_space = *v;
    }
    tok->pre_tokenizer_ = MakeByteLevelPreTokenizer(add_prefix_space);
    tok->decoder_ = MakeByteLevelDecoder();
    std::vector<AddedToken> added;
    absl::Status s = tok->ApplyConfig(tokenizer_config_json, special_tokens_map_json, true, &added);
    if (!s.ok()) return s;
    return tok;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("vocab.json/merges.txt: ", e.what()));
  }
}

absl::Status Tokenizer::ApplyConfig(std::string_view config_text, std::string_view special_map_text,
                                    bool legacy_gpt2, std::vector<AddedToken>* added) {
  Json config = Json::object(), special_map = Json::object();
  if (!config_text.empty()) {
    auto c = ParseJson(config_text, "tokenizer_config.json");
    if (!c.ok()) return c.status();
    config = std::move(*c);
  }
  if (!special_map_text.empty()) {
    auto m = ParseJson(special_map_text, "special_tokens_map.json");
    if (!m.ok()) return m.status();
    special_map = std::move(*m);
  }

  // Tokens the config declares that tokenizer.json lacks (by content) join the added vocabulary.
  bool changed = false;
  auto has_content = [&](const std::string& content) {
    return std::any_of(added->begin(), added->end(), [&](const AddedToken& t) { return t.content == content; });
  };
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
      int64_t id = -1;
      const std::string& key = it.key();
      if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: added_tokens_decoder key \"", key, "\" is not an id"));
      }
      id = std::stoll(key);
      auto t = ParseAddedToken(it.value(), id);
      if (!t.ok()) return InFile(t.status(), "tokenizer_config.json");
      if (t->content.empty() || has_content(t->content)) continue;
      // The slow GPT-2 tokenizer has no normalizer: its added tokens match the raw text.
      if (legacy_gpt2) t->normalized = false;
      added->push_back(std::move(*t));
      changed = true;
    }
  }
  if (legacy_gpt2) {
    // Named special tokens of the slow tokenizer are split out of the text and are special.
    for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
      for (const Json* src : {&config, &special_map}) {
        auto name = TokenName(*src, key);
        if (!name || name->empty() || !unicode::IsValidUtf8(*name)) continue;
        if (has_content(*name)) {
          for (AddedToken& t : *added) {
            if (t.content == *name) t.special = true;
          }
          continue;
        }
        AddedToken t;
        t.content = *name;
        t.special = true;
        t.normalized = false;
        if (auto id = model_->TokenToId(*name)) {
          t.id = *id;
        } else {
          int32_t next = static_cast<int32_t>(model_->VocabSize());
          for (const AddedToken& a : *added) next = std::max(next, a.id + 1);
          t.id = next;
        }
        added->push_back(std::move(t));
        changed = true;
      }
    }
  }
  if (changed || legacy_gpt2) added_.Build(*added, normalizer_.get());

  auto resolve = [&](const char* key) -> std::optional<int32_t> {
    auto name = TokenName(config, key);
    if (!name) name = TokenName(special_map, key);
    if (!name) return std::nullopt;
    return TokenToId(*name);
  };
  bos_id_ = resolve("bos_token");
  eos_id_ = resolve("eos_token");
  pad_id_ = resolve("pad_token");
  if (!eos_id_) {
    // No config: the usual end-of-text tokens, in order of how common they are.
    for (const char* name : {"</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>"}) {
      if (auto id = TokenToId(name)) {
        eos_id_ = id;
        break;
      }
    }
  }

  // transformers rebuilds the template of Llama / Gemma tokenizers from add_bos_token and
  // add_eos_token; the slow GPT-2 tokenizer prepends bos when add_bos_token is set.
  std::string cls = config.contains("tokenizer_class") && config["tokenizer_class"].is_string()
                        ? config["tokenizer_class"].get<std::string>()
                        : "";
  bool llama_like = absl::StartsWith(cls, "Llama") || absl::StartsWith(cls, "Gemma") ||
                    absl::StartsWith(cls, "CodeLlama");
  bool has_flags = config.contains("add_bos_token") || config.contains("add_eos_token");
  if ((llama_like && has_flags) || legacy_gpt2) {
    auto add_bos = internal::GetBool(config, "add_bos_token", legacy_gpt2 ? false : true, "config");
    auto add_eos = internal::GetBool(config, "add_eos_token", false, "config");
    if (!add_bos.ok()) return InFile(add_bos.status(), "tokenizer_config.json");
    if (!add_eos.ok()) return InFile(add_eos.status(), "tokenizer_config.json");
    std::vector<int32_t> prefix, suffix;
    std::vector<std::string> prefix_tokens, suffix_tokens;
    if (*add_bos && bos_id_) {
      prefix.push_back(*bos_id_);
      prefix_tokens.push_back(IdToToken(*bos_id_).value_or(""));
    }
    if (*add_eos && eos_id_) {
      suffix.push_back(*eos_id_);
      suffix_tokens.push_back(IdToToken(*eos_id_).value_or(""));
    }
    if (!legacy_gpt2 || !prefix.empty()) {
      post_processor_ = MakeAffixProcessor(std::move(prefix), std::move(prefix_tokens), std::move(suffix),
                                           std::move(suffix_tokens));
    }
  }
  return absl::OkStatus();
}

size_t Tokenizer::vocab_size() const {
  size_t n = model_->VocabSize();
  if (added_.max_id() >= 0) n = std::max(n, static_cast<size_t>(added_.max_id()) + 1);
  return n;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_.FindByContent(token)) return id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* t = added_.FindById(id)) return t->content;
  if (const std::string* s = model_->IdToToken(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* t = added_.FindById(id);
  return t != nullptr && t->special;
}

absl::Status Tokenizer::EncodeNormalized(std::string text, bool at_start, Encoding* out) const {
  std::vector<Piece> pieces;
  pieces.push_back({std::move(text), at_start});
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&pieces);
  for (const Piece& p : pieces) {
    absl::Status s = model_->TokenizeWithTokens(p.text, &out->ids, &out->tokens);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::EncodeSegment(std::string_view text, bool at_start, Encoding* out) const {
  std::string s(text);
  if (normalizer_ != nullptr) normalizer_->Normalize(&s);
  if (s.empty()) return absl::OkStatus();
  if (!added_.has_normalized()) return EncodeNormalized(std::move(s), at_start, out);
  std::vector<AddedVocabulary::Segment> segments;
  added_.Split(s, /*normalized_set=*/true, &segments);
  for (const auto& seg : segments) {
    if (seg.token >= 0) {
      // The token string is the matched text (with what lstrip/rstrip took), as in Rust.
      out->ids.push_back(added_.token(seg.token).id);
      out->tokens.emplace_back(s, seg.begin, seg.end - seg.begin);
      continue;
    }
    absl::Status st = EncodeNormalized(s.substr(seg.begin, seg.end - seg.begin), at_start && seg.begin == 0, out);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::EncodeSequence(std::string_view input, int32_t type_id, Encoding* enc) const {
  if (input.size() > kMaxEncodeBytes) {
    return absl::InvalidArgumentError(absl::StrCat("text of ", input.size(), " bytes exceeds the limit of ", kMaxEncodeBytes));
  }
  std::string sanitized;
  std::string_view text = input;
  if (!unicode::IsValidUtf8(input)) {
    sanitized = unicode::SanitizeUtf8(input);
    text = sanitized;
  }
  std::vector<AddedVocabulary::Segment> segments;
  added_.Split(text, /*normalized_set=*/false, &segments);
  for (const auto& seg : segments) {
    if (seg.token >= 0) {
      enc->ids.push_back(added_.token(seg.token).id);
      enc->tokens.emplace_back(text.substr(seg.begin, seg.end - seg.begin));
      continue;
    }
    absl::Status s = EncodeSegment(text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, enc);
    if (!s.ok()) return s;
  }
  enc->type_ids.assign(enc->ids.size(), type_id);
  return absl::OkStatus();
}

absl::StatusOr<Encoding> Tokenizer::Encode(std::string_view input, bool add_special_tokens) const {
  std::vector<Encoding> encodings(1);
  absl::Status s = EncodeSequence(input, 0, &encodings[0]);
  if (!s.ok()) return s;
  if (post_processor_ != nullptr) post_processor_->Process(&encodings, add_special_tokens);
  return MergeEncodings(&encodings);
}

absl::StatusOr<Encoding> Tokenizer::EncodePair(std::string_view a, std::string_view b, bool add_special_tokens) const {
  std::vector<Encoding> encodings(2);
  absl::Status s = EncodeSequence(a, 0, &encodings[0]);
  if (!s.ok()) return s;
  s = EncodeSequence(b, 1, &encodings[1]);
  if (!s.ok()) return s;
  if (post_processor_ != nullptr) post_processor_->Process(&encodings, add_special_tokens);
  return MergeEncodings(&encodings);
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* t = added_.FindById(id)) {
      if (skip_special_tokens && t->special) continue;
      tokens.push_back(t->content);
    } else if (const std::string* s = model_->IdToToken(id)) {
      tokens.push_back(*s);
    }
  }
  if (decoder_ != nullptr) {
    decoder_->DecodeChain(&tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out += tokens[i];
  }
  return out;
}

}  // namespace qeff::tokenizer
