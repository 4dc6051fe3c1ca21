// The result of Tokenizer::Encode and Tokenizer::EncodePair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qeff::tokenizer {

struct Encoding {
  std::vector<int32_t> ids;
  // The string of each id, as the Rust library reports it: the vocabulary string for model
  // pieces, the matched text for added tokens (including whitespace an lstrip/rstrip took), and
  // for a Unigram unknown piece the text it covers.
  std::vector<std::string> tokens;
  // The segment (token type) id of each token: what the post-processor's template assigns
  // (TemplateProcessing `$A:0 $B:1`, BertProcessing 0…0 1…1, RobertaProcessing all 0). Without
  // a post-processor, 0 for the first sequence and 1 for the second.
  std::vector<int32_t> type_ids;
};

}  // namespace qeff::tokenizer
