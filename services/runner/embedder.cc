#include "services/runner/embedder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {

bool IsEncoder(const device::Session& session) {
  return session.specializations().size() == 1 && session.specializations()[0].name == "Embedding";
}

absl::StatusOr<std::vector<std::vector<float>>> Embed(device::Session& session,
                                                      const std::vector<std::vector<int32_t>>& inputs,
                                                      const EmbedOptions& options) {
  if (!IsEncoder(session)) {
    return absl::FailedPreconditionError("this model is a causal LM; use Generate (Embed needs an encoder qpc)");
  }
  const std::string& pool = options.pooling.empty() ? std::string("mean") : options.pooling;
  if (pool != "mean" && pool != "cls" && pool != "max" && pool != "pooler") {
    return absl::InvalidArgumentError(absl::StrCat("unknown pooling '", pool, "'; use mean, cls, max or pooler"));
  }
  const int batch = session.specializations()[0].batch_size;
  const int seq = session.specializations()[0].seq_len;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) return absl::InvalidArgumentError(absl::StrCat("input ", i, " is empty"));
    if (static_cast<int>(inputs[i].size()) > seq) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, " has ", inputs[i].size(),
                                                     " tokens but the qpc's seq_len is ", seq,
                                                     "; compile with a larger --seq-len"));
    }
  }
  std::vector<int64_t> ids(static_cast<size_t>(batch) * seq), mask(ids.size());
  std::vector<std::vector<float>> out;
  out.reserve(inputs.size());
  for (size_t first = 0; first < inputs.size(); first += batch) {
    std::fill(ids.begin(), ids.end(), 0);
    std::fill(mask.begin(), mask.end(), 0);
    const size_t rows = std::min<size_t>(batch, inputs.size() - first);
    for (size_t r = 0; r < rows; ++r) {
      const auto& in = inputs[first + r];
      for (size_t t = 0; t < in.size(); ++t) {
        ids[r * seq + t] = in[t];
        mask[r * seq + t] = 1;
      }
    }
    QEFF_RETURN_IF_ERROR(session.Run(0, {{"input_ids", device::HostTensor::I64(ids.data(), {batch, seq})},
                                         {"attention_mask", device::HostTensor::I64(mask.data(), {batch, seq})}}));
    QEFF_ASSIGN_OR_RETURN(device::HostTensor hidden, session.Output("last_hidden_state"));
    if (hidden.shape.size() != 3 || hidden.shape[0] != batch || hidden.shape[1] != seq) {
      return absl::FailedPreconditionError("last_hidden_state is not [batch, seq_len, hidden]");
    }
    const int64_t H = hidden.shape[2];
    const float* h = static_cast<const float*>(hidden.data);
    const float* pooled = nullptr;
    if (pool == "pooler") {
      QEFF_ASSIGN_OR_RETURN(device::HostTensor p, session.Output("pooler_output"));
      pooled = static_cast<const float*>(p.data);
    }
    for (size_t r = 0; r < rows; ++r) {
      const int64_t n = static_cast<int64_t>(inputs[first + r].size());
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
  }
  return out;
}

}  // namespace qeff::runner
