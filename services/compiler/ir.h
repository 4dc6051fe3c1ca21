// The compiler's IR for one specialization: values with static shapes (constants carry their
// bytes) and nodes in execution order. Built by Specialize(), rewritten by passes, emitted as a
// qeff.v1.Specialization by the program writer.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "device/tensor.h"
#include "qeff/v1/program.pb.h"
#include "services/compiler/onnx_model.h"

namespace qeff::compiler {

struct IrValue {
  std::string name;
  device::DType dtype = qeff::v1::DTYPE_UNSPECIFIED;
  device::Shape shape;
  ConstPtr constant;   // set for constants (initializers and folded values)
  int producer = -1;   // node index, -1 for inputs and constants
  int alias_of = -1;   // shares the storage of this value (a view: Reshape, Identity, ...)
  int64_t alias_offset = 0;  // bytes into alias_of's storage (a slice view, SplitAsViews)
  bool host_input = false;
  int state = -1;      // retained-state index: this value IS the state buffer

  size_t bytes() const { return static_cast<size_t>(device::NumElements(shape)) * device::DTypeSize(dtype); }
};

struct IrNode {
  qeff::v1::Op op;  // type + normalized attributes (inputs/outputs live below)
  std::vector<int> in, out;
  bool dead = false;
};

struct IrState {
  std::string name, output_name;
  device::DType dtype;
  device::Shape shape;
  int value = -1;  // the input value bound to the state buffer
};

struct IrGraph {
  std::vector<IrValue> values;
  std::vector<IrNode> nodes;
  std::vector<std::pair<std::string, int>> inputs;   // host-fed inputs
  std::vector<std::pair<std::string, int>> outputs;  // host-visible outputs (not retained state)
  std::vector<IrState> states;

  int AddValue(IrValue v) {
    values.push_back(std::move(v));
    return static_cast<int>(values.size()) - 1;
  }
  // Follows alias links to the value that owns the storage.
  int Root(int v) const {
    while (values[v].alias_of >= 0) v = values[v].alias_of;
    return v;
  }
  // Where v's bytes start in its root's storage.
  int64_t RootOffset(int v) const {
    int64_t off = 0;
    for (; values[v].alias_of >= 0; v = values[v].alias_of) off += values[v].alias_offset;
    return off;
  }
};

}  // namespace qeff::compiler
