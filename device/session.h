// A loaded cpu qpc: the compiled program, its mmapped weights, a scratch arena and the
// retained-state buffers (the KV cache), which persist across Run() calls like QAIC's
// retained-state device buffers.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/util/files.h"
#include "device/cpu/thread_pool.h"
#include "device/tensor.h"
#include "qeff/v1/program.pb.h"

namespace qeff::device {

struct SpecializationInfo {
  std::string name;
  int batch_size = 0;
  int seq_len = 0;
  int ctx_len = 0;
};

using NamedInputs = std::vector<std::pair<std::string, HostTensor>>;

class Session {
 public:
  // Loads <qpc_dir>/program.pb and weights.bin, validating every offset and size.
  // num_threads <= 0: the qpc's num_cores, else every core.
  static absl::StatusOr<std::unique_ptr<Session>> Load(const std::filesystem::path& qpc_dir, int num_threads);
  ~Session();

  const std::vector<SpecializationInfo>& specializations() const { return specs_; }
  // Last dimension of the `logits` output (0 when the program has none).
  int vocab_size() const { return vocab_size_; }
  int num_threads() const { return pool_->size(); }

  // Zeroes the retained state (start of a new sequence).
  void ResetState();

  // Runs specialization `spec` on the host inputs (exact names, dtypes and shapes of the
  // specialization's inputs). Outputs stay valid until the next Run.
  absl::Status Run(int spec, const NamedInputs& inputs);
  absl::StatusOr<HostTensor> Output(const std::string& name) const;

  // Per-op-type wall time of every Run since the last call (QEFF_PROFILE=1 enables it).
  std::string TakeProfile();

  // Read-only view of a retained-state buffer by input name (tests and debugging).
  absl::StatusOr<HostTensor> State(const std::string& name) const;

 private:
  struct Prepared {
    std::vector<TensorRef> tensors;  // resolved pointers for every tensor of the specialization
    std::vector<std::vector<TensorRef>> op_inputs, op_outputs;
  };

  Session() = default;
  absl::Status Prepare();

  absl::Status LoadWeights(const std::filesystem::path& path);

  qeff::v1::Program program_;
  // Weights: either a copy in 2 MB pages (default) or the zero-copy file mapping.
  util::MappedFile weights_map_;
  void* weights_anon_ = nullptr;
  size_t weights_anon_bytes_ = 0;
  const uint8_t* weights_ = nullptr;
  size_t weights_size_ = 0;
  std::vector<SpecializationInfo> specs_;
  std::vector<Prepared> prepared_;
  uint8_t* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  std::vector<uint8_t*> states_;
  std::vector<size_t> state_bytes_;
  std::unique_ptr<ThreadPool> pool_;
  int vocab_size_ = 0;
  int last_spec_ = -1;
  bool profile_ = false;
  std::map<std::string, double> profile_ms_;
};

}  // namespace qeff::device
