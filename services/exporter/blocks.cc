#include "services/exporter/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/status_macros.h"
#include "services/exporter/custom_ops.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::Status BadConfig(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " ", what));
}

std::string ShapeStr(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

}  // namespace

absl::StatusOr<int64_t> ConfigInt(const json& config, const std::string& key, int64_t min, int64_t max,
                                  const int64_t* fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    if (fallback != nullptr) return *fallback;
    return BadConfig(key, "is missing");
  }
  int64_t v;
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) return BadConfig(key, absl::StrCat("= ", u, " is above the limit ", max));
    v = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    v = it->get<int64_t>();
  } else {
    return BadConfig(key, absl::StrCat("must be an integer, got ", it->dump()));
  }
  if (v < min || v > max) return BadConfig(key, absl::StrCat("= ", v, " is outside [", min, ", ", max, "]"));
  return v;
}

absl::StatusOr<double> ConfigFloat(const json& config, const std::string& key, double min, double max,
                                   double fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number()) return BadConfig(key, absl::StrCat("must be a number, got ", it->dump()));
  double v = it->get<double>();
  if (!(v >= min && v <= max)) return BadConfig(key, absl::StrCat("= ", v, " is outside [", min, ", ", max, "]"));
  return v;
}

absl::StatusOr<bool> ConfigBool(const json& config, const std::string& key, bool fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return BadConfig(key, absl::StrCat("must be true or false, got ", it->dump()));
  return it->get<bool>();
}

absl::StatusOr<std::string> ConfigString(const json& config, const std::string& key, const std::string& fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_string()) return BadConfig(key, absl::StrCat("must be a string, got ", it->dump()));
  return it->get<std::string>();
}

absl::StatusOr<std::string> LoadWeight(GraphBuilder& g, const hf::ModelFolder& folder, const std::string& name,
                                       const std::vector<int64_t>& shape) {
  QEFF_ASSIGN_OR_RETURN(hf::TensorView view, folder.Tensor(name));
  if (!hf::IsFloatingWeight(view.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has dtype ",
                                                   hf::DTypeName(view.dtype), "; expected F32, F16 or BF16"));
  }
  if (view.shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has shape ", ShapeStr(view.shape),
                                                   "; config.json implies ", ShapeStr(shape)));
  }
  return g.Weight(name, view);
}

absl::StatusOr<std::string> LoadLinearWeight(GraphBuilder& g, const hf::ModelFolder& folder, const std::string& name,
                                             int64_t out_features, int64_t in_features) {
  QEFF_ASSIGN_OR_RETURN(hf::TensorView view, folder.Tensor(name));
  if (!hf::IsFloatingWeight(view.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has dtype ",
                                                   hf::DTypeName(view.dtype), "; expected F32, F16 or BF16"));
  }
  const std::vector<int64_t> want = {out_features, in_features};
  if (view.shape != want) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has shape ", ShapeStr(view.shape),
                                                   "; config.json implies ", ShapeStr(want)));
  }
  // [out, in] -> [in, out] float32, converted while transposing in 64 x 64 blocks (both sides
  // stay in cache) into the builder's reused huge-page scratch: this loop and the file write are
  // all an export spends on a weight (fresh 4 KB pages per weight cost a fault each, ~12% of
  // export time; before that a zeroed second copy and a column-wise transpose cost 40%).
  const int64_t n = out_features * in_features;
  float* t = g.Scratch(n);
  if (t == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate a buffer for ", name));
  auto transpose = [&](auto load) {
    constexpr int64_t kB = 64;
    for (int64_t o0 = 0; o0 < out_features; o0 += kB)
      for (int64_t i0 = 0; i0 < in_features; i0 += kB)
        for (int64_t o = o0; o < std::min(out_features, o0 + kB); ++o)
          for (int64_t i = i0; i < std::min(in_features, i0 + kB); ++i) t[i * out_features + o] = load(o * in_features + i);
  };
  auto u16 = [&](int64_t k) {
    uint16_t h;
    std::memcpy(&h, view.data + 2 * k, 2);
    return h;
  };
  switch (view.dtype) {
    case hf::DType::kBF16: transpose([&](int64_t k) { return hf::BFloat16ToFloat(u16(k)); }); break;
    case hf::DType::kF16: transpose([&](int64_t k) { return hf::HalfToFloat(u16(k)); }); break;
    case hf::DType::kF32:
      transpose([&](int64_t k) {
        float f;
        std::memcpy(&f, view.data + 4 * k, 4);
        return f;
      });
      break;
    default: {
      QEFF_ASSIGN_OR_RETURN(std::vector<float> w, hf::ToFloatVector(view));  // F64
      transpose([&](int64_t k) { return w[static_cast<size_t>(k)]; });
    }
  }
  hf::TensorView transposed;
  transposed.dtype = hf::DType::kF32;
  transposed.shape = {in_features, out_features};
  transposed.data = reinterpret_cast<const uint8_t*>(t);
  transposed.bytes = static_cast<size_t>(n) * sizeof(float);
  return g.Weight(name, transposed);
}

std::string ConstF32(GraphBuilder& g, const std::string& name, const std::vector<float>& values,
                     const std::vector<int64_t>& dims) {
  auto* t = g.graph().add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return name;
}

std::string PastKey(int layer) { return absl::StrCat("past_key.", layer); }
std::string PastValue(int layer) { return absl::StrCat("past_value.", layer); }

CausalLMIO DeclareCausalLM(GraphBuilder& g, const CausalLMShape& s) {
  constexpr int32_t kI64 = onnx::TensorProto::INT64;
  constexpr int32_t kF32 = onnx::TensorProto::FLOAT;
  const std::vector<Dim> kv_dims = {s.continuous_batching ? "full_batch_size" : "batch_size", s.kv_heads, "ctx_len",
                                    s.head_dim};
  g.Input("input_ids", kI64, {"batch_size", "seq_len"});
  g.Input("position_ids", kI64, {"batch_size", "seq_len"});
  for (int i = 0; i < s.num_layers; ++i) {
    g.Input(PastKey(i), kF32, kv_dims);
    g.Input(PastValue(i), kF32, kv_dims);
  }
  // After the cache, as in QEfficient's forward signature.
  if (s.continuous_batching) g.Input("batch_index", kI64, {"batch_size", 1});
  g.Output("logits", kF32, {"batch_size", 1, s.vocab});
  for (int i = 0; i < s.num_layers; ++i) {
    g.Output(PastKey(i) + "_RetainedState", kF32, kv_dims);
    g.Output(PastValue(i) + "_RetainedState", kF32, kv_dims);
  }

  CausalLMIO io;
  io.input_ids = "input_ids";
  io.position_ids = "position_ids";
  if (s.continuous_batching) io.batch_index = "batch_index";
  // ctx_len comes from the cache input's shape, so one graph serves every ctx_len and the
  // compiler folds it per specialization.
  std::string kv_shape = g.Node("Shape", {PastKey(0)}, {}, "kv_shape");
  std::string ctx_len = g.Node("Gather", {kv_shape, g.ScalarI64(2)}, {AttrInt("axis", 0)}, "ctx_len");
  std::string range = g.Node("Range", {g.ScalarI64(0), ctx_len, g.ScalarI64(1)}, {}, "ctx_range");
  io.ctx_indices = g.Node("Unsqueeze", {range, g.VectorI64({0, 1})}, {}, "ctx_indices");
  // mask[b,0,s,c] = c > position_ids[b,s]: future slots and, for padding (-1), every slot.
  std::string kv_idx = g.Node("Unsqueeze", {io.ctx_indices, g.VectorI64({2})}, {}, "kv_idx");
  std::string pos4 = g.Node("Unsqueeze", {io.position_ids, g.VectorI64({1, 3})}, {}, "pos4");
  io.causal_mask = g.Node("Greater", {kv_idx, pos4}, {}, "causal_mask");
  return io;
}

std::string SlidingWindowMask(GraphBuilder& g, const CausalLMIO& io, int64_t window) {
  // d = position_id - kv_idx; attended iff 0 <= d < window iff min(d, window - 1 - d) >= 0.
  std::string kv_idx = g.Node("Unsqueeze", {io.ctx_indices, g.VectorI64({2})}, {}, "kv_idx");
  std::string pos4 = g.Node("Unsqueeze", {io.position_ids, g.VectorI64({1, 3})}, {}, "pos4");
  std::string d = g.Node("Sub", {pos4, kv_idx}, {}, "kv_dist");
  std::string rest = g.Node("Sub", {g.ScalarI64(window - 1), d}, {}, "kv_window_rest");
  std::string m = g.Node("Min", {d, rest}, {}, "kv_window_min");
  return g.Node("Less", {m, g.ScalarI64(0)}, {}, "sliding_mask");
}

std::string RMSNorm(GraphBuilder& g, const std::string& x, const std::string& weight, float epsilon) {
  return CustomRMSNorm(g, x, weight, epsilon);
}

std::string Silu(GraphBuilder& g, const std::string& x) {
  std::string s = g.Node("Sigmoid", {x}, {}, "silu_sigmoid");
  return g.Node("Mul", {x, s}, {}, "silu");
}

std::string Linear(GraphBuilder& g, const std::string& x, const std::string& weight_in_out, const std::string& bias) {
  std::string y = g.Node("MatMul", {x, weight_in_out}, {}, "matmul");
  if (!bias.empty()) y = g.Node("Add", {y, bias}, {}, "bias_add");
  return y;
}

std::string LayerNorm(GraphBuilder& g, const std::string& x, const std::string& scale, const std::string& bias,
                      float epsilon) {
  return g.Node("LayerNormalization", {x, scale, bias}, {AttrInt("axis", -1), AttrFloat("epsilon", epsilon)},
                "layer_norm");
}

std::string GeluTanh(GraphBuilder& g, const std::string& x) {
  // Same operation order as HF's NewGELUActivation, for bitwise-close results.
  const float kSqrt2OverPi = static_cast<float>(std::sqrt(2.0 / M_PI));
  std::string cube = g.Node("Pow", {x, g.ScalarF32(3.0f)}, {}, "gelu_cube");
  std::string scaled = g.Node("Mul", {g.ScalarF32(0.044715f), cube}, {}, "gelu_mul");
  std::string inner = g.Node("Add", {x, scaled}, {}, "gelu_add");
  std::string arg = g.Node("Mul", {g.ScalarF32(kSqrt2OverPi), inner}, {}, "gelu_mul");
  std::string t = g.Node("Tanh", {arg}, {}, "gelu_tanh");
  std::string one_plus = g.Node("Add", {g.ScalarF32(1.0f), t}, {}, "gelu_add");
  std::string half_x = g.Node("Mul", {g.ScalarF32(0.5f), x}, {}, "gelu_half");
  return g.Node("Mul", {half_x, one_plus}, {}, "gelu");
}

std::string GeluErf(GraphBuilder& g, const std::string& x) {
  std::string scaled = g.Node("Div", {x, g.ScalarF32(static_cast<float>(std::sqrt(2.0)))}, {}, "gelu_div");
  std::string e = g.Node("Erf", {scaled}, {}, "gelu_erf");
  std::string one_plus = g.Node("Add", {g.ScalarF32(1.0f), e}, {}, "gelu_add");
  std::string half_x = g.Node("Mul", {g.ScalarF32(0.5f), x}, {}, "gelu_half");
  return g.Node("Mul", {half_x, one_plus}, {}, "gelu");
}

std::string SplitHeads(GraphBuilder& g, const std::string& x, int64_t heads, int64_t head_dim) {
  // 0 copies batch and seq_len from the input: no baked-in sizes.
  std::string r = g.Node("Reshape", {x, g.VectorI64({0, 0, heads, head_dim})}, {}, "split_heads");
  return g.Node("Transpose", {r}, {AttrInts("perm", {0, 2, 1, 3})}, "heads_first");
}

std::string MergeHeads(GraphBuilder& g, const std::string& x, int64_t hidden) {
  std::string t = g.Node("Transpose", {x}, {AttrInts("perm", {0, 2, 1, 3})}, "seq_first");
  return g.Node("Reshape", {t, g.VectorI64({0, 0, hidden})}, {}, "merge_heads");
}

namespace {

// [B,kv_heads,C,hd] -> [B,kv_heads·groups,C,hd], each kv head repeated `groups` times in a row.
// Grouped-query attention without repeating K/V: the query heads that share a kv head are
// folded into its rows, [B, H, S, hd] -> [B, kvh, groups·S, hd] (a pure reshape, since HF's
// repeat_kv maps head h to kv head h / groups), so MatMul reads each cached K/V row once instead
// of first copying the whole cache `groups` times. Shapes come from Shape() and fold at compile
// time.
std::string FoldGroups(GraphBuilder& g, const std::string& x, int64_t groups, const std::string& hint) {
  std::string shape = g.Node("Shape", {x}, {}, hint + "_shape_in");
  std::string b = g.Node("Slice", {shape, g.VectorI64({0}), g.VectorI64({1})}, {}, hint + "_b");
  std::string h = g.Node("Slice", {shape, g.VectorI64({1}), g.VectorI64({2})}, {}, hint + "_h");
  std::string last = g.Node("Slice", {shape, g.VectorI64({3}), g.VectorI64({4})}, {}, hint + "_last");
  std::string kvh = g.Node("Div", {h, g.VectorI64({groups})}, {}, hint + "_kvh");
  std::string new_shape = g.Node("Concat", {b, kvh, g.VectorI64({-1}), last}, {AttrInt("axis", 0)}, hint + "_shape");
  return g.Node("Reshape", {x, new_shape}, {}, hint);
}

// The inverse: [B, kvh, groups·S, n] -> [B, kvh·groups, S, n] with S and the head count from `q`.
std::string UnfoldGroups(GraphBuilder& g, const std::string& x, const std::string& q, const std::string& hint) {
  std::string qs = g.Node("Shape", {q}, {}, hint + "_q_shape");
  std::string bhs = g.Node("Slice", {qs, g.VectorI64({0}), g.VectorI64({3})}, {}, hint + "_bhs");
  std::string xs = g.Node("Shape", {x}, {}, hint + "_x_shape");
  std::string n = g.Node("Slice", {xs, g.VectorI64({3}), g.VectorI64({4})}, {}, hint + "_n");
  std::string new_shape = g.Node("Concat", {bhs, n}, {AttrInt("axis", 0)}, hint + "_shape");
  return g.Node("Reshape", {x, new_shape}, {}, hint);
}

}  // namespace

std::string CachedAttention(GraphBuilder& g, const CausalLMIO& io, int layer, const std::string& q,
                            const std::string& k, const std::string& v, const AttentionOptions& options) {
  const std::string k_state = PastKey(layer) + "_RetainedState";
  const std::string v_state = PastValue(layer) + "_RetainedState";
  std::string k_all, v_all;  // [B,kv_heads,C,hd]: the cache rows of this batch
  if (io.batch_index.empty()) {
    CtxScatter(g, PastKey(layer), io.position_ids, k, k_state);
    CtxScatter(g, PastValue(layer), io.position_ids, v, v_state);
    k_all = CtxGather(g, k_state, io.ctx_indices);
    v_all = CtxGather(g, v_state, io.ctx_indices);
  } else {
    CtxScatterCB(g, PastKey(layer), io.batch_index, io.position_ids, k, k_state);
    CtxScatterCB(g, PastValue(layer), io.batch_index, io.position_ids, v, v_state);
    k_all = CtxGatherCB(g, k_state, io.batch_index, io.ctx_indices);
    v_all = CtxGatherCB(g, v_state, io.batch_index, io.ctx_indices);
  }
  const bool grouped = options.kv_groups > 1;
  std::string q_rows = grouped ? FoldGroups(g, q, options.kv_groups, "q_grouped") : q;
  std::string k_t = g.Node("Transpose", {k_all}, {AttrInts("perm", {0, 1, 3, 2})}, "k_t");
  std::string scores = g.Node("MatMul", {q_rows, k_t}, {}, "scores");
  if (grouped) scores = UnfoldGroups(g, scores, q, "scores_heads");
  for (float d : options.score_divisors) scores = g.Node("Div", {scores, g.ScalarF32(d)}, {}, "scores_scaled");
  if (options.score_multiplier != 0.0f) {
    scores = g.Node("Mul", {scores, g.ScalarF32(options.score_multiplier)}, {}, "scores_scaled");
  }
  if (!options.score_bias.empty()) scores = g.Node("Add", {scores, options.score_bias}, {}, "scores_biased");
  if (options.softcap > 0.0f) scores = SoftCap(g, scores, options.softcap, "scores_capped");
  const std::string& mask = options.mask.empty() ? io.causal_mask : options.mask;
  std::string masked =
      g.Node("Where", {mask, g.ScalarF32(std::numeric_limits<float>::lowest()), scores}, {}, "scores_masked");
  std::string probs = g.Node("Softmax", {masked}, {AttrInt("axis", -1)}, "probs");
  if (!grouped) return g.Node("MatMul", {probs, v_all}, {}, "attn");
  std::string attn = g.Node("MatMul", {FoldGroups(g, probs, options.kv_groups, "probs_grouped"), v_all}, {}, "attn");
  return UnfoldGroups(g, attn, q, "attn_heads");
}

std::string SoftCap(GraphBuilder& g, const std::string& x, float cap, const std::string& hint,
                    const std::string& output) {
  std::string d = g.Node("Div", {x, g.ScalarF32(cap)}, {}, hint + "_div");
  std::string t = g.Node("Tanh", {d}, {}, hint + "_tanh");
  if (output.empty()) return g.Node("Mul", {t, g.ScalarF32(cap)}, {}, hint);
  g.NodeNamed("Mul", {t, g.ScalarF32(cap)}, {output});
  return output;
}

void LogitsAtLastPosition(GraphBuilder& g, const CausalLMIO& io, const std::string& hidden, int64_t hidden_size,
                          const std::string& embedding_vh, float final_softcap) {
  // The last real token of each row is where position_ids is largest (padding is -1).
  std::string last = LastPositionHidden(g, io, hidden, hidden_size);
  std::string w_t = g.Node("Transpose", {embedding_vh}, {AttrInts("perm", {1, 0})}, "lm_head_t");
  if (final_softcap > 0.0f) {
    SoftCap(g, g.Node("MatMul", {last, w_t}, {}, "raw_logits"), final_softcap, "logits", "logits");
  } else {
    g.NodeNamed("MatMul", {last, w_t}, {"logits"});
  }
}

std::string LastPositionHidden(GraphBuilder& g, const CausalLMIO& io, const std::string& hidden,
                               int64_t hidden_size) {
  std::string idx = g.Node("ArgMax", {io.position_ids}, {AttrInt("axis", 1), AttrInt("keepdims", 1)}, "last_pos");
  std::string idx3 = g.Node("Unsqueeze", {idx, g.VectorI64({2})}, {}, "last_pos3");
  std::string idx_h = g.Node("Expand", {idx3, g.VectorI64({1, 1, hidden_size})}, {}, "last_pos_h");
  return g.Node("GatherElements", {hidden, idx_h}, {AttrInt("axis", 1)}, "last_hidden");
}

}  // namespace qeff::exporter
