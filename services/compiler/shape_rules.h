// Per-op static shape rules: for an ONNX node and its (specialized) input values, the kernel to
// run, its normalized attributes and the outputs' dtypes and shapes. Inputs that only carry
// shapes (Reshape's shape, Slice's starts, ...) must be constants here; they become attributes.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "services/compiler/ir.h"

namespace qeff::compiler {

struct LoweredOp {
  qeff::v1::Op op;                 // kernel type + normalized attributes
  std::vector<int> kernel_inputs;  // which ONNX inputs the kernel reads (in order)
  std::vector<device::DType> out_dtypes;
  std::vector<device::Shape> out_shapes;
  bool view = false;               // output 0 is a view of input 0 (same bytes, new shape)
  ConstPtr constant;               // output computed from shapes alone (Shape, Constant)
};

// `ins[i]` is null for an absent optional input.
absl::StatusOr<LoweredOp> LowerOp(const onnx::NodeProto& node, const std::vector<const IrValue*>& ins);

}  // namespace qeff::compiler
