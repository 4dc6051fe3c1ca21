// The runner's loaded models: a device session per qpc plus its tokenizer, by model id.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "common/tokenizer/tokenizer.h"
#include "device/session.h"

namespace qeff::runner {

struct LoadedModel {
  std::string model_id;
  std::string qpc_key;
  std::string architecture;
  std::unique_ptr<device::Session> session;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when the qpc carries no tokenizer
  // One request at a time per session: the retained KV state belongs to the running request.
  std::mutex run_mu;
};

class ModelRegistry {
 public:
  ModelRegistry(artifacts::Store* store, int num_threads) : store_(store), num_threads_(num_threads) {}

  // Loads qpc `qpc_key` as `model_id` (default: the key). Loading the same qpc again returns the
  // loaded model; a different qpc under a taken id is ALREADY_EXISTS.
  absl::StatusOr<std::shared_ptr<LoadedModel>> Load(const std::string& qpc_key, std::string model_id);
  absl::Status Unload(const std::string& model_id);
  // NOT_FOUND tells the caller to Load first.
  absl::StatusOr<std::shared_ptr<LoadedModel>> Get(const std::string& model_id) const;
  std::vector<std::shared_ptr<LoadedModel>> List() const;

 private:
  artifacts::Store* store_;
  int num_threads_;
  mutable std::mutex mu_;
  std::mutex load_mu_;  // serializes loads so one qpc is never loaded twice at once
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;
};

}  // namespace qeff::runner
