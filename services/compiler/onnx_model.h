// Reads an ONNX model for the compiler: the graph, its initializers (external data mmapped,
// never copied) and its declared inputs/outputs with symbolic dimensions.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/util/files.h"
#include "device/tensor.h"
#include "onnx/onnx_pb.h"

namespace qeff::compiler {

// Immutable tensor bytes: a view into a mapping or an owned buffer, kept alive by `owner`.
struct ConstTensor {
  device::DType dtype = qeff::v1::DTYPE_UNSPECIFIED;
  device::Shape shape;
  const uint8_t* data = nullptr;
  std::shared_ptr<const void> owner;
  // >= 0: already written to weights.bin at this offset and its bytes released (data is null).
  // Packed weights are written as soon as they are packed so a compile never holds them all.
  int64_t stored_offset = -1;
  // data points into a read-only file mapping (external data used in place): its pages can be
  // dropped from memory and come back from the file.
  bool file_backed = false;

  size_t bytes() const { return static_cast<size_t>(device::NumElements(shape)) * device::DTypeSize(dtype); }
  device::TensorRef ref() const { return {const_cast<uint8_t*>(data), dtype, shape}; }
  // Allocates an owned, zeroed tensor (64-byte aligned).
  static std::shared_ptr<ConstTensor> Allocate(device::DType dtype, device::Shape shape);
  uint8_t* mutable_data() { return const_cast<uint8_t*>(data); }
};
using ConstPtr = std::shared_ptr<const ConstTensor>;

// A graph input/output: element type and dims (a dim is either a value or a symbol name).
struct IoDecl {
  std::string name;
  device::DType dtype = qeff::v1::DTYPE_UNSPECIFIED;
  std::vector<int64_t> dims;        // -1 where symbolic
  std::vector<std::string> symbols; // symbol name where dims[i] == -1 ("" if unknown)
};

class OnnxModel {
 public:
  // Parses <dir>/<file>; external data must live inside `dir` and within the referenced files.
  static absl::StatusOr<std::unique_ptr<OnnxModel>> Load(const std::filesystem::path& dir, const std::string& file);

  const onnx::GraphProto& graph() const { return model_.graph(); }
  const std::map<std::string, ConstPtr>& initializers() const { return initializers_; }
  const std::vector<IoDecl>& inputs() const { return inputs_; }    // excluding initializers
  const std::vector<IoDecl>& outputs() const { return outputs_; }
  int64_t opset() const { return opset_; }
  std::string Metadata(const std::string& key) const;

 private:
  onnx::ModelProto model_;
  std::map<std::string, ConstPtr> initializers_;
  std::vector<IoDecl> inputs_, outputs_;
  std::map<std::string, std::shared_ptr<util::MappedFile>> data_files_;
  int64_t opset_ = 0;
};

// Converts an ONNX TensorProto (inline data; F16/BF16/F64 widened to F32). External data is
// resolved by OnnxModel::Load, so this is also used for Constant nodes' attributes.
absl::StatusOr<ConstPtr> TensorFromProto(const onnx::TensorProto& t);
// Largest element count of any tensor the compiler handles (2^40); bigger shapes are rejected
// before any size arithmetic can overflow.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 40;
// True when every dim is in [0, kMaxTensorElements] and so is their product.
bool ShapeWithinLimits(const device::Shape& shape);

// ONNX element type -> our dtype (widened types report F32); UNSPECIFIED if unsupported.
device::DType DTypeFromOnnx(int onnx_type);

}  // namespace qeff::compiler
