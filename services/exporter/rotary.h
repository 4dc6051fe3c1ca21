// One rotary position embedding module for every rotary family: the two rotation conventions
// (rotate_half, GPT-J's interleaved pairs), partial rotary (the first rotary_dim dims of each
// head), and HF 4.44's rope scaling types (modeling_rope_utils.py and Phi-3's LongRoPE module):
//   linear   inv_freq / factor
//   dynamic  NTK: HF recomputes inv_freq only for sequences longer than max_position_embeddings;
//            the tables here end there (ctx_len cannot exceed them), so it equals the default
//   llama3   low frequencies / factor, high kept, the band between smoothed
//   yarn     ramp between interpolated and extrapolated frequencies, cos/sin · attention_factor
//   longrope short_factor or long_factor per frequency, chosen per call from max(position_ids) + 1
//            vs original_max_position_embeddings (per batch row here, so rows of a continuous
//            batch do not influence each other); cos/sin · attention_factor
// An unknown type is refused by name. Tables are float32 constants [max_positions, rotary_dim]
// computed in HF's operation order, gathered once per graph at the clamped position ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "services/exporter/blocks.h"
#include "services/exporter/graph_builder.h"

namespace qeff::exporter {

struct RotarySpec {
  enum class Style { kNone, kHalf, kInterleaved };
  Style style = Style::kNone;
  int64_t rotary_dim = 0;  // <= head_dim, even
  int64_t max_positions = 0;
  double theta = 10000.0;
  std::string scaling = "default";  // default | linear | dynamic | llama3 | yarn | longrope
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_positions = 0;                    // llama3, yarn, longrope
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double attention_factor = 1.0;                         // yarn, longrope: cos/sin multiplier
  std::vector<float> short_factor, long_factor;          // longrope, rotary_dim / 2 each
};

// Reads config.json's rope_scaling (null/absent = default; `type` is accepted for `rope_type`,
// "su" for longrope) for a rotary of `rotary_dim` dims and `max_positions` table rows. Longrope
// takes the original context from a top-level original_max_position_embeddings (Phi-3; the
// factor is then max_positions / original) or from rope_scaling's factor.
absl::StatusOr<RotarySpec> ReadRotary(const nlohmann::json& config, RotarySpec::Style style, int64_t rotary_dim,
                                      int64_t max_positions, double theta);

// Inverse frequencies [rotary_dim / 2] for the given factor set (longrope: `long_factors`).
std::vector<float> RotaryInverseFrequencies(const RotarySpec& spec, bool long_factors = false);

// cos/sin [B,1,S,rotary_dim] at max(position_ids, 0) (longrope: short or long per row).
RopeTables BuildRotary(GraphBuilder& g, const CausalLMIO& io, const RotarySpec& spec);

// Rotates the first rotary_dim dims of x [B,heads,S,head_dim] in the spec's style; the rest
// pass through.
std::string ApplyRotary(GraphBuilder& g, const std::string& x, const RopeTables& tables, const RotarySpec& spec,
                        int64_t head_dim);

}  // namespace qeff::exporter
