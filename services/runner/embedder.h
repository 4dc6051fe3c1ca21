// Encoder qpcs (BERT, RoBERTa, XLM-R), as QEfficient's QEFFAutoModel + PooledModel run them:
// right-pad each sequence to the compiled seq_len with the model's pad id and mask 0, run the
// Embedding specialization batch by batch (inputs beyond the compiled batch size go in further
// runs), then pool the last hidden state over the real tokens (Embed) or read the
// classification head's logits (classifier.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "device/session.h"

namespace qeff::runner {

// What the runner needs to know about an encoder beyond its compiled shapes, from the program
// and the qpc's config.json (DescribeEncoder).
struct EncoderInfo {
  int32_t pad_token_id = 0;        // pads the batch (RoBERTa's position ids are computed from the ids)
  bool token_type_input = false;   // the program takes token_type_ids
  int64_t type_vocab_size = 1;     // token type ids must be below this
  int max_tokens = 0;              // longest input (the compiled seq_len, or fewer when positions run out)
  bool classifier = false;         // outputs logits [batch, num_labels] (a *ForSequenceClassification)
  int num_labels = 0;
  std::vector<std::string> labels;  // id2label in label order ("LABEL_<i>" for labels config.json leaves out)
  std::string problem_type;         // config.json's, "" when unset
};

// `config` is the model's config.json (null or {} when there is none).
EncoderInfo DescribeEncoder(const device::Session& session, const nlohmann::json& config);

// One input sequence; empty token_type_ids means all 0.
struct EncoderInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> token_type_ids;
};

struct EmbedOptions {
  std::string pooling = "mean";  // mean | cls | max | pooler
  bool normalize = false;        // L2, like torch.nn.functional.normalize
};

// True when the session is an encoder (its single specialization takes attention_mask).
bool IsEncoder(const device::Session& session);

// Runs the Embedding specialization over `inputs`, batch_size rows at a time, and calls
// take(first, rows) after each run while the session's outputs hold rows [first, first + rows).
// INVALID_ARGUMENT (naming the input) for an empty or too long input, token types that do not
// match the ids or the model, before anything runs. The session must not be used by anyone else
// meanwhile.
absl::Status RunEncoder(device::Session& session, const EncoderInfo& info, const std::vector<EncoderInput>& inputs,
                        const std::function<absl::Status(size_t first, size_t rows)>& take);

// One embedding per input sequence.
absl::StatusOr<std::vector<std::vector<float>>> Embed(device::Session& session, const EncoderInfo& info,
                                                      const std::vector<EncoderInput>& inputs,
                                                      const EmbedOptions& options);

}  // namespace qeff::runner
