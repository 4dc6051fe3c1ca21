#include "services/runner/embedder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {
namespace {

int64_t IntField(const nlohmann::json& config, const char* key, int64_t fallback) {
  if (!config.is_object()) return fallback;
  const auto it = config.find(key);
  return it != config.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

bool TakesInput(const device::Session& session, const std::string& name) {
  for (const auto& in : session.program().proto().specializations(0).inputs()) {
    if (in.name() == name) return true;
  }
  return false;
}

absl::Status CheckInputs(const EncoderInfo& info, int seq, const std::vector<EncoderInput>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const EncoderInput& in = inputs[i];
    if (in.ids.empty()) return absl::InvalidArgumentError(absl::StrCat("input ", i, " is empty"));
    const int n = static_cast<int>(in.ids.size());
    if (n > seq) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, " has ", n, " tokens but the qpc's seq_len is ", seq,
                                                     "; compile with a larger --seq-len or send a shorter input"));
    }
    if (n > info.max_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, " has ", n, " tokens but the model has positions for ",
                                                     info.max_tokens, "; send a shorter input"));
    }
    if (in.token_type_ids.empty()) continue;
    if (in.token_type_ids.size() != in.ids.size()) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, " has ", in.ids.size(), " token ids but ",
                                                     in.token_type_ids.size(),
                                                     " token_type_ids; pass one type per token (or none)"));
    }
    for (int32_t t : in.token_type_ids) {
      if (t < 0 || t >= info.type_vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("input ", i, " has token type ", t, "; this model takes 0..",
                                                       info.type_vocab_size - 1));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsEncoder(const device::Session& session) {
  return session.specializations().size() == 1 && session.specializations()[0].name == "Embedding";
}

EncoderInfo DescribeEncoder(const device::Session& session, const nlohmann::json& config) {
  EncoderInfo info;
  const int seq = session.specializations().empty() ? 0 : session.specializations()[0].seq_len;
  info.max_tokens = seq;
  if (!IsEncoder(session)) return info;
  info.token_type_input = TakesInput(session, "token_type_ids");
  std::string arch;
  if (config.is_object() && config.contains("architectures") && config["architectures"].is_array() &&
      !config["architectures"].empty() && config["architectures"][0].is_string()) {
    arch = config["architectures"][0].get<std::string>();
  }
  const bool roberta = arch.find("Roberta") != std::string::npos;
  // The HF config classes' defaults, as the exporter reads them (RobertaConfig: 1, BertConfig: 0).
  info.pad_token_id = static_cast<int32_t>(std::max<int64_t>(0, IntField(config, "pad_token_id", roberta ? 1 : 0)));
  info.type_vocab_size = info.token_type_input ? std::max<int64_t>(1, IntField(config, "type_vocab_size", 2)) : 1;
  // RoBERTa's positions start at pad_token_id + 1, so the table holds fewer tokens than positions.
  const int64_t positions = IntField(config, "max_position_embeddings", 0);
  if (roberta && positions > 0) {
    info.max_tokens = static_cast<int>(std::min<int64_t>(seq, std::max<int64_t>(0, positions - info.pad_token_id - 1)));
  }
  for (const auto& out : session.program().proto().specializations(0).outputs()) {
    if (out.name() != "logits") continue;
    const auto& shape = session.program().proto().specializations(0).tensors(out.tensor()).shape();
    if (shape.size() != 2) continue;
    info.classifier = true;
    info.num_labels = static_cast<int>(shape[1]);
  }
  if (info.classifier) {
    const nlohmann::json* id2label =
        config.is_object() && config.contains("id2label") && config["id2label"].is_object() ? &config["id2label"]
                                                                                           : nullptr;
    for (int i = 0; i < info.num_labels; ++i) {
      const std::string key = std::to_string(i);
      info.labels.push_back(id2label != nullptr && id2label->contains(key) && (*id2label)[key].is_string()
                                ? (*id2label)[key].get<std::string>()
                                : absl::StrCat("LABEL_", i));
    }
    if (config.is_object() && config.contains("problem_type") && config["problem_type"].is_string()) {
      info.problem_type = config["problem_type"].get<std::string>();
    }
  }
  return info;
}

absl::Status RunEncoder(device::Session& session, const EncoderInfo& info, const std::vector<EncoderInput>& inputs,
                        const std::function<absl::Status(size_t first, size_t rows)>& take) {
  if (!IsEncoder(session)) {
    return absl::FailedPreconditionError("this model is a causal LM; use Generate (this call needs an encoder qpc)");
  }
  const int batch = session.specializations()[0].batch_size;
  const int seq = session.specializations()[0].seq_len;
  QEFF_RETURN_IF_ERROR(CheckInputs(info, seq, inputs));
  for (size_t i = 0; i < inputs.size() && !info.token_type_input; ++i) {
    for (int32_t t : inputs[i].token_type_ids) {
      if (t != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", i, " has token type ", t, " but this model has one token type; drop token_type_ids"));
      }
    }
  }
  std::vector<int64_t> ids(static_cast<size_t>(batch) * seq), mask(ids.size()), types(ids.size());
  for (size_t first = 0; first < inputs.size(); first += batch) {
    std::fill(ids.begin(), ids.end(), info.pad_token_id);
    std::fill(mask.begin(), mask.end(), 0);
    std::fill(types.begin(), types.end(), 0);
    const size_t rows = std::min<size_t>(batch, inputs.size() - first);
    for (size_t r = 0; r < rows; ++r) {
      const EncoderInput& in = inputs[first + r];
      for (size_t t = 0; t < in.ids.size(); ++t) {
        ids[r * seq + t] = in.ids[t];
        mask[r * seq + t] = 1;
        if (!in.token_type_ids.empty()) types[r * seq + t] = in.token_type_ids[t];
      }
    }
    device::NamedInputs feeds = {{"input_ids", device::HostTensor::I64(ids.data(), {batch, seq})},
                                 {"attention_mask", device::HostTensor::I64(mask.data(), {batch, seq})}};
    if (info.token_type_input) feeds.push_back({"token_type_ids", device::HostTensor::I64(types.data(), {batch, seq})});
    QEFF_RETURN_IF_ERROR(session.Run(0, feeds));
    QEFF_RETURN_IF_ERROR(take(first, rows));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<float>>> Embed(device::Session& session, const EncoderInfo& info,
                                                      const std::vector<EncoderInput>& inputs,
                                                      const EmbedOptions& options) {
  const std::string& pool = options.pooling.empty() ? std::string("mean") : options.pooling;
  if (pool != "mean" && pool != "cls" && pool != "max" && pool != "pooler") {
    return absl::InvalidArgumentError(absl::StrCat("unknown pooling '", pool, "'; use mean, cls, max or pooler"));
  }
  if (info.classifier) {
    return absl::FailedPreconditionError(
        "this model is a sequence classifier (it outputs logits, not hidden states); use Classify (qeffctl classify)");
  }
  const int seq = IsEncoder(session) ? session.specializations()[0].seq_len : 0;
  std::vector<std::vector<float>> out;
  out.reserve(inputs.size());
  QEFF_RETURN_IF_ERROR(RunEncoder(session, info, inputs, [&](size_t first, size_t rows) -> absl::Status {
    QEFF_ASSIGN_OR_RETURN(device::HostTensor hidden, session.Output("last_hidden_state"));
    if (hidden.shape.size() != 3 || hidden.shape[1] != seq) {
      return absl::FailedPreconditionError("last_hidden_state is not [batch, seq_len, hidden]");
    }
    const int64_t H = hidden.shape[2];
    const float* h = static_cast<const float*>(hidden.data);
    const float* pooled = nullptr;
    if (pool == "pooler") {
      auto p = session.Output("pooler_output");
      if (!p.ok()) {
        return absl::InvalidArgumentError("this model has no pooler (its checkpoint has no pooler.dense weights); "
                                          "use pooling mean, cls or max");
      }
      pooled = static_cast<const float*>(p->data);
    }
    for (size_t r = 0; r < rows; ++r) {
      const int64_t n = static_cast<int64_t>(inputs[first + r].ids.size());
      const float* row = h + r * seq * H;
      std::vector<float> e(H, 0.0f);
      if (pool == "cls") {
        std::copy(row, row + H, e.begin());
      } else if (pool == "pooler") {
        std::copy(pooled + r * H, pooled + (r + 1) * H, e.begin());
      } else if (pool == "max") {
        std::fill(e.begin(), e.end(), std::numeric_limits<float>::lowest());
        for (int64_t t = 0; t < n; ++t)
          for (int64_t d = 0; d < H; ++d) e[d] = std::max(e[d], row[t * H + d]);
      } else {
        // sum(h * mask) / max(sum(mask), 1e-9), as sentence-transformers computes it.
        std::vector<double> acc(H, 0.0);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t d = 0; d < H; ++d) acc[d] += row[t * H + d];
        for (int64_t d = 0; d < H; ++d) e[d] = static_cast<float>(acc[d] / std::max<double>(n, 1e-9));
      }
      if (options.normalize) {
        double norm = 0;
        for (float v : e) norm += static_cast<double>(v) * v;
        const float inv = static_cast<float>(1.0 / std::max(std::sqrt(norm), 1e-12));
        for (float& v : e) v *= inv;
      }
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace qeff::runner
