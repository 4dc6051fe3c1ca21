// One generation on a loaded qpc, following QEfficient's runtime loop: right-padded chunked
// prefill (position_ids = -1 on pads), then one decode call per token with the KV cache kept as
// retained state on the device.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "device/session.h"
#include "services/runner/sampler.h"

namespace qeff::runner {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 0;  // <= 0: fill the context (ctx_len - prompt length)
  bool stop_at_eos = false;
  std::optional<int32_t> eos_token_id;
  SamplingConfig sampling;
};

// Named as QEfficient prints them (see GenerationStats in runner.proto).
struct GenerationStats {
  double prefill_ms = 0;           // prompt processing until the first token = TTFT
  double ttft_ms = 0;
  double decode_tokens_per_s = 0;  // tokens from decode calls / decode time
  double total_tokens_per_s = 0;   // all generated tokens / E2E time
  double e2e_ms = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int prefill_chunks = 0;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // new tokens only
  std::string finish_reason;    // "length", "eos" or "cancelled"
  GenerationStats stats;
};

// Called with each new token as soon as it is chosen; return false to stop (client went away).
using TokenSink = std::function<bool(int32_t token)>;

// Runs one request. The session must not be used by anyone else meanwhile (the caller holds the
// model's lock). The retained state is reset first.
absl::StatusOr<GenerationResult> Generate(device::Session& session, const GenerationRequest& request,
                                          const TokenSink& sink);

}  // namespace qeff::runner
