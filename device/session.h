// Runs a loaded Program: owns what changes between calls — the activation arena and the
// retained-state buffers (the KV cache), which persist across Run() calls like QAIC's
// retained-state device buffers. For a continuous-batching program the state holds
// full_batch_size slots, each reset on its own when a new sequence takes it. Kernels run on the
// process-wide thread pool. A session is used by one thread at a time (its model's scheduler).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/util/huge_buffer.h"
#include "device/cpu/thread_pool.h"
#include "device/program.h"
#include "device/tensor.h"

namespace qeff::device {

using NamedInputs = std::vector<std::pair<std::string, HostTensor>>;

class Session {
 public:
  // A session over a shared program. num_threads <= 0: the program's num_cores, else every
  // thread of the process pool.
  static absl::StatusOr<std::unique_ptr<Session>> Create(std::shared_ptr<const Program> program, int num_threads);
  // Program::Load + Create.
  static absl::StatusOr<std::unique_ptr<Session>> Load(const std::filesystem::path& qpc_dir, int num_threads);
  ~Session();

  const Program& program() const { return *program_; }
  const std::vector<SpecializationInfo>& specializations() const { return program_->specializations(); }
  int vocab_size() const { return program_->vocab_size(); }
  int full_batch_size() const { return program_->full_batch_size(); }
  int num_threads() const { return threads_; }

  // Zeroes the whole retained state (start of a new sequence on a non-batched program); free
  // when nothing has run since the last reset (a new session's state is already zero).
  void ResetState();
  // Zeroes KV slot `slot` (row `slot` of every retained-state buffer) of a continuous-batching
  // program; INVALID_ARGUMENT outside [0, full_batch_size). With `positions` >= 0 only cache
  // positions [0, positions) of each head (of [full_batch_size, heads, ctx_len, head_dim] states)
  // are zeroed: what an earlier sequence in the slot can have written. At ctx 1024 a whole GPT-2
  // slot is 75 MB, while a short request fills a few percent of it.
  absl::Status ResetSlot(int slot, int64_t positions = -1);

  // Runs specialization `spec` on the host inputs (exact names, dtypes and shapes of the
  // specialization's inputs). Outputs stay valid until the next Run.
  absl::Status Run(int spec, const NamedInputs& inputs);
  absl::StatusOr<HostTensor> Output(const std::string& name) const;

  // Per-op-type wall time of every Run since the last call (QEFF_PROFILE=1 enables it).
  std::string TakeProfile();

  // Read-only view of a retained-state buffer by input name (tests and debugging).
  absl::StatusOr<HostTensor> State(const std::string& name) const;

 private:
  // One op of a specialization, ready to run: its kernel, parsed attributes and operands.
  struct Step {
    KernelFn kernel = nullptr;
    const void* attrs = nullptr;
    std::vector<TensorRef> in, out;
  };
  struct Prepared {
    std::vector<TensorRef> tensors;  // resolved pointers for every tensor of the specialization
    std::vector<Step> steps;
  };

  Session() = default;
  absl::Status Prepare();

  std::shared_ptr<const Program> program_;
  std::vector<Prepared> prepared_;
  uint8_t* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  std::vector<uint8_t*> states_;
  std::vector<size_t> state_bytes_;
  std::vector<util::HugeBuffer> buffers_;  // the state buffers and the arena
  ThreadPool* pool_ = nullptr;
  int threads_ = 0;
  int last_spec_ = -1;
  bool profile_ = false;
  bool state_written_ = false;  // a Run may have written the state since it was last all zero
  std::map<std::string, double> profile_ms_;
  std::vector<std::vector<double>> profile_op_ms_;  // per specialization, per op
};

}  // namespace qeff::device
