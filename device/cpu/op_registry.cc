#include "device/cpu/op_registry.h"

#include <algorithm>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace qeff::device {

// ---- AttrReader ---------------------------------------------------------------------------------

AttrReader::AttrReader(const qeff::v1::Op& op, int variant)
    : op_(op), variant_(variant), used_(static_cast<size_t>(op.attrs_size()), false) {}

const qeff::v1::Attribute* AttrReader::Find(std::string_view name) {
  for (int i = 0; i < op_.attrs_size(); ++i) {
    if (op_.attrs(i).name() == name) {
      used_[i] = true;
      return &op_.attrs(i);
    }
  }
  return nullptr;
}

bool AttrReader::Has(std::string_view name) { return Find(name) != nullptr; }

int64_t AttrReader::Int(std::string_view name, int64_t fallback) {
  const auto* a = Find(name);
  return a ? a->i() : fallback;
}

float AttrReader::Float(std::string_view name, float fallback) {
  const auto* a = Find(name);
  return a ? a->f() : fallback;
}

std::vector<int64_t> AttrReader::Ints(std::string_view name) {
  const auto* a = Find(name);
  if (!a) return {};
  return {a->ints().begin(), a->ints().end()};
}

absl::Status AttrReader::Finish() const {
  for (int i = 0; i < op_.attrs_size(); ++i) {
    if (!used_[i]) return absl::InvalidArgumentError(absl::StrCat("unknown attribute '", op_.attrs(i).name(), "'"));
    for (int j = 0; j < i; ++j) {
      if (op_.attrs(j).name() == op_.attrs(i).name()) {
        return absl::InvalidArgumentError(absl::StrCat("attribute '", op_.attrs(i).name(), "' given twice"));
      }
    }
  }
  return absl::OkStatus();
}

// ---- Registry -----------------------------------------------------------------------------------

void OpRegistry::Add(OpDef def) { defs_.push_back(std::make_unique<OpDef>(std::move(def))); }

const OpDef* OpRegistry::Find(std::string_view type) const {
  for (const auto& d : defs_) {
    if (d->name == type) return d.get();
  }
  return nullptr;
}

namespace {

struct Registry {
  OpRegistry ops;
  std::unordered_map<std::string, const OpDef*> by_name;

  Registry() {
    RegisterElementwiseOps(ops);
    RegisterLinalgOps(ops);
    RegisterTensorOps(ops);
    RegisterNnOps(ops);
    RegisterAttentionOps(ops);
    RegisterMoeOps(ops);
    for (const auto& d : ops.defs()) by_name.emplace(d->name, d.get());
  }
};

const Registry& TheRegistry() {
  static const Registry* r = new Registry();
  return *r;
}

}  // namespace

const OpDef* FindOp(std::string_view type) {
  const auto& m = TheRegistry().by_name;
  auto it = m.find(std::string(type));
  return it == m.end() ? nullptr : it->second;
}

std::vector<const OpDef*> AllOps() {
  std::vector<const OpDef*> out;
  for (const auto& d : TheRegistry().ops.defs()) out.push_back(d.get());
  return out;
}

absl::StatusOr<BoundOp> BindOp(const qeff::v1::Op& op) {
  const OpDef* def = FindOp(op.type());
  if (def == nullptr) return absl::UnimplementedError(absl::StrCat("no cpu kernel for op '", op.type(), "'"));
  AttrReader reader(op, def->variant);
  auto attrs = def->parse(reader);
  if (!attrs.ok()) return attrs.status();
  return BoundOp{def, std::move(attrs).value()};
}

absl::Status BoundOp::Check(const Tensors& in, const Tensors& out) const {
  const int ni = static_cast<int>(in.size()), no = static_cast<int>(out.size());
  if (ni < def->min_inputs || (def->max_inputs != kAnyCount && ni > def->max_inputs)) {
    return absl::InvalidArgumentError(absl::StrCat(ni, " inputs; ", def->name, " takes ",
                                                   def->min_inputs == def->max_inputs
                                                       ? absl::StrCat(def->min_inputs)
                                                       : absl::StrCat(def->min_inputs, " to ",
                                                                      def->max_inputs == kAnyCount
                                                                          ? std::string("any number")
                                                                          : absl::StrCat(def->max_inputs))));
  }
  if (no < def->min_outputs || (def->max_outputs != kAnyCount && no > def->max_outputs)) {
    return absl::InvalidArgumentError(absl::StrCat(no, " outputs; ", def->name, " makes ", def->min_outputs,
                                                   def->min_outputs == def->max_outputs ? "" : " or more"));
  }
  for (int i = 0; i < no; ++i) {
    if (!Present(out[i])) return absl::InvalidArgumentError(absl::StrCat("output ", i, " has no type"));
  }
  return def->rule(attrs.get(), in, out);
}

// ---- Rule helpers -------------------------------------------------------------------------------

absl::Status RuleError(const std::string& what) { return absl::InvalidArgumentError(what); }

bool IsIndexDType(DType d) { return d == qeff::v1::I64 || d == qeff::v1::I32; }

absl::Status ExpectDType(const TensorRef& t, const char* what, std::initializer_list<DType> dtypes) {
  if (!Present(t)) return absl::InvalidArgumentError(absl::StrCat(what, " is missing"));
  if (std::find(dtypes.begin(), dtypes.end(), t.dtype) != dtypes.end()) return absl::OkStatus();
  std::string want;
  for (DType d : dtypes) absl::StrAppend(&want, want.empty() ? "" : " or ", DTypeName(d));
  return absl::InvalidArgumentError(absl::StrCat(what, " is ", DTypeName(t.dtype), ", must be ", want));
}

absl::Status ExpectRank(const TensorRef& t, const char* what, size_t rank) {
  if (t.shape.size() == rank) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " ", ShapeString(t.shape), " must have rank ", rank));
}

absl::Status ExpectShape(const TensorRef& t, const char* what, const Shape& shape) {
  if (t.shape == shape) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " is ", ShapeString(t.shape), ", must be ", ShapeString(shape)));
}

absl::Status ExpectLike(const TensorRef& t, const char* what, DType dtype, const Shape& shape) {
  if (t.dtype != dtype) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", DTypeName(t.dtype), ", must be ", DTypeName(dtype)));
  }
  return ExpectShape(t, what, shape);
}

absl::StatusOr<Shape> BroadcastShapes(std::initializer_list<const Shape*> shapes) {
  size_t r = 0;
  for (const Shape* s : shapes) r = std::max(r, s->size());
  Shape out(r, 1);
  for (const Shape* s : shapes) {
    const size_t off = r - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      const int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (o == 1) {
        o = d;
      } else if (d != 1 && d != o) {
        std::string all;
        for (const Shape* x : shapes) absl::StrAppend(&all, all.empty() ? "" : " and ", ShapeString(*x));
        return absl::InvalidArgumentError(absl::StrCat("shapes ", all, " do not broadcast"));
      }
    }
  }
  return out;
}

}  // namespace qeff::device
