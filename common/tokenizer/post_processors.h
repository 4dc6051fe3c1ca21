// Post-processors of tokenizer.json ("post_processor"): TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel (offsets only, so a no-op here) and Sequence. They add the special
// tokens of the single-sequence template when add_special_tokens is true.
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
  virtual void Process(Encoding* encoding, bool add_special_tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& j);

// `[prefix...] $A [suffix...]`: what transformers builds for Llama/Gemma from add_bos_token /
// add_eos_token, and what the slow GPT-2 tokenizer does with add_bos_token.
std::unique_ptr<PostProcessor> MakeAffixProcessor(std::vector<int32_t> prefix_ids,
                                                  std::vector<std::string> prefix_tokens,
                                                  std::vector<int32_t> suffix_ids,
                                                  std::vector<std::string> suffix_tokens);

}  // namespace qeff::tokenizer
