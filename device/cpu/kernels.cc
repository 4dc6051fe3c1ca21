#include "device/cpu/kernels.h"

#include "absl/strings/str_cat.h"

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

bool HasKernel(const std::string& type) {
  return IsElementwise(type) || IsLinalg(type) || IsTensorOp(type) || IsNnOp(type) || IsAttentionOp(type);
}

absl::Status RunKernel(const qeff::v1::Op& op, const std::vector<TensorRef>& in,
                       const std::vector<TensorRef>& out, ThreadPool* pool) {
  const std::string& t = op.type();
  if (IsElementwise(t)) return RunElementwise(op, in, out, pool);
  if (IsLinalg(t)) return RunLinalg(op, in, out, pool);
  if (IsTensorOp(t)) return RunTensorOp(op, in, out, pool);
  if (IsNnOp(t)) return RunNnOp(op, in, out, pool);
  if (IsAttentionOp(t)) return RunAttention(op, in, out, pool);
  return absl::UnimplementedError(absl::StrCat("no cpu kernel for op '", t, "'"));
}

}  // namespace qeff::device
