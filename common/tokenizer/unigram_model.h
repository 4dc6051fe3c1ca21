// The Unigram model of tokenizer.json (SentencePiece Unigram: XLM-RoBERTa, bge-m3,
// multilingual-e5, T5, ALBERT, mBART, ...):
//   "model": {"type": "Unigram", "unk_id": 3, "vocab": [["<s>", 0.0], ["▁the", -3.2], ...],
//             "byte_fallback": false}
// The id of a piece is its index in "vocab" (a repeated piece takes its last index, as in the
// Rust library).
//
// Tokenize segments a word by Viterbi over its characters, maximizing the sum of piece scores,
// exactly as the Rust library's optimized path (after SentencePiece's unigram_model.cc):
//   - pieces are found with a byte trie (common-prefix search), so a word of n bytes costs
//     O(n · longest piece) steps;
//   - a character that starts no piece of exactly its own length may also be covered alone by
//     the unknown piece, scored min(score) - 10;
//   - on equal scores the path found first (earlier start) stays;
//   - consecutive unknown pieces are fused into one;
//   - a fused unknown text that is itself in the vocabulary becomes that piece; otherwise, with
//     byte_fallback and every <0xNN> of its UTF-8 bytes in the vocabulary, those byte pieces;
//     otherwise unk_id. Its token string is the text it covers, not the unk piece (Rust behaviour).
// A word needing the unknown piece when unk_id is null is an INVALID_ARGUMENT error, as in Rust.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "common/tokenizer/model.h"
#include "common/tokenizer/string_map.h"

namespace qeff::tokenizer {

class UnigramModel : public Model {
 public:
  // `vocab` is (piece, score) in id order; unk_id, when set, must index it.
  static absl::StatusOr<std::unique_ptr<UnigramModel>> Create(std::vector<std::pair<std::string, double>> vocab,
                                                              std::optional<int32_t> unk_id, bool byte_fallback);
  static absl::StatusOr<std::unique_ptr<UnigramModel>> FromJson(const nlohmann::json& j);

  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  absl::Status TokenizeWithTokens(std::string_view word, std::vector<int32_t>* ids,
                                  std::vector<std::string>* tokens) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  const std::string* IdToToken(int32_t id) const override;
  size_t VocabSize() const override { return pieces_.size(); }

 private:
  // A byte trie laid out breadth-first: the children of a node are contiguous and sorted by
  // label, so a step is a binary search over them. `value` is the id of the piece ending here.
  struct TrieNode {
    int32_t first_child = 0;
    int32_t value = -1;
    uint16_t num_children = 0;
    uint8_t label = 0;
  };
  // One piece of the best path: word[begin, end), and whether it is (fused) unknown.
  struct Span {
    size_t begin;
    size_t end;
    int32_t id;
    bool unknown;
  };

  UnigramModel() = default;
  void BuildTrie();
  absl::Status Viterbi(std::string_view word, std::vector<Span>* spans) const;
  absl::Status Emit(std::string_view word, const std::vector<Span>& spans, std::vector<int32_t>* ids,
                    std::vector<std::string>* tokens) const;

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  StringMap<int32_t> ids_;
  std::vector<TrieNode> trie_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  double unk_score_ = 0;
  int32_t byte_ids_[256];
};

}  // namespace qeff::tokenizer
