// One generation run to completion on a session, through the same Scheduler that serves
// requests (one engine): for tests, benchmarks and tools that hold a session themselves.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "device/session.h"
#include "services/runner/scheduler.h"

namespace qeff::runner {

// Called with each new token; return false to stop (the request is cancelled).
using TokenSink = std::function<bool(int32_t token)>;

// Runs one request and returns its tokens and stats. The session must not be used by anyone
// else meanwhile.
absl::StatusOr<GenerationResult> Generate(device::Session& session, const GenerationRequest& request,
                                          const TokenSink& sink);

}  // namespace qeff::runner
