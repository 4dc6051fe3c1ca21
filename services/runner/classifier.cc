#include "services/runner/classifier.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {

absl::StatusOr<std::vector<EncoderInput>> TokenizeInputs(const tokenizer::Tokenizer* tok, const EncoderInfo& info,
                                                         const std::vector<ClassifyInput>& inputs) {
  std::vector<EncoderInput> out;
  out.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ClassifyInput& in = inputs[i];
    if (!in.is_text) {
      out.push_back(in.tokens);
      continue;
    }
    if (tok == nullptr) {
      return absl::FailedPreconditionError(
          "the model has no tokenizer files (tokenizer.json); send token ids instead of text");
    }
    EncoderInput e;
    if (!in.text_pair) {
      QEFF_ASSIGN_OR_RETURN(tokenizer::Encoding enc, tok->Encode(in.text, /*add_special_tokens=*/true));
      e.ids = std::move(enc.ids);
    } else {
      QEFF_ASSIGN_OR_RETURN(tokenizer::Encoding enc, tok->EncodePair(in.text, *in.text_pair, /*add_special_tokens=*/true));
      e.ids = std::move(enc.ids);
      if (info.token_type_input) e.token_type_ids = std::move(enc.type_ids);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<float> ScoresFromLogits(const std::vector<float>& logits) {
  std::vector<float> scores(logits.size());
  if (logits.size() == 1) {
    scores[0] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[0]))));
    return scores;
  }
  const double top = logits.empty() ? 0.0 : *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(l - top);
  for (size_t i = 0; i < logits.size(); ++i) scores[i] = static_cast<float>(std::exp(logits[i] - top) / sum);
  return scores;
}

absl::StatusOr<std::vector<Classification>> Classify(device::Session& session, const EncoderInfo& info,
                                                     const std::vector<EncoderInput>& inputs) {
  if (IsEncoder(session) && !info.classifier) {
    return absl::FailedPreconditionError(
        "this model is an embedding model (no classification head); use Embed (qeffctl embed), or export a "
        "*ForSequenceClassification checkpoint");
  }
  std::vector<Classification> out;
  out.reserve(inputs.size());
  QEFF_RETURN_IF_ERROR(RunEncoder(session, info, inputs, [&](size_t, size_t rows) -> absl::Status {
    QEFF_ASSIGN_OR_RETURN(device::HostTensor logits, session.Output("logits"));
    if (logits.shape.size() != 2 || logits.shape[1] != info.num_labels) {
      return absl::FailedPreconditionError("the model's logits are not [batch, num_labels]");
    }
    const float* l = static_cast<const float*>(logits.data);
    for (size_t r = 0; r < rows; ++r) {
      Classification c;
      c.logits.assign(l + r * info.num_labels, l + (r + 1) * info.num_labels);
      c.scores = ScoresFromLogits(c.logits);
      out.push_back(std::move(c));
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace qeff::runner
