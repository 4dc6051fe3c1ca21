// A loaded cpu qpc, immutable: program.pb parsed and validated completely, every op bound to its
// kernel with parsed attributes, weights.bin in memory. Loaded once and shared by every session
// that runs it (several model ids of one qpc keep one copy of the weights); a Session adds the
// mutable parts (activation arena, retained KV state).
//
// Load rejects a program that could make a kernel read or write out of bounds or compute from
// memory nothing wrote: DATA_LOSS for corrupt or inconsistent content, FAILED_PRECONDITION for a
// format version or an op this runtime does not know, each naming the qpc, the specialization,
// the op (index and type) or tensor, and what is wrong.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/util/files.h"
#include "common/util/huge_buffer.h"
#include "device/cpu/op_registry.h"
#include "qeff/v1/program.pb.h"

namespace qeff::device {

struct SpecializationInfo {
  std::string name;
  int batch_size = 0;
  int seq_len = 0;
  int ctx_len = 0;
  int full_batch_size = 0;   // continuous batching: KV slots (rows of the retained state); 0 = off
  bool has_batch_index = false;  // takes the `batch_index` input (which KV slot each row uses)
};

class Program {
 public:
  // Loads and validates <qpc_dir>/program.pb and weights.bin.
  static absl::StatusOr<std::shared_ptr<const Program>> Load(const std::filesystem::path& qpc_dir);
  // The same from program.pb bytes and weights.bin's bytes, shared (tests, fuzzing); `label`
  // names the program in messages.
  static absl::StatusOr<std::shared_ptr<const Program>> FromBytes(std::string_view program_pb,
                                                                  std::shared_ptr<const std::string> weights,
                                                                  const std::string& label);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const qeff::v1::Program& proto() const { return program_; }
  const std::vector<SpecializationInfo>& specializations() const { return specs_; }
  // The ops of specialization `spec`, bound to their kernels (parallel to proto's ops).
  const std::vector<BoundOp>& ops(int spec) const { return ops_[spec]; }
  const uint8_t* weights() const { return weights_; }
  size_t weights_size() const { return weights_size_; }
  // Last dimension of the `logits` output (0 when the program has none).
  int vocab_size() const { return vocab_size_; }
  // Continuous-batching slots (0 when no specialization takes batch_index).
  int full_batch_size() const { return full_batch_size_; }
  // num_cores at compile time capped at this machine's cores (0 = every core of the shared pool).
  int num_threads() const { return num_threads_; }
  // The largest arena of any specialization and the retained-state buffer sizes, in bytes.
  size_t arena_bytes() const { return arena_bytes_; }
  const std::vector<size_t>& state_bytes() const { return state_bytes_; }

  // Arena + retained state a program may ask for; above it Load answers RESOURCE_EXHAUSTED.
  // Default: this machine's physical memory. 0 restores the default (tests and fuzzing lower it).
  static void SetMemoryLimitForTesting(uint64_t bytes);

 private:
  Program() = default;
  absl::Status LoadWeights(const std::filesystem::path& path);
  absl::Status Validate(const std::string& label);

  qeff::v1::Program program_;
  std::vector<SpecializationInfo> specs_;
  std::vector<std::vector<BoundOp>> ops_;
  // Weights: a copy in 2 MB pages (default), the zero-copy file mapping, or an owned string.
  util::MappedFile weights_map_;
  util::HugeBuffer weights_copy_;  // the weights in huge pages (unless QEFF_WEIGHTS_MMAP=1)
  std::shared_ptr<const std::string> weights_owned_;
  const uint8_t* weights_ = nullptr;
  size_t weights_size_ = 0;
  int vocab_size_ = 0;
  int full_batch_size_ = 0;
  int num_threads_ = 0;
  size_t arena_bytes_ = 0;
  std::vector<size_t> state_bytes_;
};

}  // namespace qeff::device
