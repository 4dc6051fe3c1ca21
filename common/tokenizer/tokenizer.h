// HuggingFace tokenizer.json in C++: loading, encoding and decoding with the results of the Rust
// `tokenizers` library (the reference behind transformers' fast tokenizers).
//
// Encode pipeline (per input text):
//   1. added tokens with normalized=false are cut out of the raw text (leftmost-longest);
//   2. each remaining segment is normalized, then added tokens with normalized=true are cut out;
//   3. the pre-tokenizer splits each segment into words, the model turns words into ids;
//   4. the post-processor sets the type ids and, with add_special_tokens, adds the template's
//      special tokens (single sequence or pair, see EncodePair).
// Invalid UTF-8 input is not an error: every maximal invalid subsequence is replaced by U+FFFD
// first (as a JavaScript or Python caller's string would be), then encoded like any other text.
//
// Decode maps ids to tokens (ids outside the vocabulary are skipped; with skip_special_tokens
// the added tokens marked special are skipped), runs the decoder chain and joins the result.
// The output is always valid UTF-8.
//
// Thread-safety: a loaded Tokenizer is immutable apart from an internal, locked BPE word cache
// (and per-thread Unigram scratch buffers); Encode, EncodePair and Decode may be called from any
// number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/encoding.h"

namespace qeff::tokenizer {

class Model;
class Normalizer;
class PreTokenizer;
class PostProcessor;
class Decoder;

// Size bounds for files read from a model folder.
inline constexpr uint64_t kMaxTokenizerJsonBytes = 512ull << 20;
inline constexpr uint64_t kMaxSideFileBytes = 64ull << 20;  // configs, vocab.json, merges.txt
// Longest text Encode accepts.
inline constexpr size_t kMaxEncodeBytes = 256u << 20;

class Tokenizer {
 public:
  // dir holds tokenizer.json (+ optional tokenizer_config.json / special_tokens_map.json), or the
  // older GPT-2 pair vocab.json + merges.txt (+ tokenizer_config.json). Errors name the file and
  // the component (e.g. "tokenizer pre_tokenizer Split: invalid regex ...").
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::filesystem::path& dir);
  // From file contents; the config strings may be empty.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view tokenizer_config_json = {},
                                                             std::string_view special_tokens_map_json = {});
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocabAndMerges(
      std::string_view vocab_json, std::string_view merges_txt,
      std::string_view tokenizer_config_json = {}, std::string_view special_tokens_map_json = {});

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Fails only for text longer than kMaxEncodeBytes or a model whose unk token is missing.
  // type_ids are those the post-processor's single template gives (0 without one).
  absl::StatusOr<Encoding> Encode(std::string_view text, bool add_special_tokens) const;
  // A pair of sequences, as the Rust library's encode(a, b): each is encoded alone (type id 0 for
  // a, 1 for b), then the post-processor's pair form applies (TemplateProcessing `pair`,
  // `[CLS] a [SEP] b [SEP]` for BertProcessing, `<s> a </s></s> b </s>` for RobertaProcessing,
  // see post_processors.h). Without add_special_tokens only the type ids are set. Without a
  // post-processor: a then b, type ids 0 then 1. Same limits and errors as Encode.
  absl::StatusOr<Encoding> EncodePair(std::string_view a, std::string_view b, bool add_special_tokens) const;
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  std::optional<int32_t> eos_token_id() const { return eos_id_; }
  std::optional<int32_t> bos_token_id() const { return bos_id_; }
  std::optional<int32_t> pad_token_id() const { return pad_id_; }
  // 1 + largest id (incl. added tokens).
  size_t vocab_size() const;

  // Added tokens first, then the model vocabulary.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token string of an id, or nullopt when out of range.
  std::optional<std::string> IdToToken(int32_t id) const;
  // True for added tokens marked special (what Decode skips).
  bool IsSpecial(int32_t id) const;

 private:
  Tokenizer();
  // Steps 1-3 for one sequence; every type id is `type_id`.
  absl::Status EncodeSequence(std::string_view text, int32_t type_id, Encoding* out) const;
  absl::Status EncodeSegment(std::string_view text, bool at_start, Encoding* out) const;
  absl::Status EncodeNormalized(std::string text, bool at_start, Encoding* out) const;
  absl::Status ApplyConfig(std::string_view tokenizer_config_json,
                           std::string_view special_tokens_map_json, bool legacy_gpt2,
                           std::vector<AddedToken>* added);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  std::optional<int32_t> eos_id_, bos_id_, pad_id_;
};

}  // namespace qeff::tokenizer

#include "common/tokenizer/stream_decoder.h"  // IWYU pragma: export
