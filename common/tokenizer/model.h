// The model of tokenizer.json ("model"): turns one pre-tokenized word into ids. BPE lives in
// bpe_model.h, WordPiece and WordLevel in wordpiece_model.h, Unigram in unigram_model.h;
// ModelFromJson picks by "type", or by the fields present for older files without one (merges ->
// BPE, WordPiece fields -> WordPiece, a list of [piece, score] -> Unigram, otherwise a token -> id
// map -> WordLevel).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/tokenizer/string_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qeff::tokenizer {

// Largest id accepted anywhere (vocabularies are far smaller; this bounds memory on bad input).
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// token <-> id for a model. Ids are dense enough to index a vector (validated on load).
class Vocab {
 public:
  // From a JSON object {"token": id, ...}; `component` names the source in errors.
  static absl::StatusOr<Vocab> FromJson(const nlohmann::json& j, std::string_view component);

  std::optional<int32_t> Find(std::string_view token) const {
    auto it = to_id_.find(token);
    if (it == to_id_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* Token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= to_token_.size() || !has_token_[id]) return nullptr;
    return &to_token_[id];
  }
  size_t size() const { return to_id_.size(); }
  size_t id_bound() const { return to_token_.size(); }  // 1 + largest id

 private:
  StringMap<int32_t> to_id_;
  std::vector<std::string> to_token_;
  std::vector<bool> has_token_;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one non-empty word (valid UTF-8). Fails only when the model needs its
  // unknown token and the vocabulary lacks it.
  virtual absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const = 0;
  // Tokenize, and also appends the string of each new id to `tokens`. The default is the
  // vocabulary string of the id; Unigram reports an unknown piece as the text it covers.
  virtual absl::Status TokenizeWithTokens(std::string_view word, std::vector<int32_t>* ids,
                                          std::vector<std::string>* tokens) const;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  // nullptr when the id is not in the vocabulary.
  virtual const std::string* IdToToken(int32_t id) const = 0;
  // 1 + largest id.
  virtual size_t VocabSize() const = 0;
};

absl::StatusOr<std::unique_ptr<Model>> ModelFromJson(const nlohmann::json& j);

}  // namespace qeff::tokenizer
