// Byte-pair encoding as in the Rust `tokenizers` BPE model: merges in rank order (lowest rank
// first, leftmost on ties), `byte_fallback` to <0xNN> tokens, `unk_token` with `fuse_unk`,
// `continuing_subword_prefix` / `end_of_word_suffix`, and `ignore_merges` (whole-word vocabulary
// hits first). Dropout is ignored: inference is deterministic. Results are cached per word.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/container/flat_hash_map.h"
#include "common/tokenizer/string_map.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/model.h"

namespace qeff::tokenizer {

class BpeModel : public Model {
 public:
  struct Options {
    std::optional<std::string> unk_token;
    std::string continuing_subword_prefix;
    std::string end_of_word_suffix;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;
  };

  // `merges` holds (left, right) pairs in rank order; every token and every merged token must be
  // in `vocab`.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      Vocab vocab, const std::vector<std::pair<std::string_view, std::string_view>>& merges,
      Options options);
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& j);
  // GPT-2's older pair of files: vocab.json text and merges.txt text.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromVocabAndMerges(std::string_view vocab_json,
                                                                      std::string_view merges_txt);

  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override { return vocab_.Find(token); }
  const std::string* IdToToken(int32_t id) const override { return vocab_.Token(id); }
  size_t VocabSize() const override { return vocab_.id_bound(); }

 private:
  struct MergeResult {
    int32_t rank;
    int32_t new_id;
  };
  BpeModel() = default;
  absl::Status MergeWord(std::string_view word, std::vector<int32_t>* ids) const;
  std::optional<int32_t> SymbolId(std::string_view ch, bool first, bool last) const;

  Vocab vocab_;
  Options options_;
  absl::flat_hash_map<uint64_t, MergeResult> merges_;
  // Fast path for single characters when no prefix/suffix decorates them.
  absl::flat_hash_map<char32_t, int32_t> char_ids_;
  bool plain_chars_ = true;
  int32_t byte_ids_[256];
  bool have_all_bytes_ = false;
  std::optional<int32_t> unk_id_;

  // Word -> ids. Bounded: cleared when full. Shared lock for reads (Encode is const and may run
  // on many threads).
  mutable std::shared_mutex cache_mu_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace qeff::tokenizer
