// Added tokens ("added_tokens" of tokenizer.json): matched in the input before the model runs,
// leftmost-longest (so Gemma's "\n\n" wins over "\n"). Tokens with `normalized: false` are
// matched in the raw text; those with `normalized: true` in each normalized segment, against
// their normalized content. `single_word` requires no word character on either side; `lstrip` /
// `rstrip` swallow the whitespace next to the match.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/tokenizer/string_map.h"

namespace qeff::tokenizer {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = true;
};

class AddedVocabulary {
 public:
  // A piece of the input: either text (token < 0) or the added token at index `token`.
  struct Segment {
    size_t begin;
    size_t end;
    int token;
  };

  // `normalizer` (may be null) normalizes the content of `normalized` tokens for matching.
  // Tokens with empty content are ignored; for a repeated id the first entry wins.
  void Build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Cuts `text` into segments, matching the raw (normalized=false) or the normalized token set.
  void Split(std::string_view text, bool normalized_set, std::vector<Segment>* out) const;
  bool has_normalized() const { return !normalized_.empty(); }

  const AddedToken& token(int index) const { return tokens_[index]; }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* FindById(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  std::optional<int32_t> FindByContent(std::string_view content) const {
    auto it = by_content_.find(content);
    if (it == by_content_.end()) return std::nullopt;
    return tokens_[it->second].id;
  }
  int32_t max_id() const { return max_id_; }

 private:
  // A byte trie over the patterns of one set.
  class Matcher {
   public:
    void Add(std::string_view pattern, int token);
    bool empty() const { return nodes_.size() <= 1; }
    // Longest pattern starting at `pos`: returns its length and token, or 0.
    size_t LongestAt(std::string_view text, size_t pos, int* token) const;
    bool MayStartWith(unsigned char b) const { return first_[b]; }

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int>> children;
      int token = -1;
    };
    std::vector<Node> nodes_{Node{}};
    bool first_[256] = {};
  };

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, int> by_id_;
  StringMap<int> by_content_;
  Matcher raw_;
  Matcher normalized_;
  int32_t max_id_ = -1;
};

}  // namespace qeff::tokenizer
