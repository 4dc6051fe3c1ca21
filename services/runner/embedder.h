// Embeddings with an encoder qpc, as QEfficient's QEFFAutoModel + PooledModel do it: right-pad
// each sequence to the compiled seq_len with id 0 and mask 0, run the Embedding
// specialization batch by batch, and pool the last hidden state over the real tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "device/session.h"

namespace qeff::runner {

struct EmbedOptions {
  std::string pooling = "mean";  // mean | cls | max | pooler
  bool normalize = false;        // L2, like torch.nn.functional.normalize
};

// True when the session is an encoder (its single specialization takes attention_mask).
bool IsEncoder(const device::Session& session);

// One embedding per input sequence. The session must not be used by anyone else meanwhile.
absl::StatusOr<std::vector<std::vector<float>>> Embed(device::Session& session,
                                                      const std::vector<std::vector<int32_t>>& inputs,
                                                      const EmbedOptions& options);

}  // namespace qeff::runner
