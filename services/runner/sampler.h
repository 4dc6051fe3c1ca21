// Next-token selection from logits: greedy, or temperature / top-k / top-p / min-p sampling, with
// the repetition penalty (HF semantics, over prompt + output) and OpenAI's frequency and presence
// penalties (over the output), and a seeded generator (same seed + same inputs = same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace qeff::runner {

struct SamplingConfig {
  float temperature = 0.0f;         // 0 = greedy argmax
  int top_k = 0;                    // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off: drop tokens below min_p · p(most likely)
  float repetition_penalty = 1.0f;  // 1 = off (HF: divide positive logits, multiply negative)
  float frequency_penalty = 0.0f;   // OpenAI: logit -= f · count in the output
  float presence_penalty = 0.0f;    // OpenAI: logit -= p if in the output
  uint64_t seed = 0;
};

// An unpredictable seed, for requests that did not set one (reported back so they can be replayed).
uint64_t FreshSeed();

class Sampler {
 public:
  // `vocab_size` bounds the scratch buffers, allocated once here (none per token).
  Sampler(const SamplingConfig& config, int vocab_size);

  // The prompt, seen by the repetition penalty. Call before the first Next.
  void AddPrompt(const std::vector<int32_t>& prompt);
  // Picks the next token and records it as output. `logits` may be rewritten by the penalties.
  int32_t Next(float* logits);

 private:
  bool Penalized() const;

  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
  std::vector<uint8_t> seen_;         // in prompt or output (repetition penalty)
  std::vector<int32_t> out_count_;    // occurrences in the output (frequency / presence)
  std::vector<int32_t> touched_;      // ids with seen_ or out_count_ set, each once
};

}  // namespace qeff::runner
