// Sequence classification and reranking with an encoder qpc whose head outputs logits
// [batch, num_labels] (BertForSequenceClassification, XLMRobertaForSequenceClassification, ...):
// the engine behind Runner.Classify, `qeffctl classify` and HTTP POST /v1/rerank. Inputs are
// token ids (with optional token types) or texts / text pairs tokenized with the model's own
// tokenizer (its pair template: [CLS] a [SEP] b [SEP] with token types 0 / 1 for BERT,
// <s> a </s></s> b </s> for XLM-R). Batches beyond the compiled batch size run in several passes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "device/session.h"
#include "services/runner/embedder.h"

namespace qeff::runner {

// One input: token ids (EncoderInput), or a text with an optional second text of the pair.
struct ClassifyInput {
  bool is_text = false;
  EncoderInput tokens;  // !is_text
  std::string text;                       // is_text
  std::optional<std::string> text_pair;   // is_text; none = a single text
};

// Token ids of every input: ids as given, texts through `tok` with special tokens. The
// tokenizer's token types are kept only when the model takes token_type_ids (XLM-R's one type
// ignores them, as its HF tokenizer gives zeros). FAILED_PRECONDITION (saying to send token ids)
// when a text comes and `tok` is null.
absl::StatusOr<std::vector<EncoderInput>> TokenizeInputs(const tokenizer::Tokenizer* tok, const EncoderInfo& info,
                                                         const std::vector<ClassifyInput>& inputs);

struct Classification {
  std::vector<float> logits;
  // sigmoid(logit) for a single label (a cross-encoder's relevance), else softmax over the labels.
  std::vector<float> scores;
};

// Scores of one row of logits, as above.
std::vector<float> ScoresFromLogits(const std::vector<float>& logits);

// One classification per input. FAILED_PRECONDITION when the model is not a classifier (a causal
// LM or an embedding model); INVALID_ARGUMENT for bad inputs (RunEncoder). The session must not
// be used by anyone else meanwhile.
absl::StatusOr<std::vector<Classification>> Classify(device::Session& session, const EncoderInfo& info,
                                                     const std::vector<EncoderInput>& inputs);

}  // namespace qeff::runner
