// Post-processors of tokenizer.json ("post_processor"): TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel (offsets only, so a no-op here) and Sequence, with the Rust
// library's `process_encodings` semantics for one sequence or a pair:
//   - TemplateProcessing: the `single` or `pair` template; every sequence takes the type id the
//     template gives it (`$A:0`, `$B:1`) even without add_special_tokens, and the special tokens
//     (with their type ids) are added only with add_special_tokens. A missing `pair` is
//     `$A:0 $B:1`.
//   - BertProcessing: `[CLS] A [SEP]` (type 0) and `B [SEP]` (type 1); without
//     add_special_tokens the sequences keep their type ids (0 and 1).
//   - RobertaProcessing: every type id becomes 0 (with or without add_special_tokens), then
//     `<s> A </s>` and `</s> B </s>`.
//   - Sequence: each processor in turn on the sequences.
// The caller concatenates the sequences afterwards (Encoding::merge in the Rust library).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "common/tokenizer/encoding.h"

namespace qeff::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // `encodings` holds one sequence or two (a pair), each with its type ids (0 for the first
  // sequence, 1 for the second). Replaces them by the processed sequences, in output order.
  virtual void Process(std::vector<Encoding>* encodings, bool add_special_tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& j);

// `[prefix...] $A [suffix...]`, and for pairs `prefix A suffix prefix:1 B:1 suffix:1`: what
// transformers builds for Llama/Gemma from add_bos_token / add_eos_token, and what the slow GPT-2
// tokenizer does with add_bos_token.
std::unique_ptr<PostProcessor> MakeAffixProcessor(std::vector<int32_t> prefix_ids,
                                                  std::vector<std::string> prefix_tokens,
                                                  std::vector<int32_t> suffix_ids,
                                                  std::vector<std::string> suffix_tokens);

// Concatenates processed sequences into one Encoding (moves from `encodings`).
Encoding MergeEncodings(std::vector<Encoding>* encodings);

}  // namespace qeff::tokenizer
