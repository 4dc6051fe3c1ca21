#include "common/tokenizer/model.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/bpe_model.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unigram_model.h"
#include "common/tokenizer/wordpiece_model.h"

namespace qeff::tokenizer {

absl::StatusOr<Vocab> Vocab::FromJson(const nlohmann::json& j, std::string_view component) {
  if (!j.is_object()) return internal::ComponentError(component, "\"vocab\" must be an object of token -> id");
  Vocab v;
  v.to_id_.reserve(j.size());
  int64_t max_id = -1;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return internal::ComponentError(component, absl::StrCat("vocab id of \"", it.key(), "\" is not an integer"));
    }
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > kMaxTokenId) {
      return internal::ComponentError(component, absl::StrCat("vocab id ", id, " out of range"));
    }
    max_id = std::max(max_id, id);
    v.to_id_.emplace(it.key(), static_cast<int32_t>(id));
  }
  // A dense id space is what every real vocabulary has; refuse wildly sparse ones.
  if (max_id >= 2 * static_cast<int64_t>(v.to_id_.size()) + 1024) {
    return internal::ComponentError(component, absl::StrCat("vocab ids are too sparse (largest ", max_id,
                                                            " for ", v.to_id_.size(), " tokens)"));
  }
  v.to_token_.resize(static_cast<size_t>(max_id + 1));
  v.has_token_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : v.to_id_) {
    // Two tokens sharing an id: keep the lexicographically smallest, so loading is deterministic.
    if (!v.has_token_[id] || token < v.to_token_[id]) {
      v.to_token_[id] = token;
      v.has_token_[id] = true;
    }
  }
  return v;
}

absl::Status Model::TokenizeWithTokens(std::string_view word, std::vector<int32_t>* ids,
                                       std::vector<std::string>* tokens) const {
  size_t first = ids->size();
  absl::Status s = Tokenize(word, ids);
  if (!s.ok()) return s;
  for (size_t i = first; i < ids->size(); ++i) {
    const std::string* token = IdToToken((*ids)[i]);
    tokens->push_back(token != nullptr ? *token : std::string());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> ModelFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return internal::ComponentError("model", "must be a JSON object");
  std::string type;
  if (j.contains("type")) {
    auto t = internal::GetType(j, "model");
    if (!t.ok()) return t.status();
    type = *t;
  } else if (j.contains("merges")) {
    type = "BPE";
  } else if (j.contains("continuing_subword_prefix") || j.contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else if (j.contains("vocab") && j["vocab"].is_array()) {
    type = "Unigram";
  } else {
    type = "WordLevel";
  }
  if (type == "BPE") {
    auto m = BpeModel::FromJson(j);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(*m));
  }
  if (type == "WordPiece") {
    auto m = WordPieceModel::FromJson(j);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(*m));
  }
  if (type == "Unigram") {
    auto m = UnigramModel::FromJson(j);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(*m));
  }
  if (type == "WordLevel") {
    auto m = WordLevelModel::FromJson(j);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(*m));
  }
  return internal::ComponentError("model", absl::StrCat("unsupported type \"", type, "\""));
}

}  // namespace qeff::tokenizer
