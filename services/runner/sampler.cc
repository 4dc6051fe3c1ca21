#include "services/runner/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qeff::runner {

Sampler::Sampler(const SamplingConfig& config, int vocab_size)
    : config_(config), rng_(config.seed), order_(vocab_size), probs_(vocab_size) {}

int32_t Sampler::Next(float* logits, const std::vector<int32_t>& history) {
  const int n = static_cast<int>(order_.size());
  if (config_.repetition_penalty != 1.0f && config_.repetition_penalty > 0.0f) {
    for (int32_t id : history) {
      if (id < 0 || id >= n) continue;
      float& l = logits[id];
      l = l > 0 ? l / config_.repetition_penalty : l * config_.repetition_penalty;
    }
  }
  if (config_.temperature <= 0.0f) {
    // First maximum wins, matching torch.argmax / HF greedy.
    return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
  }
  std::iota(order_.begin(), order_.end(), 0);
  int k = (config_.top_k > 0 && config_.top_k < n) ? config_.top_k : n;
  auto by_logit = [logits](int32_t a, int32_t b) { return logits[a] > logits[b]; };
  if (k < n) {
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), by_logit);
  } else if (config_.top_p < 1.0f) {
    std::sort(order_.begin(), order_.end(), by_logit);
  }
  float max_logit = logits[order_[0]];
  if (k == n && config_.top_p >= 1.0f) max_logit = *std::max_element(logits, logits + n);
  double sum = 0.0;
  for (int i = 0; i < k; ++i) {
    probs_[i] = std::exp((logits[order_[i]] - max_logit) / config_.temperature);
    sum += probs_[i];
  }
  int keep = k;
  if (config_.top_p < 1.0f) {
    // order_ is sorted here: keep the smallest prefix whose mass reaches top_p.
    double acc = 0.0;
    for (int i = 0; i < k; ++i) {
      acc += probs_[i] / sum;
      if (acc >= config_.top_p) {
        keep = i + 1;
        break;
      }
    }
    sum = 0.0;
    for (int i = 0; i < keep; ++i) sum += probs_[i];
  }
  std::uniform_real_distribution<double> uniform(0.0, sum);
  double r = uniform(rng_);
  for (int i = 0; i < keep; ++i) {
    r -= probs_[i];
    if (r <= 0.0) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace qeff::runner
