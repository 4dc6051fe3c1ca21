// Incremental detokenization for streamed generation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qeff::tokenizer {

class Tokenizer;

// Push returns only complete text: never half of a UTF-8 character or of a byte-fallback
// sequence (text ending in U+FFFD is held back until the next token or Flush). The concatenation
// of all Push results and Flush equals tokenizer.Decode(all ids, skip_special_tokens).
//
// It keeps a short window of recent ids and decodes window and window + new id, emitting the
// difference (the approach of the Rust library's DecodeStream), so a step costs O(window), not
// O(sequence). The tokenizer must outlive the decoder. Not thread-safe.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);
  std::string Push(int32_t id);
  // Returns whatever is still held back and resets the decoder for a new sequence.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  // window_[0, prefix_ids_) is context whose text (prefix_text_) was already emitted; the ids
  // after it are pending.
  std::vector<int32_t> window_;
  size_t prefix_ids_ = 0;
  std::string prefix_text_;
};

}  // namespace qeff::tokenizer
