// safetensors reader (mmap, zero copy, fully validated) and a small writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}},
// then the data region; offsets are relative to the start of the data region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/util/files.h"

namespace qeff::hf {

enum class DType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

// "F32" etc. as spelled in safetensors headers.
const char* DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(const std::string& name);
size_t DTypeSize(DType dtype);
// F32, F16 or BF16: the dtypes weights may come in.
bool IsFloatingWeight(DType dtype);

// A tensor inside a mapped file. `data` points into the mapping: valid while the owning
// SafetensorsFile (or ModelFolder) lives.
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t bytes = 0;

  int64_t numel() const;
};

// Converts F32/F16/BF16 elements to float32 (F64 too). `out` must hold view.numel() floats.
absl::Status ConvertToFloat(const TensorView& view, float* out);
absl::StatusOr<std::vector<float>> ToFloatVector(const TensorView& view);

// Scalar conversions (exposed for tests and the random-model writer).
float HalfToFloat(uint16_t h);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToHalf(float f);      // round to nearest even; overflow gives inf
uint16_t FloatToBFloat16(float f);  // round to nearest even; NaN stays NaN

// Largest header accepted (real checkpoints have headers of a few hundred KB).
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

class SafetensorsFile {
 public:
  // Maps and validates the whole file. Any structural problem is INVALID_ARGUMENT naming the
  // file (and the tensor when there is one).
  static absl::StatusOr<SafetensorsFile> Open(const std::filesystem::path& path);
  // Validates an in-memory image (no ownership; `data` must outlive the result's views).
  static absl::StatusOr<SafetensorsFile> Parse(const uint8_t* data, size_t size, const std::string& label);

  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorView* Find(const std::string& name) const;

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  util::MappedFile map_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// One tensor to write: raw little-endian bytes already in `dtype`.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Writes a safetensors file the way HF does: header padded with spaces to a multiple of 8,
// tensors laid out in the given order.
absl::Status WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Same, producing each tensor's bytes on demand (`fill(i, &bytes)`) so large files never sit in
// memory whole.
using TensorBytesFn = std::function<absl::Status(size_t index, std::string* bytes)>;
absl::Status WriteSafetensorsStreamed(const std::filesystem::path& path, const std::vector<TensorSpec>& specs,
                                      const TensorBytesFn& fill,
                                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qeff::hf
