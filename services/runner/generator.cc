#include "services/runner/generator.h"

#include <vector>

#include "common/util/status_macros.h"

namespace qeff::runner {

absl::StatusOr<GenerationResult> Generate(device::Session& session, const GenerationRequest& request,
                                          const TokenSink& sink) {
  QEFF_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(&session, SchedulerOptions()));
  QEFF_ASSIGN_OR_RETURN(std::shared_ptr<RequestHandle> handle, scheduler->Submit(request));
  std::vector<int32_t> tokens;
  bool stopped = false;
  while (true) {
    const bool done = handle->Wait(&tokens, std::chrono::milliseconds(100));
    for (int32_t t : tokens) {
      if (!stopped && !sink(t)) {
        stopped = true;
        handle->Cancel(absl::CancelledError("the caller stopped the generation"));
      }
    }
    tokens.clear();
    if (done) break;
  }
  if (!handle->status().ok()) return handle->status();
  return handle->result();
}

}  // namespace qeff::runner
