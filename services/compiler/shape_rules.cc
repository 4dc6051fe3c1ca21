#include "services/compiler/shape_rules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"

namespace qeff::compiler {
namespace {

using device::DType;
using device::Shape;

const onnx::AttributeProto* Attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}
int64_t AttrI(const onnx::NodeProto& n, const std::string& name, int64_t d) {
  const auto* a = Attr(n, name);
  return a ? a->i() : d;
}
float AttrF(const onnx::NodeProto& n, const std::string& name, float d) {
  const auto* a = Attr(n, name);
  return a ? a->f() : d;
}
bool HasInts(const onnx::NodeProto& n, const std::string& name) { return Attr(n, name) != nullptr; }
std::vector<int64_t> AttrInts(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = Attr(n, name);
  if (!a) return {};
  return {a->ints().begin(), a->ints().end()};
}

absl::Status Err(const onnx::NodeProto& n, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("node '", n.name(), "' (", n.op_type(), "): ", msg));
}

// Integer contents of a constant input (shape-like inputs).
absl::StatusOr<std::vector<int64_t>> ConstInts(const onnx::NodeProto& n, const IrValue* v, const char* what) {
  if (v == nullptr) return Err(n, absl::StrCat("missing input ", what));
  if (!v->constant) {
    return Err(n, absl::StrCat("input ", what, " ('", v->name,
                               "') must be a constant once shapes are specialized; data-dependent shapes are not supported"));
  }
  std::vector<int64_t> out;
  const int64_t k = device::NumElements(v->shape);
  for (int64_t i = 0; i < k; ++i) {
    if (v->dtype == qeff::v1::I64) out.push_back(reinterpret_cast<const int64_t*>(v->constant->data)[i]);
    else if (v->dtype == qeff::v1::I32) out.push_back(reinterpret_cast<const int32_t*>(v->constant->data)[i]);
    else return Err(n, absl::StrCat("input ", what, " must be integer"));
  }
  return out;
}

absl::StatusOr<int64_t> NormAxis(const onnx::NodeProto& n, int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) return Err(n, absl::StrCat("axis ", axis, " out of range for rank ", rank));
  return axis < 0 ? axis + r : axis;
}

absl::StatusOr<Shape> Broadcast(const onnx::NodeProto& n, const std::vector<const IrValue*>& ins) {
  size_t r = 0;
  for (const auto* v : ins) r = std::max(r, v->shape.size());
  Shape out(r, 1);
  for (const auto* v : ins) {
    const size_t off = r - v->shape.size();
    for (size_t i = 0; i < v->shape.size(); ++i) {
      int64_t d = v->shape[i];
      int64_t& o = out[off + i];
      if (o == 1) o = d;
      else if (d != 1 && d != o) return Err(n, "shapes cannot be broadcast");
    }
  }
  return out;
}

const std::set<std::string> kCompare = {"Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual", "And", "Or"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Greater", "Less",
                                       "Equal", "GreaterOrEqual", "LessOrEqual", "And", "Or"};
const std::set<std::string> kUnary = {"Sqrt", "Tanh", "Erf", "Exp", "Neg", "Sigmoid", "Sin", "Cos", "Relu",
                                      "Abs", "Log", "Reciprocal", "Not", "Softplus"};
const std::set<std::string> kViews = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"};

}  // namespace

absl::StatusOr<LoweredOp> LowerOp(const onnx::NodeProto& n, const std::vector<const IrValue*>& ins) {
  LoweredOp L;
  std::string type = n.op_type();
  const std::string& domain = n.domain();
  auto need = [&](size_t k) -> absl::Status {
    if (ins.size() < k) return Err(n, absl::StrCat("needs ", k, " inputs"));
    for (size_t i = 0; i < k; ++i)
      if (ins[i] == nullptr) return Err(n, absl::StrCat("input ", i, " is missing"));
    return absl::OkStatus();
  };
  auto one = [&](DType dt, Shape s) {
    L.out_dtypes = {dt};
    L.out_shapes = {std::move(s)};
  };
  auto all_inputs = [&](size_t k) {
    for (size_t i = 0; i < k; ++i) L.kernel_inputs.push_back(static_cast<int>(i));
  };

  if (domain == "com.qualcomm.cloud" || domain == "com.qti.aisw.onnx" || domain == "qeff") {
    if (type == "CtxScatter") {
      QEFF_RETURN_IF_ERROR(need(3));
      all_inputs(3);
      one(ins[0]->dtype, ins[0]->shape);
    } else if (type == "CtxGather") {
      QEFF_RETURN_IF_ERROR(need(2));
      if (ins[0]->shape.size() != 4) return Err(n, "data must be [B,H,C,D]");
      all_inputs(2);
      const Shape& d = ins[0]->shape;
      one(device::GatheredType(ins[0]->dtype), {d[0], d[1], device::NumElements(ins[1]->shape), d[3]});
    } else if (type == "CtxScatterCB") {
      // data [FBS,H,C,D], batch_index [B,1], position_ids [B,S], updates [B,H,S,D] -> data's shape.
      QEFF_RETURN_IF_ERROR(need(4));
      const Shape& d = ins[0]->shape;
      const Shape& bi = ins[1]->shape;
      const Shape& p = ins[2]->shape;
      const Shape& u = ins[3]->shape;
      if (d.size() != 4 || u.size() != 4 || p.size() != 2 || bi.empty() || device::NumElements(bi) != bi[0]) {
        return Err(n, "expects data [FBS,H,C,D], batch_index [B,1], position_ids [B,S], updates [B,H,S,D]");
      }
      if (u[0] != bi[0] || u[1] != d[1] || u[3] != d[3] || (p[0] != 1 && p[0] != u[0]) || p[1] != u[2]) {
        return Err(n, absl::StrCat("updates ", device::ShapeString(u), " do not fit data ", device::ShapeString(d),
                                   ", batch_index ", device::ShapeString(bi), ", position_ids ",
                                   device::ShapeString(p)));
      }
      if (!device::CacheTakes(ins[0]->dtype, ins[3]->dtype)) return Err(n, "updates do not fit the cache's type");
      all_inputs(4);
      one(ins[0]->dtype, d);
    } else if (type == "CtxGatherCB") {
      // data [FBS,H,C,D], batch_index [B,1], ctx_indices (L indices) -> [B,H,L,D].
      QEFF_RETURN_IF_ERROR(need(3));
      const Shape& d = ins[0]->shape;
      const Shape& bi = ins[1]->shape;
      if (d.size() != 4) return Err(n, "data must be [FBS,H,C,D]");
      if (bi.empty() || device::NumElements(bi) != bi[0]) return Err(n, "batch_index must be [B,1]");
      all_inputs(3);
      one(device::GatheredType(ins[0]->dtype), {bi[0], d[1], device::NumElements(ins[2]->shape), d[3]});
    } else if (type == "CustomRMSNorm" || type == "RMSNorm") {
      QEFF_RETURN_IF_ERROR(need(2));
      all_inputs(2);
      type = "RMSNorm";
      device::SetAttrFloat(L.op, "epsilon", AttrF(n, "epsilon", 1e-6f));
      device::SetAttrInt(L.op, "axis", static_cast<int64_t>(ins[0]->shape.size()) - 1);
      one(ins[0]->dtype, ins[0]->shape);
    } else if (type == "SparseMoE") {
      // x [..., H], router [H, E], then per expert gate [H, I], up [H, I], down [I, H]; all
      // weights initializers (the compiler packs them like Linear weights).
      const int64_t E = AttrI(n, "num_experts", 0), top_k = AttrI(n, "top_k", 0);
      if (E < 1 || E > 4096 || top_k < 1 || top_k > E) {
        return Err(n, absl::StrCat("num_experts = ", E, ", top_k = ", top_k, " must satisfy 1 <= top_k <= num_experts"));
      }
      QEFF_RETURN_IF_ERROR(need(static_cast<size_t>(2 + 3 * E)));
      if (ins.size() != static_cast<size_t>(2 + 3 * E)) return Err(n, absl::StrCat("needs exactly ", 2 + 3 * E, " inputs"));
      const Shape& x = ins[0]->shape;
      if (x.empty() || ins[0]->dtype != qeff::v1::F32) return Err(n, "x must be float32 [..., hidden]");
      const int64_t H = x.back();
      const int64_t I = ins[2]->shape.size() == 2 ? ins[2]->shape[1] : -1;
      for (size_t i = 1; i < ins.size(); ++i) {
        const Shape want = i == 1 ? Shape{H, E} : (i - 2) % 3 == 2 ? Shape{I, H} : Shape{H, I};
        if (!ins[i]->constant || ins[i]->dtype != qeff::v1::F32 || ins[i]->shape != want) {
          return Err(n, absl::StrCat("input ", i, " must be a float32 initializer ", device::ShapeString(want)));
        }
      }
      all_inputs(ins.size());
      device::SetAttrInt(L.op, "num_experts", E);
      device::SetAttrInt(L.op, "top_k", top_k);
      device::SetAttrInt(L.op, "normalize", AttrI(n, "normalize", 1));
      one(qeff::v1::F32, x);
    } else {
      return absl::UnimplementedError(absl::StrCat("custom op ", domain, "::", type, " is not supported"));
    }
    L.op.set_type(type);
    return L;
  }
  if (!domain.empty() && domain != "ai.onnx") {
    return absl::UnimplementedError(absl::StrCat("op ", domain, "::", type, " is not supported"));
  }

  if (type == "Constant") {
    const auto* v = Attr(n, "value");
    if (v != nullptr && v->has_t()) {
      QEFF_ASSIGN_OR_RETURN(L.constant, TensorFromProto(v->t()));
    } else if (const auto* f = Attr(n, "value_float")) {
      auto c = ConstTensor::Allocate(qeff::v1::F32, {});
      *reinterpret_cast<float*>(c->mutable_data()) = f->f();
      L.constant = c;
    } else if (const auto* i = Attr(n, "value_int")) {
      auto c = ConstTensor::Allocate(qeff::v1::I64, {});
      *reinterpret_cast<int64_t*>(c->mutable_data()) = i->i();
      L.constant = c;
    } else if (const auto* is = Attr(n, "value_ints")) {
      auto c = ConstTensor::Allocate(qeff::v1::I64, {static_cast<int64_t>(is->ints_size())});
      for (int k = 0; k < is->ints_size(); ++k) reinterpret_cast<int64_t*>(c->mutable_data())[k] = is->ints(k);
      L.constant = c;
    } else {
      return Err(n, "unsupported Constant attribute");
    }
    L.op.set_type("Constant");
    return L;
  }
  if (type == "Shape") {
    QEFF_RETURN_IF_ERROR(need(1));
    const int64_t r = static_cast<int64_t>(ins[0]->shape.size());
    int64_t start = AttrI(n, "start", 0), end = AttrI(n, "end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    auto c = ConstTensor::Allocate(qeff::v1::I64, {end - start});
    for (int64_t i = start; i < end; ++i) reinterpret_cast<int64_t*>(c->mutable_data())[i - start] = ins[0]->shape[i];
    L.constant = c;
    L.op.set_type("Shape");
    return L;
  }
  if (kBinary.count(type)) {
    QEFF_RETURN_IF_ERROR(need(2));
    if (ins[0]->dtype != ins[1]->dtype) return Err(n, "input types differ");
    all_inputs(2);
    QEFF_ASSIGN_OR_RETURN(Shape s, Broadcast(n, {ins[0], ins[1]}));
    one(kCompare.count(type) ? qeff::v1::BOOL : ins[0]->dtype, s);
  } else if (type == "Where") {
    QEFF_RETURN_IF_ERROR(need(3));
    if (ins[0]->dtype != qeff::v1::BOOL) return Err(n, "condition must be bool");
    all_inputs(3);
    QEFF_ASSIGN_OR_RETURN(Shape s, Broadcast(n, {ins[0], ins[1], ins[2]}));
    one(ins[1]->dtype, s);
  } else if (kUnary.count(type)) {
    QEFF_RETURN_IF_ERROR(need(1));
    all_inputs(1);
    one(ins[0]->dtype, ins[0]->shape);
  } else if (type == "Cast") {
    QEFF_RETURN_IF_ERROR(need(1));
    all_inputs(1);
    const DType to = DTypeFromOnnx(static_cast<int>(AttrI(n, "to", 0)));
    if (to == qeff::v1::DTYPE_UNSPECIFIED) return Err(n, "unsupported target type");
    one(to, ins[0]->shape);
  } else if (type == "MatMul") {
    QEFF_RETURN_IF_ERROR(need(2));
    const Shape& a = ins[0]->shape;
    const Shape& b = ins[1]->shape;
    if (a.size() < 2 || b.size() < 2) return Err(n, "1-D MatMul operands are not supported");
    if (a.back() != b[b.size() - 2]) return Err(n, "inner dimensions differ");
    IrValue ba, bb;
    ba.shape.assign(a.begin(), a.end() - 2);
    bb.shape.assign(b.begin(), b.end() - 2);
    QEFF_ASSIGN_OR_RETURN(Shape s, Broadcast(n, {&ba, &bb}));
    s.push_back(a[a.size() - 2]);
    s.push_back(b.back());
    all_inputs(2);
    one(qeff::v1::F32, s);
  } else if (type == "Softmax") {
    QEFF_RETURN_IF_ERROR(need(1));
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", -1), ins[0]->shape.size()));
    device::SetAttrInt(L.op, "axis", axis);
    all_inputs(1);
    one(ins[0]->dtype, ins[0]->shape);
  } else if (type == "LayerNormalization") {
    QEFF_RETURN_IF_ERROR(need(2));
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", -1), ins[0]->shape.size()));
    device::SetAttrInt(L.op, "axis", axis);
    device::SetAttrFloat(L.op, "epsilon", AttrF(n, "epsilon", 1e-5f));
    L.kernel_inputs = {0, 1};
    if (ins.size() > 2 && ins[2]) L.kernel_inputs.push_back(2);
    one(ins[0]->dtype, ins[0]->shape);
    // Optional Mean / InvStdDev outputs: the normalized dims become 1.
    Shape stat(ins[0]->shape.begin(), ins[0]->shape.begin() + axis);
    stat.resize(ins[0]->shape.size(), 1);
    for (int k = 1; k < std::min(n.output_size(), 3); ++k) {
      L.out_dtypes.push_back(qeff::v1::F32);
      L.out_shapes.push_back(stat);
    }
  } else if (type == "Transpose") {
    QEFF_RETURN_IF_ERROR(need(1));
    const size_t r = ins[0]->shape.size();
    std::vector<int64_t> perm = AttrInts(n, "perm");
    if (perm.empty()) {
      for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
    }
    if (perm.size() != r) return Err(n, "perm rank mismatch");
    Shape s;
    std::vector<bool> seen(r, false);
    for (int64_t& p : perm) {
      QEFF_ASSIGN_OR_RETURN(p, NormAxis(n, p, r));
      if (seen[p]) return Err(n, "perm repeats an axis");
      seen[p] = true;
      s.push_back(ins[0]->shape[p]);
    }
    // Moving only axes of size 1 keeps every element at its offset (decode's [B, 1, H, D] <->
    // [B, H, 1, D]): a view, not a copy.
    int64_t last = -1;
    bool same_order = true;
    for (int64_t p : perm) {
      if (ins[0]->shape[p] == 1) continue;
      same_order &= p > last;
      last = p;
    }
    if (same_order) {
      type = "Reshape";
      L.view = true;
    } else {
      device::SetAttrInts(L.op, "perm", perm);
    }
    all_inputs(1);
    one(ins[0]->dtype, s);
  } else if (kViews.count(type)) {
    QEFF_RETURN_IF_ERROR(need(1));
    const Shape& in = ins[0]->shape;
    Shape s;
    if (type == "Identity") {
      s = in;
    } else if (type == "Reshape") {
      QEFF_ASSIGN_OR_RETURN(std::vector<int64_t> target, ConstInts(n, ins.size() > 1 ? ins[1] : nullptr, "shape"));
      const bool allowzero = AttrI(n, "allowzero", 0) != 0;
      int infer = -1;
      int64_t known = 1;
      for (size_t i = 0; i < target.size(); ++i) {
        int64_t d = target[i];
        if (d == 0 && !allowzero) {
          if (i >= in.size()) return Err(n, "0 in shape beyond input rank");
          d = in[i];
        }
        if (d == -1) {
          if (infer >= 0) return Err(n, "more than one -1 in shape");
          infer = static_cast<int>(i);
          s.push_back(1);
          continue;
        }
        if (d < 0) return Err(n, "negative dim in shape");
        s.push_back(d);
        if (!ShapeWithinLimits(s)) return Err(n, "shape too large");
        known *= d;
      }
      const int64_t total = device::NumElements(in);
      if (infer >= 0) {
        if (known == 0 || total % known != 0) return Err(n, "cannot infer -1 dim");
        s[infer] = total / known;
      }
      if (device::NumElements(s) != total) {
        return Err(n, absl::StrCat("cannot reshape ", device::ShapeString(in), " to ", device::ShapeString(s)));
      }
    } else if (type == "Flatten") {
      int64_t axis = AttrI(n, "axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(in.size());
      if (axis < 0 || axis > static_cast<int64_t>(in.size())) return Err(n, "axis out of range");
      int64_t a = 1, b = 1;
      for (int64_t i = 0; i < static_cast<int64_t>(in.size()); ++i) (i < axis ? a : b) *= in[i];
      s = {a, b};
    } else {  // Squeeze / Unsqueeze: axes from input 1 (opset >= 13) or the attribute
      std::vector<int64_t> axes;
      if (ins.size() > 1 && ins[1]) {
        QEFF_ASSIGN_OR_RETURN(axes, ConstInts(n, ins[1], "axes"));
      } else {
        axes = AttrInts(n, "axes");
      }
      if (type == "Unsqueeze") {
        const size_t r = in.size() + axes.size();
        std::vector<bool> ins_axis(r, false);
        for (int64_t a : axes) {
          QEFF_ASSIGN_OR_RETURN(int64_t na, NormAxis(n, a, r));
          if (ins_axis[na]) return Err(n, "axes repeat an axis");
          ins_axis[na] = true;
        }
        size_t k = 0;
        for (size_t i = 0; i < r; ++i) s.push_back(ins_axis[i] ? 1 : in[k++]);
      } else {
        std::vector<bool> drop(in.size(), false);
        if (axes.empty()) {
          for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
        }
        for (int64_t a : axes) {
          QEFF_ASSIGN_OR_RETURN(int64_t na, NormAxis(n, a, in.size()));
          if (in[na] != 1) return Err(n, "squeezed axis is not 1");
          drop[na] = true;
        }
        for (size_t i = 0; i < in.size(); ++i)
          if (!drop[i]) s.push_back(in[i]);
      }
    }
    type = "Reshape";
    L.view = true;
    all_inputs(1);
    one(ins[0]->dtype, s);
  } else if (type == "Concat") {
    if (ins.empty()) return Err(n, "needs inputs");
    QEFF_RETURN_IF_ERROR(need(ins.size()));
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", 0), ins[0]->shape.size()));
    Shape s = ins[0]->shape;
    s[axis] = 0;
    for (const auto* v : ins) {
      if (v->shape.size() != s.size() || v->dtype != ins[0]->dtype) return Err(n, "inputs differ in rank or type");
      for (size_t d = 0; d < s.size(); ++d)
        if (static_cast<int64_t>(d) != axis && v->shape[d] != s[d]) return Err(n, "inputs differ off the axis");
      s[axis] += v->shape[axis];
    }
    device::SetAttrInt(L.op, "axis", axis);
    all_inputs(ins.size());
    one(ins[0]->dtype, s);
  } else if (type == "Split") {
    QEFF_RETURN_IF_ERROR(need(1));
    const Shape& in = ins[0]->shape;
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", 0), in.size()));
    std::vector<int64_t> sizes;
    if (ins.size() > 1 && ins[1]) {
      QEFF_ASSIGN_OR_RETURN(sizes, ConstInts(n, ins[1], "split"));
    } else if (HasInts(n, "split")) {
      sizes = AttrInts(n, "split");
    } else {
      const int64_t k = n.output_size();
      if (k <= 0) return Err(n, "no outputs");
      const int64_t chunk = (in[axis] + k - 1) / k;
      for (int64_t i = 0; i < k; ++i) sizes.push_back(std::min(chunk, in[axis] - i * chunk));
    }
    if (static_cast<int>(sizes.size()) != n.output_size()) return Err(n, "split count differs from outputs");
    int64_t sum = 0;
    for (int64_t z : sizes) {
      if (z < 0) return Err(n, "negative split");
      sum += z;
      Shape s = in;
      s[axis] = z;
      L.out_dtypes.push_back(ins[0]->dtype);
      L.out_shapes.push_back(s);
    }
    if (sum != in[axis]) return Err(n, "split sizes do not add up to the axis");
    device::SetAttrInt(L.op, "axis", axis);
    all_inputs(1);
  } else if (type == "Slice") {
    QEFF_RETURN_IF_ERROR(need(3));
    const Shape& in = ins[0]->shape;
    QEFF_ASSIGN_OR_RETURN(std::vector<int64_t> starts, ConstInts(n, ins[1], "starts"));
    QEFF_ASSIGN_OR_RETURN(std::vector<int64_t> ends, ConstInts(n, ins[2], "ends"));
    std::vector<int64_t> axes, steps;
    if (ins.size() > 3 && ins[3]) {
      QEFF_ASSIGN_OR_RETURN(axes, ConstInts(n, ins[3], "axes"));
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (ins.size() > 4 && ins[4]) {
      QEFF_ASSIGN_OR_RETURN(steps, ConstInts(n, ins[4], "steps"));
    } else {
      steps.assign(starts.size(), 1);
    }
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      return Err(n, "starts/ends/axes/steps lengths differ");
    }
    std::vector<int64_t> st(in.size(), 0), sp(in.size(), 1);
    Shape s = in;
    for (size_t i = 0; i < starts.size(); ++i) {
      QEFF_ASSIGN_OR_RETURN(int64_t a, NormAxis(n, axes[i], in.size()));
      const int64_t dim = in[a];
      // Steps beyond the dimension select at most one element; clamping keeps the arithmetic
      // below from overflowing.
      const int64_t step = std::clamp<int64_t>(steps[i], -kMaxTensorElements, kMaxTensorElements);
      if (step == 0) return Err(n, "step 0");
      int64_t b = starts[i], e = ends[i];
      if (b < 0) b += dim;
      if (e < 0) e += dim;
      if (step > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        s[a] = e > b ? (e - b + step - 1) / step : 0;
      } else {
        b = std::clamp<int64_t>(b, -1, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        s[a] = b > e ? (b - e - step - 1) / (-step) : 0;
      }
      st[a] = s[a] > 0 ? b : 0;
      sp[a] = step;
    }
    device::SetAttrInts(L.op, "starts", st);
    device::SetAttrInts(L.op, "steps", sp);
    all_inputs(1);
    one(ins[0]->dtype, s);
  } else if (type == "Expand") {
    QEFF_RETURN_IF_ERROR(need(2));
    QEFF_ASSIGN_OR_RETURN(std::vector<int64_t> target, ConstInts(n, ins[1], "shape"));
    if (!ShapeWithinLimits(target)) return Err(n, "target shape is negative or too large");
    IrValue t;
    t.shape = target;
    QEFF_ASSIGN_OR_RETURN(Shape s, Broadcast(n, {ins[0], &t}));
    all_inputs(1);
    one(ins[0]->dtype, s);
  } else if (type == "Gather") {
    QEFF_RETURN_IF_ERROR(need(2));
    const Shape& d = ins[0]->shape;
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", 0), d.size()));
    Shape s(d.begin(), d.begin() + axis);
    s.insert(s.end(), ins[1]->shape.begin(), ins[1]->shape.end());
    s.insert(s.end(), d.begin() + axis + 1, d.end());
    device::SetAttrInt(L.op, "axis", axis);
    all_inputs(2);
    one(ins[0]->dtype, s);
  } else if (type == "GatherElements") {
    QEFF_RETURN_IF_ERROR(need(2));
    if (ins[0]->shape.size() != ins[1]->shape.size()) return Err(n, "data and indices ranks differ");
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", 0), ins[0]->shape.size()));
    device::SetAttrInt(L.op, "axis", axis);
    all_inputs(2);
    one(ins[0]->dtype, ins[1]->shape);
  } else if (type == "Range") {
    QEFF_RETURN_IF_ERROR(need(3));
    for (int i = 0; i < 3; ++i)
      if (!ins[i]->constant) return Err(n, "Range inputs must be constants once shapes are specialized");
    double v[3];
    for (int i = 0; i < 3; ++i) {
      const auto& c = *ins[i]->constant;
      v[i] = ins[i]->dtype == qeff::v1::F32 ? reinterpret_cast<const float*>(c.data)[0]
             : ins[i]->dtype == qeff::v1::I32 ? reinterpret_cast<const int32_t*>(c.data)[0]
                                              : static_cast<double>(reinterpret_cast<const int64_t*>(c.data)[0]);
    }
    if (v[2] == 0) return Err(n, "delta 0");
    const double steps = std::ceil((v[1] - v[0]) / v[2]);
    if (!(steps <= static_cast<double>(int64_t{1} << 31))) return Err(n, "range too long");
    const int64_t count = std::max<int64_t>(0, static_cast<int64_t>(steps));
    all_inputs(3);
    one(ins[0]->dtype, {count});
  } else if (type == "ConstantOfShape") {
    QEFF_RETURN_IF_ERROR(need(1));
    QEFF_ASSIGN_OR_RETURN(std::vector<int64_t> target, ConstInts(n, ins[0], "shape"));
    if (!ShapeWithinLimits(target)) return Err(n, "shape is negative or too large");
    DType dt = qeff::v1::F32;
    if (const auto* v = Attr(n, "value"); v != nullptr && v->has_t()) {
      QEFF_ASSIGN_OR_RETURN(ConstPtr c, TensorFromProto(v->t()));
      dt = c->dtype;
      if (dt == qeff::v1::F32) device::SetAttrFloat(L.op, "value_f", reinterpret_cast<const float*>(c->data)[0]);
      else if (dt == qeff::v1::I64) device::SetAttrInt(L.op, "value_i", reinterpret_cast<const int64_t*>(c->data)[0]);
      else if (dt == qeff::v1::I32) device::SetAttrInt(L.op, "value_i", reinterpret_cast<const int32_t*>(c->data)[0]);
      else device::SetAttrInt(L.op, "value_i", c->data[0]);
    }
    one(dt, target);
  } else if (type == "ArgMax") {
    QEFF_RETURN_IF_ERROR(need(1));
    QEFF_ASSIGN_OR_RETURN(int64_t axis, NormAxis(n, AttrI(n, "axis", 0), ins[0]->shape.size()));
    Shape s = ins[0]->shape;
    if (AttrI(n, "keepdims", 1)) s[axis] = 1;
    else s.erase(s.begin() + axis);
    device::SetAttrInt(L.op, "axis", axis);
    device::SetAttrInt(L.op, "select_last_index", AttrI(n, "select_last_index", 0));
    all_inputs(1);
    one(qeff::v1::I64, s);
  } else if (type == "ReduceMean" || type == "ReduceSum" || type == "ReduceMax") {
    QEFF_RETURN_IF_ERROR(need(1));
    std::vector<int64_t> axes = AttrInts(n, "axes");
    if (ins.size() > 1 && ins[1]) {
      QEFF_ASSIGN_OR_RETURN(axes, ConstInts(n, ins[1], "axes"));
    }
    const Shape& in = ins[0]->shape;
    if (axes.empty() && AttrI(n, "noop_with_empty_axes", 0)) {
      type = "Reshape";
      L.view = true;
      all_inputs(1);
      one(ins[0]->dtype, in);
    } else {
      std::vector<bool> red(in.size(), axes.empty());
      for (int64_t& a : axes) {
        QEFF_ASSIGN_OR_RETURN(a, NormAxis(n, a, in.size()));
        red[a] = true;
      }
      axes.clear();
      Shape s;
      for (size_t i = 0; i < in.size(); ++i) {
        if (red[i]) axes.push_back(static_cast<int64_t>(i));
        if (!red[i]) s.push_back(in[i]);
        else if (AttrI(n, "keepdims", 1)) s.push_back(1);
      }
      device::SetAttrInts(L.op, "axes", axes);
      all_inputs(1);
      one(ins[0]->dtype, s);
    }
  } else {
    return absl::UnimplementedError(absl::StrCat("node '", n.name(), "': ONNX op ", type,
                                                 " is not supported by the cpu compiler"));
  }
  L.op.set_type(type);
  return L;
}

}  // namespace qeff::compiler
