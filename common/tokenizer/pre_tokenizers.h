// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): ByteLevel (with or without its GPT-2 regex,
// add_prefix_space), Split (literal or regex pattern, every behavior, invert), BertPreTokenizer,
// Metaspace (prepend_scheme, split), Whitespace, WhitespaceSplit, Punctuation, Digits,
// CharDelimiterSplit and Sequence. They cut a normalized segment into the words the model sees.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace qeff::tokenizer {

// One piece of text on its way to the model.
struct Piece {
  std::string text;
  // True when the piece begins at offset 0 of the original input (Metaspace "first").
  bool at_start = false;
};

// How the matches of a split pattern become pieces (the Rust SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Cuts `in` at the sorted, non-overlapping byte ranges `matches` (optionally inverted) following
// `behavior`, and appends the non-empty pieces to `out`.
void SplitByMatches(const Piece& in, const std::vector<std::pair<size_t, size_t>>& matches,
                    bool invert, SplitBehavior behavior, std::vector<Piece>* out);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by the pieces it splits into (empty pieces are dropped).
  virtual void PreTokenize(std::vector<Piece>* pieces) const = 0;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& j);
// The GPT-2 pre-tokenizer (ByteLevel, regex on) for the vocab.json + merges.txt format.
std::unique_ptr<PreTokenizer> MakeByteLevelPreTokenizer(bool add_prefix_space);

}  // namespace qeff::tokenizer
