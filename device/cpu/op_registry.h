// Every device op is defined once, next to its kernel (kernels_*.cc): its name, how many inputs
// and outputs it takes, how its attributes are read and validated into a typed struct, the
// shape/dtype rule its inputs and outputs must satisfy in a program specialization, and the
// kernel. Program::Load resolves each op of a program to its definition and parses its
// attributes once (a BoundOp); the per-step loop then calls the kernel through one function
// pointer with the parsed attributes: no string compares, no attribute look-ups.
//
// A rule sees the op's tensors as the program declares them (dtype and static shape; the data
// pointer is not used, an absent optional input has dtype DTYPE_UNSPECIFIED). A kernel may rely
// on its rule having passed: it only checks data-dependent values (indices), returning
// INVALID_ARGUMENT instead of reading or writing out of bounds.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "device/cpu/thread_pool.h"
#include "device/tensor.h"
#include "qeff/v1/program.pb.h"

namespace qeff::device {

using Tensors = std::vector<TensorRef>;

// Reads an op's attributes for its parse function; every attribute must be read (an unknown or
// repeated attribute name is an error, reported by Finish).
class AttrReader {
 public:
  AttrReader(const qeff::v1::Op& op, int variant);
  // The registering definition's `variant` (ops sharing one kernel: which one this is).
  int variant() const { return variant_; }
  const std::string& type() const { return op_.type(); }
  bool Has(std::string_view name);
  int64_t Int(std::string_view name, int64_t fallback);
  float Float(std::string_view name, float fallback);
  std::vector<int64_t> Ints(std::string_view name);
  absl::Status Finish() const;

 private:
  const qeff::v1::Attribute* Find(std::string_view name);
  const qeff::v1::Op& op_;
  int variant_;
  std::vector<bool> used_;
};

// Kernel entry point over type-erased, parsed attributes.
using KernelFn = absl::Status (*)(const void* attrs, const Tensors& in, const Tensors& out, ThreadPool* pool);
using RuleFn = absl::Status (*)(const void* attrs, const Tensors& in, const Tensors& out);
using ParseFn = absl::StatusOr<std::shared_ptr<const void>> (*)(AttrReader& reader);

constexpr int kAnyCount = -1;

struct OpDef {
  std::string name;
  int min_inputs = 0, max_inputs = 0;    // max kAnyCount: no limit
  int min_outputs = 1, max_outputs = 1;
  // Output 0 may be exactly input `in_place` (same bytes: an in-place update or a copy onto
  // itself); -1: no output may overlap an input.
  int in_place = -1;
  int variant = 0;
  ParseFn parse = nullptr;
  RuleFn rule = nullptr;
  KernelFn kernel = nullptr;
};

// An op of a program with its definition resolved and attributes parsed.
struct BoundOp {
  const OpDef* def = nullptr;
  std::shared_ptr<const void> attrs;

  // Checks the op's arity and rule for these tensors (INVALID_ARGUMENT naming what is wrong).
  absl::Status Check(const Tensors& in, const Tensors& out) const;
  absl::Status Run(const Tensors& in, const Tensors& out, ThreadPool* pool) const {
    return def->kernel(attrs.get(), in, out, pool);
  }
};

// The definition of op `type`, or null.
const OpDef* FindOp(std::string_view type);
// All definitions (tests, docs).
std::vector<const OpDef*> AllOps();
// Resolves `op` and parses its attributes: UNIMPLEMENTED for an unknown type, INVALID_ARGUMENT
// for bad attributes.
absl::StatusOr<BoundOp> BindOp(const qeff::v1::Op& op);

// ---- Registration (kernels_*.cc) ---------------------------------------------------------------

class OpRegistry {
 public:
  void Add(OpDef def);
  const OpDef* Find(std::string_view type) const;
  const std::vector<std::unique_ptr<OpDef>>& defs() const { return defs_; }

 private:
  std::vector<std::unique_ptr<OpDef>> defs_;
};

// Each family registers its ops (called once, from op_registry.cc).
void RegisterElementwiseOps(OpRegistry& r);
void RegisterLinalgOps(OpRegistry& r);
void RegisterTensorOps(OpRegistry& r);
void RegisterNnOps(OpRegistry& r);
void RegisterAttentionOps(OpRegistry& r);
void RegisterMoeOps(OpRegistry& r);

// Typed adaptors: a definition from a typed parse (A from the reader), rule and kernel.
struct NoAttrs {};
inline absl::Status ParseNoAttrs(AttrReader&, NoAttrs*) { return absl::OkStatus(); }

template <typename A>
using TypedParse = absl::Status (*)(AttrReader& r, A* attrs);
template <typename A>
using TypedRule = absl::Status (*)(const A& attrs, const Tensors& in, const Tensors& out);
template <typename A>
using TypedKernel = absl::Status (*)(const A& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool);

template <typename A, TypedParse<A> P>
absl::StatusOr<std::shared_ptr<const void>> ParseAs(AttrReader& r) {
  auto a = std::make_shared<A>();
  absl::Status st = P(r, a.get());
  if (st.ok()) st = r.Finish();
  if (!st.ok()) return st;
  return std::shared_ptr<const void>(std::move(a));
}
template <typename A, TypedRule<A> R>
absl::Status RuleAs(const void* a, const Tensors& in, const Tensors& out) {
  return R(*static_cast<const A*>(a), in, out);
}
template <typename A, TypedKernel<A> K>
absl::Status KernelAs(const void* a, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  return K(*static_cast<const A*>(a), in, out, pool);
}

struct Arity {
  int min, max;
};

template <typename A, TypedParse<A> P, TypedRule<A> R, TypedKernel<A> K>
OpDef MakeOp(std::string name, Arity in, Arity out, int variant = 0, int in_place = -1) {
  OpDef d;
  d.name = std::move(name);
  d.min_inputs = in.min;
  d.max_inputs = in.max;
  d.min_outputs = out.min;
  d.max_outputs = out.max;
  d.in_place = in_place;
  d.variant = variant;
  d.parse = &ParseAs<A, P>;
  d.rule = &RuleAs<A, R>;
  d.kernel = &KernelAs<A, K>;
  return d;
}

// ---- Rule helpers (INVALID_ARGUMENT with a message naming the operand) ------------------------

inline bool Present(const TensorRef& t) { return t.dtype != qeff::v1::DTYPE_UNSPECIFIED; }
absl::Status RuleError(const std::string& what);
// `what` is present with one of `dtypes`.
absl::Status ExpectDType(const TensorRef& t, const char* what, std::initializer_list<DType> dtypes);
absl::Status ExpectRank(const TensorRef& t, const char* what, size_t rank);
absl::Status ExpectShape(const TensorRef& t, const char* what, const Shape& shape);
// `t` has `dtype` and `shape` (an output that mirrors an input).
absl::Status ExpectLike(const TensorRef& t, const char* what, DType dtype, const Shape& shape);
// numpy broadcast of the shapes; error when they do not broadcast.
absl::StatusOr<Shape> BroadcastShapes(std::initializer_list<const Shape*> shapes);
bool IsIndexDType(DType d);

}  // namespace qeff::device
