// CPU kernels: one registration per op next to its kernel (op_registry.h; kernels_*.cc). The
// compiler uses the same kernels to fold constants, so compile-time and run-time semantics cannot
// drift apart.
//
// Kernels see static shapes and normalized attributes (see protos/qeff/v1/program.proto), checked
// against the op's rule before they run. They validate data-dependent values (gather indices,
// scatter positions) and return INVALID_ARGUMENT instead of reading or writing out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "device/cpu/thread_pool.h"
#include "device/tensor.h"
#include "qeff/v1/program.pb.h"

namespace qeff::device {

// Runs `op` on `in` (absent optional inputs have data == nullptr and no dtype) writing `out`,
// whose buffers are allocated with their final shapes. `pool` may be null (single-threaded).
// Resolves the op, parses its attributes and checks its rule on every call: for constant
// folding and tests. Programs bind their ops once (Program::Load) and call the kernels directly.
absl::Status RunKernel(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                       const std::vector<TensorRef>& out, ThreadPool* pool);

bool HasKernel(const std::string& type);

// Attribute access on normalized ops (the compiler builds them with these).
const qeff::v1::Attribute* FindAttr(const qeff::v1::Op& op, const std::string& name);
int64_t AttrInt(const qeff::v1::Op& op, const std::string& name, int64_t fallback);
float AttrFloat(const qeff::v1::Op& op, const std::string& name, float fallback);
std::vector<int64_t> AttrInts(const qeff::v1::Op& op, const std::string& name);
void SetAttrInt(qeff::v1::Op& op, const std::string& name, int64_t v);
void SetAttrFloat(qeff::v1::Op& op, const std::string& name, float v);
void SetAttrInts(qeff::v1::Op& op, const std::string& name, const std::vector<int64_t>& v);

// KV caches (CtxScatter[CB], CtxGather[CB], CachedAttention; kernels_nn.cc) are float32 or
// bfloat16 (--kv-cache-dtype bf16). A cache of type `cache` takes rows of type `rows` when they
// match or when float32 rows are rounded into a bf16 cache; a gather yields float32 from a bf16
// cache.
inline bool CacheTakes(DType cache, DType rows) {
  return rows == cache || (cache == qeff::v1::BF16 && rows == qeff::v1::F32);
}
inline DType GatheredType(DType cache) { return cache == qeff::v1::BF16 ? qeff::v1::F32 : cache; }

// SparseMoE (kernels_moe.cc): in = (x [..., H], router (f32, E outputs of H), then per expert
// gate and up (I outputs of H) and down (H outputs of I) in one of f32|bf16|i8|i4, then per
// expert the three scales when the weights are i8 or i4; every weight packed as Linear takes
// it, kernels_linalg.h); attrs num_experts, top_k, normalize, intermediate_size (I). Only the
// experts some token is routed to are read. (RunKernel for an op of type SparseMoE.)
absl::Status RunSparseMoE(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                          const std::vector<TensorRef>& out, ThreadPool* pool);

// Tests only: CachedAttention runs its portable loops even where AVX-512 exists.
void SetCachedAttentionPortableForTesting(bool portable);

// CachedAttention's scalar score ops, applied in order to q·k before the mask (attribute
// "score_ops"; "score_args" holds each op's float constant as its IEEE-754 bits, 0 for Tanh).
enum class ScoreOp : int64_t { kDiv = 1, kMul = 2, kTanh = 3 };
inline int64_t ScoreArgBits(float f) {
  uint32_t u;
  static_assert(sizeof(u) == sizeof(f));
  __builtin_memcpy(&u, &f, sizeof(u));
  return static_cast<int64_t>(u);
}
inline float ScoreArgFloat(int64_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits);
  float f;
  __builtin_memcpy(&f, &u, sizeof(f));
  return f;
}

// Row-major strides of `shape`.
Shape Strides(const Shape& shape);

}  // namespace qeff::device
