// The runner's loaded models by id: a device session per model (sharing the immutable program
// and weights of its qpc with every other id that loaded the same qpc), its tokenizer, and for
// causal LMs the scheduler that serves its generation requests.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "common/tokenizer/tokenizer.h"
#include "device/session.h"
#include "services/runner/embedder.h"
#include "services/runner/scheduler.h"

namespace qeff::runner {

struct LoadedModel {
  std::string model_id;
  std::string qpc_key;
  std::string architecture;
  std::filesystem::path dir;  // the qpc folder (tokenizer files, configs)
  // Token ids that end a generation at EOS: generation_config.json's eos_token_id (one or a
  // list; else config.json's) and the tokenizer's.
  std::vector<int32_t> eos_token_ids;
  std::unique_ptr<device::Session> session;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when the qpc carries no tokenizer
  // Causal LMs: owns the session's retained state; stopped before the session goes away.
  std::unique_ptr<Scheduler> scheduler;
  // Encoders: pad id, token types, labels (from the program and config.json).
  EncoderInfo encoder;
  // Encoders: one Embed / Classify call at a time.
  std::mutex run_mu;
  // Bytes of the qpc's weights.bin (shared with every id that loaded the same qpc).
  uint64_t weight_bytes = 0;
  // Holds the qpc in use for as long as it is loaded: cache eviction and `cache rm` skip it.
  artifacts::ArtifactUse in_use;
};

struct RegistryOptions {
  int num_threads = 0;  // the process's device threads (0 = all cores)
  int max_queued_requests = 64;
  int max_active_slots = 0;  // 0 = every KV slot of a qpc
  // Caps on what clients can make the runner hold: loaded model ids, and the weight bytes of the
  // distinct qpcs they use (a qpc loaded under several ids counts once). 0 = no cap.
  int max_loaded_models = 0;
  uint64_t max_weight_bytes = 0;
};

class ModelRegistry {
 public:
  ModelRegistry(artifacts::Store* store, RegistryOptions options);
  ~ModelRegistry();

  // Loads qpc `qpc_key` as `model_id` (default: the key), after checking its files against the
  // manifest (sizes and checksums) and the program against its rules: a damaged qpc is moved to
  // the cache's quarantine and the call fails with DATA_LOSS naming the key (compile again to
  // rebuild it). Beyond the caps: RESOURCE_EXHAUSTED saying what is loaded. Loading the same qpc again under the
  // same id returns the loaded model; a different qpc under a taken id is ALREADY_EXISTS.
  absl::StatusOr<std::shared_ptr<LoadedModel>> Load(const std::string& qpc_key, std::string model_id);
  // Ends the model's queued and running requests (UNAVAILABLE) and drops it.
  absl::Status Unload(const std::string& model_id);
  // NOT_FOUND tells the caller to Load first.
  absl::StatusOr<std::shared_ptr<LoadedModel>> Get(const std::string& model_id) const;
  std::vector<std::shared_ptr<LoadedModel>> List() const;

 private:
  artifacts::Store* store_;
  RegistryOptions options_;
  mutable std::mutex mu_;
  std::mutex load_mu_;  // serializes loads so one qpc is never loaded twice at once
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;
  // Programs (weights) by qpc key, shared by every id that loaded the qpc.
  std::map<std::string, std::weak_ptr<const device::Program>> programs_;
};

}  // namespace qeff::runner
