#include "services/runner/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::runner {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

absl::StatusOr<GenerationResult> Generate(device::Session& session, const GenerationRequest& request,
                                          const TokenSink& sink) {
  const auto& specs = session.specializations();
  if (specs.empty()) return absl::FailedPreconditionError("the qpc has no specializations");
  // Prefill uses the longest seq_len, decode the shortest (QEfficient: max/min over allowed shapes).
  int prefill = 0, decode = 0;
  for (int i = 0; i < static_cast<int>(specs.size()); ++i) {
    if (specs[i].seq_len > specs[prefill].seq_len) prefill = i;
    if (specs[i].seq_len < specs[decode].seq_len) decode = i;
  }
  const int batch = specs[prefill].batch_size;
  const int chunk = specs[prefill].seq_len;
  const int ctx_len = specs[prefill].ctx_len;
  const int prompt_len = static_cast<int>(request.prompt.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (prompt_len >= ctx_len) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", prompt_len,
                                                   " tokens but the qpc's ctx_len is ", ctx_len,
                                                   "; compile with a larger --ctx-len or shorten the prompt"));
  }
  const int vocab = session.vocab_size();
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the model's vocabulary [0, ", vocab, ")"));
    }
  }
  int max_new = ctx_len - prompt_len;
  if (request.max_new_tokens > 0) max_new = std::min(max_new, request.max_new_tokens);

  GenerationResult result;
  result.tokens.reserve(max_new);
  Sampler sampler(request.sampling, vocab);
  std::vector<int32_t> history(request.prompt);
  history.reserve(prompt_len + max_new);
  std::vector<float> row(vocab);
  // Host IO buffers, sized once for the largest call; every sequence of the batch gets the same
  // prompt (QEfficient repeats prompts to fill the batch), row 0 is returned.
  std::vector<int64_t> ids(static_cast<size_t>(batch) * chunk), pos(static_cast<size_t>(batch) * chunk);

  auto run = [&](int spec, int seq) -> absl::Status {
    device::HostTensor ids_t = device::HostTensor::I64(ids.data(), {batch, seq});
    device::HostTensor pos_t = device::HostTensor::I64(pos.data(), {batch, seq});
    return session.Run(spec, {{"input_ids", ids_t}, {"position_ids", pos_t}});
  };
  auto pick = [&]() -> absl::StatusOr<int32_t> {
    QEFF_ASSIGN_OR_RETURN(device::HostTensor logits, session.Output("logits"));
    const float* l = static_cast<const float*>(logits.data);
    std::copy(l, l + vocab, row.begin());  // row 0 = sequence 0, last real position
    return sampler.Next(row.data(), history);
  };

  const auto t0 = Clock::now();
  session.ResetState();
  const int chunks = (prompt_len + chunk - 1) / chunk;
  for (int c = 0; c < chunks; ++c) {
    for (int b = 0; b < batch; ++b) {
      for (int s = 0; s < chunk; ++s) {
        int p = c * chunk + s;
        size_t i = static_cast<size_t>(b) * chunk + s;
        bool real = p < prompt_len;
        ids[i] = real ? request.prompt[p] : 0;
        pos[i] = real ? p : -1;
      }
    }
    QEFF_RETURN_IF_ERROR(run(prefill, chunk));
  }
  QEFF_ASSIGN_OR_RETURN(int32_t next, pick());
  const auto t1 = Clock::now();
  result.finish_reason = "length";

  int position = prompt_len;
  while (true) {
    result.tokens.push_back(next);
    history.push_back(next);
    if (!sink(next)) {
      result.finish_reason = "cancelled";
      break;
    }
    if (request.stop_at_eos && request.eos_token_id && next == *request.eos_token_id) {
      result.finish_reason = "eos";
      break;
    }
    if (static_cast<int>(result.tokens.size()) >= max_new) break;
    const int dseq = specs[decode].seq_len;
    for (int b = 0; b < batch; ++b) {
      for (int s = 0; s < dseq; ++s) {
        size_t i = static_cast<size_t>(b) * dseq + s;
        ids[i] = s == 0 ? next : 0;
        pos[i] = s == 0 ? position : -1;
      }
    }
    QEFF_RETURN_IF_ERROR(run(decode, dseq));
    QEFF_ASSIGN_OR_RETURN(next, pick());
    ++position;
  }
  const auto t2 = Clock::now();

  GenerationStats& st = result.stats;
  st.prompt_tokens = prompt_len;
  st.generated_tokens = static_cast<int>(result.tokens.size());
  st.prefill_chunks = chunks;
  st.prefill_ms = st.ttft_ms = Ms(t0, t1);
  st.e2e_ms = Ms(t0, t2);
  double decode_s = Ms(t1, t2) / 1000.0;
  st.decode_tokens_per_s = decode_s > 0 ? (st.generated_tokens - 1) / decode_s : 0.0;
  st.total_tokens_per_s = st.e2e_ms > 0 ? st.generated_tokens / (st.e2e_ms / 1000.0) : 0.0;
  return result;
}

}  // namespace qeff::runner
