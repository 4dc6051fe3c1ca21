// Lowers an ONNX graph for one shape set: binds symbolic dims, infers every static shape,
// folds everything computable at compile time (shape arithmetic, index tables, constant
// subgraphs) with the device's own kernels, and keeps the rest as IR nodes.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "services/compiler/ir.h"
#include "services/compiler/onnx_model.h"

namespace qeff::compiler {

// `symbols` binds dim_param names (batch_size, seq_len, ctx_len, ...). Graph input X paired
// with a graph output X_RetainedState becomes retained state; float32 state is held in
// `kv_cache_dtype` (F32, or BF16: the cache ops round rows into it and widen them out).
absl::StatusOr<IrGraph> Specialize(const OnnxModel& model, const std::map<std::string, int64_t>& symbols,
                                   device::DType kv_cache_dtype = qeff::v1::F32);

}  // namespace qeff::compiler
