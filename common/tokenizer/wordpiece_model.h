// WordPiece (greedy longest-match-first with a continuing-subword prefix, BERT) and WordLevel
// (whole-word lookup) models.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "common/tokenizer/model.h"

namespace qeff::tokenizer {

class WordPieceModel : public Model {
 public:
  // Defaults as in the Rust library: unk "[UNK]", prefix "##", 100 characters per word.
  static absl::StatusOr<std::unique_ptr<WordPieceModel>> FromJson(const nlohmann::json& j);

  // Words longer than max_input_chars_per_word, or with no complete split, become unk.
  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override { return vocab_.Find(token); }
  const std::string* IdToToken(int32_t id) const override { return vocab_.Token(id); }
  size_t VocabSize() const override { return vocab_.id_bound(); }

 private:
  Vocab vocab_;
  std::string unk_token_;
  std::string prefix_;
  size_t max_chars_ = 100;
};

class WordLevelModel : public Model {
 public:
  static absl::StatusOr<std::unique_ptr<WordLevelModel>> FromJson(const nlohmann::json& j);

  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override { return vocab_.Find(token); }
  const std::string* IdToToken(int32_t id) const override { return vocab_.Token(id); }
  size_t VocabSize() const override { return vocab_.id_bound(); }

 private:
  Vocab vocab_;
  std::string unk_token_;
};

}  // namespace qeff::tokenizer
