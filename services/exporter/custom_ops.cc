#include "services/exporter/custom_ops.h"

#include <array>
#include <vector>

namespace qeff::exporter {
namespace {

// Builds a function body node by node with readable local names.
class Body {
 public:
  explicit Body(onnx::FunctionProto* fn) : fn_(fn) {}

  std::string Op(const std::string& op, const std::vector<std::string>& inputs, const std::string& out,
                 const std::vector<Attr>& attrs = {}) {
    auto* n = fn_->add_node();
    n->set_op_type(op);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(out);
    for (const auto& a : attrs) *n->add_attribute() = a;
    return out;
  }

  // An op with several outputs.
  void OpN(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outs,
           const std::vector<Attr>& attrs = {}) {
    auto* n = fn_->add_node();
    n->set_op_type(op);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outs) n->add_output(o);
    for (const auto& a : attrs) *n->add_attribute() = a;
  }

  std::string ConstF32(const std::string& out, float value) {
    Attr a;
    a.set_name("value_float");
    a.set_type(onnx::AttributeProto::FLOAT);
    a.set_f(value);
    return Op("Constant", {}, out, {a});
  }

  std::string ConstI64(const std::string& out, const std::vector<int64_t>& values, bool scalar) {
    Attr a;
    a.set_name("value");
    a.set_type(onnx::AttributeProto::TENSOR);
    auto* t = a.mutable_t();
    t->set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return Op("Constant", {}, out, {a});
  }

 private:
  onnx::FunctionProto* fn_;
};

onnx::FunctionProto NewFunction(const char* domain, const char* name, const std::vector<std::string>& inputs,
                                const std::vector<std::string>& outputs) {
  onnx::FunctionProto fn;
  fn.set_domain(domain);
  fn.set_name(name);
  for (const auto& i : inputs) fn.add_input(i);
  for (const auto& o : outputs) fn.add_output(o);
  auto* op = fn.add_opset_import();
  op->set_domain("");
  op->set_version(kOnnxOpset);
  return fn;
}

// The CtxScatter / CtxScatterCB body: ScatterND with indices [B,H,S,3] = (row, h, pos[b,s]),
// row = b, or batch_index[b] with `cb`. The non-CB node list is what CtxScatter always had.
void ScatterBody(Body& b, bool cb) {
  b.ConstI64("zero", {0}, true);
  b.ConstI64("one", {1}, true);
  // Negative positions (padding) go to slot C-1.
  b.Op("Shape", {"data"}, "ctx_len", {AttrInt("start", 2), AttrInt("end", 3)});
  b.Op("Less", {"position_ids", "zero"}, "is_pad");
  b.Op("Add", {"position_ids", "ctx_len"}, "wrapped");
  b.Op("Where", {"is_pad", "wrapped", "position_ids"}, "pos");
  b.Op("Shape", {"updates"}, "upd_shape");
  b.Op("Shape", {"updates"}, "bhs", {AttrInt("start", 0), AttrInt("end", 3)});
  if (!cb) {
    b.Op("Gather", {"upd_shape", "zero"}, "batch");
  }
  b.Op("Gather", {"upd_shape", "one"}, "heads");
  if (!cb) {
    b.Op("Range", {"zero", "batch", "one"}, "b_range");
  }
  b.Op("Range", {"zero", "heads", "one"}, "h_range");
  if (cb) {
    b.ConstI64("axes_2", {2}, false);
  } else {
    b.ConstI64("axes_12", {1, 2}, false);
  }
  b.ConstI64("axes_02", {0, 2}, false);
  b.ConstI64("axes_1", {1}, false);
  b.ConstI64("axes_3", {3}, false);
  if (cb) {
    b.Op("Unsqueeze", {"batch_index", "axes_2"}, "b3");  // [B,1] -> [B,1,1]
  } else {
    b.Op("Unsqueeze", {"b_range", "axes_12"}, "b3");
  }
  b.Op("Unsqueeze", {"h_range", "axes_02"}, "h3");
  b.Op("Unsqueeze", {"pos", "axes_1"}, "p3");
  b.Op("Expand", {"b3", "bhs"}, "b_exp");
  b.Op("Expand", {"h3", "bhs"}, "h_exp");
  b.Op("Expand", {"p3", "bhs"}, "p_exp");
  b.Op("Unsqueeze", {"b_exp", "axes_3"}, "b4");
  b.Op("Unsqueeze", {"h_exp", "axes_3"}, "h4");
  b.Op("Unsqueeze", {"p_exp", "axes_3"}, "p4");
  b.Op("Concat", {"b4", "h4", "p4"}, "indices", {AttrInt("axis", 3)});
  b.Op("ScatterND", {"data", "indices", "updates"}, "out");
}

}  // namespace

onnx::FunctionProto CtxScatterFunction() {
  auto fn = NewFunction(kQualcommDomain, "CtxScatter", {"data", "position_ids", "updates"}, {"out"});
  Body b(&fn);
  ScatterBody(b, /*cb=*/false);
  return fn;
}

onnx::FunctionProto CtxScatterCBFunction() {
  auto fn = NewFunction(kQualcommDomain, "CtxScatterCB", {"data", "batch_index", "position_ids", "updates"}, {"out"});
  Body b(&fn);
  ScatterBody(b, /*cb=*/true);
  return fn;
}

onnx::FunctionProto CtxGatherFunction() {
  auto fn = NewFunction(kQualcommDomain, "CtxGather", {"data", "ctx_indices"}, {"out"});
  Body b(&fn);
  b.Op("Shape", {"data"}, "bh", {AttrInt("start", 0), AttrInt("end", 2)});
  b.Op("Shape", {"ctx_indices"}, "len", {AttrInt("start", 2), AttrInt("end", 3)});
  b.Op("Concat", {"bh", "len"}, "bhl", {AttrInt("axis", 0)});
  b.Op("Expand", {"ctx_indices", "bhl"}, "idx");
  b.ConstI64("axes_3", {3}, false);
  b.Op("Unsqueeze", {"idx", "axes_3"}, "idx4");
  b.Op("GatherND", {"data", "idx4"}, "out", {AttrInt("batch_dims", 2)});
  return fn;
}

onnx::FunctionProto CtxGatherCBFunction() {
  auto fn = NewFunction(kQualcommDomain, "CtxGatherCB", {"data", "batch_index", "ctx_indices"}, {"out"});
  Body b(&fn);
  // GatherND over indices [B,H,L,3] = (batch_index[b], h, ctx_indices[l]).
  b.ConstI64("zero", {0}, true);
  b.ConstI64("one", {1}, true);
  b.Op("Shape", {"batch_index"}, "b", {AttrInt("start", 0), AttrInt("end", 1)});
  b.Op("Shape", {"data"}, "h", {AttrInt("start", 1), AttrInt("end", 2)});
  b.Op("Shape", {"ctx_indices"}, "len", {AttrInt("start", 2), AttrInt("end", 3)});
  b.Op("Concat", {"b", "h", "len"}, "bhl", {AttrInt("axis", 0)});
  b.Op("Shape", {"data"}, "data_shape");
  b.Op("Gather", {"data_shape", "one"}, "heads");
  b.Op("Range", {"zero", "heads", "one"}, "h_range");
  b.ConstI64("axes_2", {2}, false);
  b.ConstI64("axes_02", {0, 2}, false);
  b.ConstI64("axes_3", {3}, false);
  b.Op("Unsqueeze", {"batch_index", "axes_2"}, "b3");  // [B,1] -> [B,1,1]
  b.Op("Unsqueeze", {"h_range", "axes_02"}, "h3");     // [1,H,1]
  b.Op("Expand", {"b3", "bhl"}, "b_exp");
  b.Op("Expand", {"h3", "bhl"}, "h_exp");
  b.Op("Expand", {"ctx_indices", "bhl"}, "i_exp");
  b.Op("Unsqueeze", {"b_exp", "axes_3"}, "b4");
  b.Op("Unsqueeze", {"h_exp", "axes_3"}, "h4");
  b.Op("Unsqueeze", {"i_exp", "axes_3"}, "i4");
  b.Op("Concat", {"b4", "h4", "i4"}, "indices", {AttrInt("axis", 3)});
  b.Op("GatherND", {"data", "indices"}, "out");
  return fn;
}

onnx::FunctionProto CustomRMSNormFunction() {
  auto fn = NewFunction(kQtiDomain, "CustomRMSNorm", {"hidden_states", "weight"}, {"out"});
  fn.add_attribute("epsilon");
  Body b(&fn);
  Attr eps;
  eps.set_name("value_float");
  eps.set_type(onnx::AttributeProto::FLOAT);
  eps.set_ref_attr_name("epsilon");
  b.Op("Constant", {}, "eps", {eps});
  b.Op("Mul", {"hidden_states", "hidden_states"}, "sq");
  b.Op("ReduceMean", {"sq"}, "mean_sq", {AttrInts("axes", {-1}), AttrInt("keepdims", 1)});
  b.Op("Add", {"mean_sq", "eps"}, "var_eps");
  b.Op("Sqrt", {"var_eps"}, "rms");
  b.Op("Div", {"hidden_states", "rms"}, "normed");
  b.Op("Mul", {"weight", "normed"}, "out");
  return fn;
}

onnx::FunctionProto SparseMoEFunction(int64_t num_experts, int64_t top_k, bool normalize) {
  std::vector<std::string> inputs = {"x", "router"};
  for (int64_t e = 0; e < num_experts; ++e) {
    for (const char* p : {"gate", "up", "down"}) inputs.push_back(std::string(p) + std::to_string(e));
  }
  auto fn = NewFunction(kQeffDomain, "SparseMoE", inputs, {"out"});
  fn.add_attribute("num_experts");
  fn.add_attribute("top_k");
  fn.add_attribute("normalize");
  Body b(&fn);
  // Routing weights [.., E]: the top-k softmax probabilities (renormalized), zero elsewhere.
  b.Op("MatMul", {"x", "router"}, "router_logits");
  b.Op("Softmax", {"router_logits"}, "probs", {AttrInt("axis", -1)});
  b.ConstI64("k", {top_k}, false);
  b.OpN("TopK", {"probs", "k"}, {"top_p", "top_i"}, {AttrInt("axis", -1)});
  std::string top = "top_p";
  if (normalize) {
    b.ConstI64("last_axis", {-1}, false);
    b.Op("ReduceSum", {"top_p", "last_axis"}, "top_sum", {AttrInt("keepdims", 1)});
    top = b.Op("Div", {"top_p", "top_sum"}, "top_norm");
  }
  b.ConstF32("zero", 0.0f);
  b.Op("Mul", {"probs", "zero"}, "zeros");
  b.Op("ScatterElements", {"zeros", "top_i", top}, "routing", {AttrInt("axis", -1)});
  // Every expert on every token, weighted (zero weight off the top-k): the dense form any ONNX
  // runtime executes; the cpu device runs only the routed experts.
  std::string acc;
  for (int64_t e = 0; e < num_experts; ++e) {
    const std::string s = std::to_string(e);
    b.Op("MatMul", {"x", "gate" + s}, "g" + s);
    b.Op("Sigmoid", {"g" + s}, "sg" + s);
    b.Op("Mul", {"g" + s, "sg" + s}, "act" + s);
    b.Op("MatMul", {"x", "up" + s}, "u" + s);
    b.Op("Mul", {"act" + s, "u" + s}, "h" + s);
    b.Op("MatMul", {"h" + s, "down" + s}, "y" + s);
    b.ConstI64("e" + s, {e}, false);
    b.Op("Gather", {"routing", "e" + s}, "w" + s, {AttrInt("axis", -1)});
    b.Op("Mul", {"y" + s, "w" + s}, "c" + s);
    if (acc.empty()) {
      acc = "c" + s;
    } else {
      acc = b.Op("Add", {acc, "c" + s}, e + 1 == num_experts ? "out" : "acc" + s);
    }
  }
  if (acc != "out") b.Op("Identity", {acc}, "out");
  return fn;
}

void AddFunction(onnx::ModelProto& model, const onnx::FunctionProto& fn) {
  for (const auto& f : model.functions()) {
    if (f.domain() == fn.domain() && f.name() == fn.name()) return;
  }
  *model.add_functions() = fn;
  for (const auto& op : model.opset_import()) {
    if (op.domain() == fn.domain()) return;
  }
  auto* op = model.add_opset_import();
  op->set_domain(fn.domain());
  op->set_version(1);
}

void CtxScatter(GraphBuilder& g, const std::string& data, const std::string& position_ids,
                const std::string& updates, const std::string& output) {
  AddFunction(g.model(), CtxScatterFunction());
  g.NodeNamed("CtxScatter", {data, position_ids, updates}, {output}, {}, kQualcommDomain);
}

std::string CtxGather(GraphBuilder& g, const std::string& data, const std::string& ctx_indices) {
  AddFunction(g.model(), CtxGatherFunction());
  return g.Node("CtxGather", {data, ctx_indices}, {}, "ctx_gather", kQualcommDomain);
}

void CtxScatterCB(GraphBuilder& g, const std::string& data, const std::string& batch_index,
                  const std::string& position_ids, const std::string& updates, const std::string& output) {
  AddFunction(g.model(), CtxScatterCBFunction());
  g.NodeNamed("CtxScatterCB", {data, batch_index, position_ids, updates}, {output}, {}, kQualcommDomain);
}

std::string CtxGatherCB(GraphBuilder& g, const std::string& data, const std::string& batch_index,
                        const std::string& ctx_indices) {
  AddFunction(g.model(), CtxGatherCBFunction());
  return g.Node("CtxGatherCB", {data, batch_index, ctx_indices}, {}, "ctx_gather", kQualcommDomain);
}

std::string CustomRMSNorm(GraphBuilder& g, const std::string& x, const std::string& weight, float epsilon) {
  AddFunction(g.model(), CustomRMSNormFunction());
  return g.Node("CustomRMSNorm", {x, weight}, {AttrFloat("epsilon", epsilon)}, "rms_norm", kQtiDomain);
}

std::string SparseMoE(GraphBuilder& g, const std::string& x, const std::string& router,
                      const std::vector<std::array<std::string, 3>>& experts, int64_t top_k, bool normalize) {
  AddFunction(g.model(), SparseMoEFunction(static_cast<int64_t>(experts.size()), top_k, normalize));
  std::vector<std::string> inputs = {x, router};
  for (const auto& e : experts) inputs.insert(inputs.end(), e.begin(), e.end());
  return g.Node("SparseMoE", inputs,
                {AttrInt("num_experts", static_cast<int64_t>(experts.size())), AttrInt("top_k", top_k),
                 AttrInt("normalize", normalize ? 1 : 0)},
                "moe", kQeffDomain);
}

}  // namespace qeff::exporter
