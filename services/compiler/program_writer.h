// Turns planned IR into the program.pb / weights.bin pair of a cpu qpc. Constants are written
// once per compile (deduplicated by source bytes and by content hash), 64-byte aligned.
#pragma once

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "qeff/v1/program.pb.h"
#include "services/compiler/ir.h"
#include "services/compiler/passes.h"

namespace qeff::compiler {

class WeightsWriter {
 public:
  static absl::StatusOr<WeightsWriter> Create(const std::filesystem::path& path);
  WeightsWriter(WeightsWriter&& o) noexcept;
  WeightsWriter& operator=(WeightsWriter&&) = delete;
  ~WeightsWriter();

  // Offset of `c` in the file (its stored_offset if already written), appending it unless the
  // same bytes are there already.
  absl::StatusOr<int64_t> Add(const ConstTensor& c);
  // Flushes and fsyncs; returns the file size.
  absl::StatusOr<int64_t> Finish();

 private:
  explicit WeightsWriter(std::FILE* f) : file_(f) {}
  std::FILE* file_ = nullptr;
  int64_t size_ = 0;
  std::map<std::pair<std::string, int64_t>, int64_t> by_hash_;
};

// Emits one specialization. Tensor names are kept for error messages and debugging.
absl::StatusOr<qeff::v1::ProgramSpecialization> EmitSpecialization(const IrGraph& g, const MemoryPlan& plan,
                                                             WeightsWriter& weights);

}  // namespace qeff::compiler
