// CPU kernels: one function per op type, dispatched by name. The compiler uses the same kernels
// to fold constants, so compile-time and run-time semantics cannot drift apart.
//
// Kernels see static shapes and normalized attributes (see protos/qeff/v1/program.proto). They
// validate data-dependent values (gather indices, scatter positions) and return
// INVALID_ARGUMENT instead of reading or writing out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "device/cpu/thread_pool.h"
#include "device/tensor.h"
#include "qeff/v1/program.pb.h"

namespace qeff::device {

// Runs `op` on `in` (absent optional inputs have data == nullptr) writing `out`, whose
// buffers are allocated with their final shapes. `pool` may be null (single-threaded).
absl::Status RunKernel(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                       const std::vector<TensorRef>& out, ThreadPool* pool);

bool HasKernel(const std::string& type);

// Attribute access on normalized ops.
const qeff::v1::Attribute* FindAttr(const qeff::v1::Op& op, const std::string& name);
int64_t AttrInt(const qeff::v1::Op& op, const std::string& name, int64_t fallback);
float AttrFloat(const qeff::v1::Op& op, const std::string& name, float fallback);
std::vector<int64_t> AttrInts(const qeff::v1::Op& op, const std::string& name);
void SetAttrInt(qeff::v1::Op& op, const std::string& name, int64_t v);
void SetAttrFloat(qeff::v1::Op& op, const std::string& name, float v);
void SetAttrInts(qeff::v1::Op& op, const std::string& name, const std::vector<int64_t>& v);

// Per-family entry points (kernels_*.cc).
absl::Status RunElementwise(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                            const std::vector<TensorRef>& out, ThreadPool* pool);
absl::Status RunLinalg(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                       const std::vector<TensorRef>& out, ThreadPool* pool);
absl::Status RunTensorOp(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                         const std::vector<TensorRef>& out, ThreadPool* pool);
absl::Status RunNnOp(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                     const std::vector<TensorRef>& out, ThreadPool* pool);
absl::Status RunAttention(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                          const std::vector<TensorRef>& out, ThreadPool* pool);
// Linear: in = (x [..., K], w [N, K] f32|bf16|i8, bias [N] or absent, scale [N] for i8),
// out [..., N]. Attr rowwise: the row-by-row kernel at any M (a row's result never depends
// on its batch); otherwise M > 8 goes to sgemm.
absl::Status RunLinear(const qeff::v1::Op& op, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out,
                       ThreadPool* pool);
// SparseMoE (kernels_moe.cc): in = (x [..., H], router [E, H] f32, then per expert gate [I, H],
// up [I, H], down [H, I] (f32|bf16|i8), then per expert the three i8 scales when the weights are
// i8); attrs num_experts, top_k, normalize, rowwise. Only the experts some token is routed to
// are read.
absl::Status RunSparseMoE(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                          const std::vector<TensorRef>& out, ThreadPool* pool);
bool IsElementwise(const std::string& type);
bool IsLinalg(const std::string& type);
bool IsTensorOp(const std::string& type);
bool IsNnOp(const std::string& type);
bool IsAttentionOp(const std::string& type);

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
