// Next-token selection from logits: greedy, or temperature / top-k / top-p sampling with a
// repetition penalty and a seeded generator (same seed + same inputs = same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace qeff::runner {

struct SamplingConfig {
  float temperature = 0.0f;        // 0 = greedy argmax
  int top_k = 0;                   // 0 = off
  float top_p = 1.0f;              // 1 = off
  float repetition_penalty = 1.0f; // 1 = off (HF semantics: divide positive logits, multiply negative)
  uint64_t seed = 0;
};

class Sampler {
 public:
  // `vocab_size` bounds the scratch buffers, allocated once here (none per token).
  Sampler(const SamplingConfig& config, int vocab_size);

  // Picks the next token. `history` (prompt + generated) feeds the repetition penalty.
  // `logits` may be modified in place by the penalty.
  int32_t Next(float* logits, const std::vector<int32_t>& history);

 private:
  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
};

}  // namespace qeff::runner
