// A loaded cpu qpc, immutable: program.pb parsed and checked, weights.bin in memory. Loaded once
// and shared by every session that runs it (several model ids of one qpc keep one copy of the
// weights); a Session adds the mutable parts (activation arena, retained KV state).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/util/files.h"
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
  // Loads <qpc_dir>/program.pb and weights.bin.
  static absl::StatusOr<std::shared_ptr<const Program>> Load(const std::filesystem::path& qpc_dir);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const qeff::v1::Program& proto() const { return program_; }
  const std::vector<SpecializationInfo>& specializations() const { return specs_; }
  const uint8_t* weights() const { return weights_; }
  size_t weights_size() const { return weights_size_; }
  // Last dimension of the `logits` output (0 when the program has none).
  int vocab_size() const { return vocab_size_; }
  // Continuous-batching slots (0 when no specialization takes batch_index).
  int full_batch_size() const { return full_batch_size_; }
  // num_cores at compile time (0 = every core of the shared pool).
  int num_threads() const { return program_.num_threads(); }

 private:
  Program() = default;
  absl::Status LoadWeights(const std::filesystem::path& path);

  qeff::v1::Program program_;
  std::vector<SpecializationInfo> specs_;
  // Weights: either a copy in 2 MB pages (default) or the zero-copy file mapping.
  util::MappedFile weights_map_;
  void* weights_anon_ = nullptr;
  size_t weights_anon_bytes_ = 0;
  const uint8_t* weights_ = nullptr;
  size_t weights_size_ = 0;
  int vocab_size_ = 0;
  int full_batch_size_ = 0;
};

}  // namespace qeff::device
