#include "services/runner/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qeff::runner {

uint64_t FreshSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

Sampler::Sampler(const SamplingConfig& config, int vocab_size)
    : config_(config), rng_(config.seed), order_(vocab_size), probs_(vocab_size) {
  if (Penalized()) {
    seen_.assign(static_cast<size_t>(vocab_size), 0);
    out_count_.assign(static_cast<size_t>(vocab_size), 0);
  }
}

bool Sampler::Penalized() const {
  return (config_.repetition_penalty != 1.0f && config_.repetition_penalty > 0.0f) ||
         config_.frequency_penalty != 0.0f || config_.presence_penalty != 0.0f;
}

void Sampler::AddPrompt(const std::vector<int32_t>& prompt) {
  if (seen_.empty()) return;
  const int n = static_cast<int>(order_.size());
  for (int32_t id : prompt) {
    if (id < 0 || id >= n || seen_[id]) continue;
    seen_[id] = 1;
    touched_.push_back(id);
  }
}

int32_t Sampler::Next(float* logits) {
  const int n = static_cast<int>(order_.size());
  if (!seen_.empty()) {
    // Each distinct token once, as HF's gather/scatter does.
    const float rp = config_.repetition_penalty > 0.0f ? config_.repetition_penalty : 1.0f;
    for (int32_t id : touched_) {
      float& l = logits[id];
      if (rp != 1.0f && seen_[id]) l = l > 0 ? l / rp : l * rp;
      if (out_count_[id] > 0) {
        l -= config_.frequency_penalty * static_cast<float>(out_count_[id]) + config_.presence_penalty;
      }
    }
  }
  int32_t pick;
  if (config_.temperature <= 0.0f) {
    // First maximum wins, matching torch.argmax / HF greedy.
    pick = static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
  } else {
    std::iota(order_.begin(), order_.end(), 0);
    const int k = (config_.top_k > 0 && config_.top_k < n) ? config_.top_k : n;
    auto by_logit = [logits](int32_t a, int32_t b) { return logits[a] > logits[b]; };
    if (k < n) {
      std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), by_logit);
    } else if (config_.top_p < 1.0f || config_.min_p > 0.0f) {
      std::sort(order_.begin(), order_.end(), by_logit);
    }
    float max_logit = logits[order_[0]];
    if (k == n && config_.top_p >= 1.0f && config_.min_p <= 0.0f) max_logit = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int i = 0; i < k; ++i) {
      probs_[i] = std::exp((logits[order_[i]] - max_logit) / config_.temperature);
      sum += probs_[i];
    }
    int keep = k;
    if (config_.min_p > 0.0f) {
      // order_ is sorted: probs_[0] is the most likely token's (unnormalized) probability.
      const double floor = config_.min_p * probs_[0];
      while (keep > 1 && probs_[keep - 1] < floor) --keep;
    }
    if (config_.top_p < 1.0f) {
      // Keep the smallest prefix whose mass reaches top_p.
      double total = 0.0;
      for (int i = 0; i < keep; ++i) total += probs_[i];
      double acc = 0.0;
      for (int i = 0; i < keep; ++i) {
        acc += probs_[i] / total;
        if (acc >= config_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    sum = 0.0;
    for (int i = 0; i < keep; ++i) sum += probs_[i];
    std::uniform_real_distribution<double> uniform(0.0, sum);
    double r = uniform(rng_);
    pick = order_[keep - 1];
    for (int i = 0; i < keep; ++i) {
      r -= probs_[i];
      if (r <= 0.0) {
        pick = order_[i];
        break;
      }
    }
  }
  if (!seen_.empty()) {
    if (!seen_[pick] && out_count_[pick] == 0) touched_.push_back(pick);
    seen_[pick] = 1;
    ++out_count_[pick];
  }
  return pick;
}

}  // namespace qeff::runner
