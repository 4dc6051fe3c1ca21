#include "device/cpu/kernels.h"

#include "absl/strings/str_cat.h"
#include "device/cpu/op_registry.h"

namespace qeff::device {

const qeff::v1::Attribute* FindAttr(const qeff::v1::Op& op, const std::string& name) {
  for (const auto& a : op.attrs()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

int64_t AttrInt(const qeff::v1::Op& op, const std::string& name, int64_t fallback) {
  const auto* a = FindAttr(op, name);
  return a ? a->i() : fallback;
}

float AttrFloat(const qeff::v1::Op& op, const std::string& name, float fallback) {
  const auto* a = FindAttr(op, name);
  return a ? a->f() : fallback;
}

std::vector<int64_t> AttrInts(const qeff::v1::Op& op, const std::string& name) {
  const auto* a = FindAttr(op, name);
  if (!a) return {};
  return {a->ints().begin(), a->ints().end()};
}

namespace {
qeff::v1::Attribute* MutableAttr(qeff::v1::Op& op, const std::string& name) {
  for (auto& a : *op.mutable_attrs()) {
    if (a.name() == name) return &a;
  }
  auto* a = op.add_attrs();
  a->set_name(name);
  return a;
}
}  // namespace

void SetAttrInt(qeff::v1::Op& op, const std::string& name, int64_t v) { MutableAttr(op, name)->set_i(v); }
void SetAttrFloat(qeff::v1::Op& op, const std::string& name, float v) { MutableAttr(op, name)->set_f(v); }
void SetAttrInts(qeff::v1::Op& op, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = MutableAttr(op, name);
  a->clear_ints();
  for (int64_t x : v) a->add_ints(x);
}

Shape Strides(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

bool HasKernel(const std::string& type) { return FindOp(type) != nullptr; }

absl::Status RunKernel(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                       const std::vector<TensorRef>& out, ThreadPool* pool) {
  auto bound = BindOp(op);
  if (!bound.ok()) {
    if (bound.status().code() == absl::StatusCode::kUnimplemented) return bound.status();
    return absl::Status(bound.status().code(), absl::StrCat(op.type(), ": ", bound.status().message()));
  }
  absl::Status st = bound->Check(in, out);
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat(op.type(), ": ", st.message()));
  return bound->Run(in, out, pool);
}

absl::Status RunSparseMoE(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                          const std::vector<TensorRef>& out, ThreadPool* pool) {
  if (op.type() != "SparseMoE") return absl::InvalidArgumentError("RunSparseMoE needs a SparseMoE op");
  return RunKernel(op, in, out, pool);
}

}  // namespace qeff::device
