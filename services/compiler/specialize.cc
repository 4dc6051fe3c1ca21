#include "services/compiler/specialize.h"

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"
#include "services/compiler/shape_rules.h"

namespace qeff::compiler {
namespace {

constexpr const char* kRetainedSuffix = "_RetainedState";
// Folding never materializes more than this per tensor (guards against exploding constants).
constexpr size_t kMaxFoldBytes = size_t{4} << 30;

absl::StatusOr<device::Shape> BindDims(const IoDecl& d, const std::map<std::string, int64_t>& symbols) {
  device::Shape s;
  for (size_t i = 0; i < d.dims.size(); ++i) {
    if (d.dims[i] >= 0) {
      s.push_back(d.dims[i]);
      continue;
    }
    auto it = symbols.find(d.symbols[i]);
    if (it == symbols.end()) {
      return absl::InvalidArgumentError(absl::StrCat("input ", d.name, " has dim ", i, " named '", d.symbols[i],
                                                     "', which no specialization binds (known: batch_size, seq_len, ctx_len)"));
    }
    s.push_back(it->second);
  }
  return s;
}

}  // namespace

absl::StatusOr<IrGraph> Specialize(const OnnxModel& model, const std::map<std::string, int64_t>& symbols,
                                   device::DType kv_cache_dtype) {
  IrGraph g;
  std::map<std::string, int> by_name;
  std::map<std::string, bool> output_names;
  for (const auto& o : model.outputs()) output_names[o.name] = true;

  for (const auto& in : model.inputs()) {
    if (in.dtype == qeff::v1::DTYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("input ", in.name, " has an unsupported element type"));
    }
    IrValue v;
    v.name = in.name;
    v.dtype = in.dtype;
    QEFF_ASSIGN_OR_RETURN(v.shape, BindDims(in, symbols));
    if (!ShapeWithinLimits(v.shape)) {
      return absl::InvalidArgumentError(absl::StrCat("input ", in.name, " has a negative or too large shape"));
    }
    const bool retained = output_names.count(in.name + kRetainedSuffix) > 0;
    if (retained) {
      if (v.dtype == qeff::v1::F32) v.dtype = kv_cache_dtype;
      v.state = static_cast<int>(g.states.size());
      g.states.push_back({in.name, in.name + kRetainedSuffix, v.dtype, v.shape, -1});
    } else {
      v.host_input = true;
    }
    int idx = g.AddValue(v);
    by_name[in.name] = idx;
    if (retained) g.states.back().value = idx;
    else g.inputs.emplace_back(in.name, idx);
  }

  auto lookup = [&](const std::string& name) -> absl::StatusOr<int> {
    auto it = by_name.find(name);
    if (it != by_name.end()) return it->second;
    auto init = model.initializers().find(name);
    if (init == model.initializers().end()) {
      return absl::InvalidArgumentError(absl::StrCat("value '", name, "' is used before it is defined"));
    }
    IrValue v;
    v.name = name;
    v.dtype = init->second->dtype;
    v.shape = init->second->shape;
    v.constant = init->second;
    int idx = g.AddValue(v);
    by_name[name] = idx;
    return idx;
  };

  for (const auto& node : model.graph().node()) {
    std::vector<int> in_idx;
    std::vector<const IrValue*> ins;
    for (const auto& name : node.input()) {
      if (name.empty()) {
        in_idx.push_back(-1);
        continue;
      }
      QEFF_ASSIGN_OR_RETURN(int i, lookup(name));
      in_idx.push_back(i);
    }
    for (int i : in_idx) ins.push_back(i < 0 ? nullptr : &g.values[i]);
    QEFF_ASSIGN_OR_RETURN(LoweredOp L, LowerOp(node, ins));

    if (L.constant) {
      if (node.output_size() != 1) return absl::InvalidArgumentError(absl::StrCat("node ", node.name(), ": one output expected"));
      IrValue v;
      v.name = node.output(0);
      v.dtype = L.constant->dtype;
      v.shape = L.constant->shape;
      v.constant = L.constant;
      by_name[v.name] = g.AddValue(v);
      continue;
    }
    for (const auto& shape : L.out_shapes) {
      if (!ShapeWithinLimits(shape)) {
        return absl::InvalidArgumentError(absl::StrCat("node ", node.name(), " (", node.op_type(), "): output shape ",
                                                       device::ShapeString(shape), " is negative or too large"));
      }
    }
    if (static_cast<int>(L.out_shapes.size()) != node.output_size()) {
      return absl::InvalidArgumentError(absl::StrCat("node ", node.name(), " (", node.op_type(), "): ", node.output_size(),
                                                     " outputs, the op defines ", L.out_shapes.size()));
    }
    std::vector<int> kin;
    bool all_const = true;
    for (int k : L.kernel_inputs) {
      const int vi = in_idx[k];
      kin.push_back(vi);
      if (vi >= 0 && !g.values[vi].constant) all_const = false;
    }
    if (all_const) {
      // Fold with the device kernel.
      std::vector<device::TensorRef> kins, kouts;
      for (int vi : kin) kins.push_back(vi < 0 ? device::TensorRef{} : g.values[vi].constant->ref());
      std::vector<std::shared_ptr<ConstTensor>> results;
      for (size_t o = 0; o < L.out_shapes.size(); ++o) {
        auto c = ConstTensor::Allocate(L.out_dtypes[o], L.out_shapes[o]);
        if (c->bytes() > kMaxFoldBytes || c->data == nullptr) {
          return absl::ResourceExhaustedError(absl::StrCat("node ", node.name(), ": folded constant too large"));
        }
        kouts.push_back({c->mutable_data(), c->dtype, c->shape});
        results.push_back(c);
      }
      absl::Status st = device::RunKernel(L.op, kins, kouts, nullptr);
      if (!st.ok()) return absl::Status(st.code(), absl::StrCat("folding node ", node.name(), ": ", st.message()));
      for (size_t o = 0; o < results.size(); ++o) {
        IrValue v;
        v.name = node.output(static_cast<int>(o));
        v.dtype = results[o]->dtype;
        v.shape = results[o]->shape;
        v.constant = results[o];
        by_name[v.name] = g.AddValue(v);
      }
      continue;
    }
    IrNode n;
    n.op = L.op;
    n.in = kin;
    const int node_idx = static_cast<int>(g.nodes.size());
    for (size_t o = 0; o < L.out_shapes.size(); ++o) {
      IrValue v;
      v.name = node.output(static_cast<int>(o));
      v.dtype = L.out_dtypes[o];
      v.shape = L.out_shapes[o];
      v.producer = node_idx;
      if (v.name.empty()) v.name = absl::StrCat(node.name(), ":unused", o);
      const int vi = g.AddValue(v);
      if (!node.output(static_cast<int>(o)).empty()) by_name[node.output(static_cast<int>(o))] = vi;
      n.out.push_back(vi);
    }
    if (L.view) g.values[n.out[0]].alias_of = kin[0];
    g.nodes.push_back(std::move(n));
  }

  for (const auto& o : model.outputs()) {
    auto it = by_name.find(o.name);
    if (it == by_name.end()) return absl::InvalidArgumentError(absl::StrCat("graph output ", o.name, " is never produced"));
    bool is_state = false;
    for (const auto& st : g.states) is_state |= st.output_name == o.name;
    if (is_state) continue;  // wired by the retained-state pass
    int v = it->second;
    if (g.values[v].constant) {
      // A constant output still needs a host-visible buffer: copy it there on every call.
      IrValue copy;
      copy.name = o.name + ":out";
      copy.dtype = g.values[v].dtype;
      copy.shape = g.values[v].shape;
      copy.producer = static_cast<int>(g.nodes.size());
      const int cv = g.AddValue(copy);
      IrNode n;
      n.op.set_type("Copy");
      n.in = {v};
      n.out = {cv};
      g.nodes.push_back(n);
      v = cv;
    }
    g.outputs.emplace_back(o.name, v);
  }
  // Remember which value feeds each retained-state output.
  for (auto& st : g.states) {
    auto it = by_name.find(st.output_name);
    if (it == by_name.end()) return absl::InvalidArgumentError(absl::StrCat("output ", st.output_name, " is never produced"));
    if (g.values[it->second].shape != st.shape || g.values[it->second].dtype != st.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(st.output_name, " (", device::DTypeName(g.values[it->second].dtype), " ",
                       device::ShapeString(g.values[it->second].shape), ") differs in shape or type from ", st.name, " (",
                       device::DTypeName(st.dtype), " ", device::ShapeString(st.shape), ")",
                       kv_cache_dtype != qeff::v1::F32
                           ? "; a bf16 KV cache needs the new state written by CtxScatter: compile with "
                             "kv_cache_dtype fp32"
                           : ""));
    }
    g.outputs.emplace_back(st.output_name, it->second);
  }
  return g;
}

}  // namespace qeff::compiler
