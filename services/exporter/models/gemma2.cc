// Gemma2ForCausalLM (HF transformers 4.44 semantics): embeddings scaled by sqrt(hidden),
// Gemma RMSNorm (x·(1 + w); the +1 is folded into the stored weight, as QEff's
// GemmaCustomRMSNormAIC does, so it is one CustomRMSNorm op), pre and post norms around both
// attention and MLP, RoPE, grouped-query attention over the retained KV cache with scores scaled
// by query_pre_attn_scalar^-0.5 and soft-capped (cap·tanh(s/cap)) before the mask, a sliding
// window on even layers (0, 2, 4, ...; query i sees key j when i - W < j <= i), GeGLU MLP with
// gelu_pytorch_tanh, final norm, lm_head (tied by default) and a final logit soft-cap.
//
// The full-length QEff cache with a sliding-window mask gives what HF's HybridCache gives
// (its rolling buffer keeps exactly the last W positions of sliding layers).
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/hf/safetensors.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/custom_ops.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct Gemma2Config {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, layers = 0, vocab = 0, inner = 0, positions = 0;
  float epsilon = 1e-6f;
  double rope_theta = 10000.0;
  double query_pre_attn_scalar = 224.0;
  double attn_softcap = 0.0;   // 0 = none
  double final_softcap = 0.0;  // 0 = none
  int64_t sliding_window = 0;  // 0 = none
  bool bias = false, tied = true;
  std::string activation;
};

// A soft-cap value: the class default when absent, none (0) when explicitly null.
absl::StatusOr<double> SoftCap(const nlohmann::json& c, const std::string& key, double class_default) {
  auto it = c.find(key);
  if (it != c.end() && it->is_null()) return 0.0;
  return ConfigFloat(c, key, 1e-6, 1e9, class_default);
}

// config.json leaves out values equal to Gemma2Config's defaults, so those are the fallbacks.
absl::StatusOr<Gemma2Config> ReadConfig(const nlohmann::json& c) {
  Gemma2Config m;
  const int64_t d_hidden = 3072, d_heads = 16, d_kv = 16, d_head_dim = 256, d_layers = 28, d_vocab = 256000,
                d_inner = 24576, d_positions = 8192, d_window = 4096;
  QEFF_ASSIGN_OR_RETURN(m.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16, &d_hidden));
  QEFF_ASSIGN_OR_RETURN(m.heads, ConfigInt(c, "num_attention_heads", 1, 1024, &d_heads));
  QEFF_ASSIGN_OR_RETURN(m.kv_heads, ConfigInt(c, "num_key_value_heads", 1, 1024, &d_kv));
  QEFF_ASSIGN_OR_RETURN(m.head_dim, ConfigInt(c, "head_dim", 2, 1 << 12, &d_head_dim));
  QEFF_ASSIGN_OR_RETURN(m.layers, ConfigInt(c, "num_hidden_layers", 1, 1024, &d_layers));
  QEFF_ASSIGN_OR_RETURN(m.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22, &d_vocab));
  QEFF_ASSIGN_OR_RETURN(m.inner, ConfigInt(c, "intermediate_size", 1, 1 << 20, &d_inner));
  QEFF_ASSIGN_OR_RETURN(m.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22, &d_positions));
  if (m.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = ", m.head_dim, " must be even for RoPE"));
  }
  if (m.heads % m.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_attention_heads = ", m.heads,
                                                   " is not divisible by num_key_value_heads = ", m.kv_heads));
  }
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-6));
  m.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(m.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(m.query_pre_attn_scalar, ConfigFloat(c, "query_pre_attn_scalar", 1e-12, 1e12, 224.0));
  QEFF_ASSIGN_OR_RETURN(m.attn_softcap, SoftCap(c, "attn_logit_softcapping", 50.0));
  QEFF_ASSIGN_OR_RETURN(m.final_softcap, SoftCap(c, "final_logit_softcapping", 30.0));
  auto window = c.find("sliding_window");
  if (window == c.end() || !window->is_null()) {
    QEFF_ASSIGN_OR_RETURN(m.sliding_window, ConfigInt(c, "sliding_window", 1, int64_t{1} << 40, &d_window));
  }
  QEFF_ASSIGN_OR_RETURN(m.bias, ConfigBool(c, "attention_bias", false));
  QEFF_ASSIGN_OR_RETURN(m.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(m.activation, ConfigString(c, "hidden_activation", "gelu_pytorch_tanh"));
  if (m.activation != "gelu_pytorch_tanh" && m.activation != "gelu_new" && m.activation != "gelu") {
    return absl::UnimplementedError(absl::StrCat("hidden_activation \"", m.activation,
                                                 "\" is not supported (gelu_pytorch_tanh, gelu_new, gelu)"));
  }
  auto scaling = c.find("rope_scaling");
  if (scaling != c.end() && !scaling->is_null()) {
    return absl::UnimplementedError(absl::StrCat("rope_scaling (", scaling->dump(), ") is not supported yet"));
  }
  return m;
}

// A Gemma RMSNorm weight w, stored as 1 + w (float32, as HF computes 1.0 + weight.float()).
absl::StatusOr<std::string> LoadGemmaNormWeight(GraphBuilder& g, const hf::ModelFolder& folder,
                                                const std::string& name, int64_t n) {
  QEFF_ASSIGN_OR_RETURN(hf::TensorView view, folder.Tensor(name));
  if (!hf::IsFloatingWeight(view.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has dtype ",
                                                   hf::DTypeName(view.dtype), "; expected F32, F16 or BF16"));
  }
  if (view.shape != std::vector<int64_t>{n}) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight tensor \"", name, "\" has ", view.shape.size(), " dims; config.json implies [", n, "]"));
  }
  QEFF_ASSIGN_OR_RETURN(std::vector<float> w, hf::ToFloatVector(view));
  for (float& x : w) x = 1.0f + x;
  hf::TensorView plus_one;
  plus_one.dtype = hf::DType::kF32;
  plus_one.shape = {n};
  plus_one.data = reinterpret_cast<const uint8_t*>(w.data());
  plus_one.bytes = w.size() * sizeof(float);
  return g.Weight(name, plus_one);
}

// cap·tanh(x / cap).
std::string SoftCapNode(GraphBuilder& g, const std::string& x, double cap, const std::string& hint) {
  const float c = static_cast<float>(cap);
  std::string d = g.Node("Div", {x, g.ScalarF32(c)}, {}, hint + "_div");
  std::string t = g.Node("Tanh", {d}, {}, hint + "_tanh");
  return g.Node("Mul", {t, g.ScalarF32(c)}, {}, hint);
}

// [B,kv_heads,C,hd] -> [B,kv_heads·groups,C,hd] (HF repeat_kv).
std::string RepeatKv(GraphBuilder& g, const std::string& x, int64_t groups) {
  if (groups == 1) return x;
  std::string x5 = g.Node("Unsqueeze", {x, g.VectorI64({2})}, {}, "kv_unsq");
  std::string e = g.Node("Expand", {x5, g.VectorI64({1, 1, groups, 1, 1})}, {}, "kv_expand");
  std::string shape = g.Node("Shape", {x}, {}, "kv_shape4");
  std::string bkh = g.Node("Slice", {shape, g.VectorI64({0}), g.VectorI64({2})}, {}, "kv_bk");
  std::string cd = g.Node("Slice", {shape, g.VectorI64({2}), g.VectorI64({4})}, {}, "kv_cd");
  std::string heads = g.Node("Mul", {bkh, g.VectorI64({1, groups})}, {}, "kv_heads");
  std::string new_shape = g.Node("Concat", {heads, cd}, {AttrInt("axis", 0)}, "kv_rep_shape");
  return g.Node("Reshape", {e, new_shape}, {}, "kv_repeated");
}

// Gemma2 attention over the retained cache of `layer`: scores = (q·kᵀ)·scaling, soft-capped,
// then masked (float32 lowest) and softmaxed; returns [B,heads,S,hd].
std::string Gemma2Attention(GraphBuilder& g, const CausalLMIO& io, int layer, const std::string& q,
                            const std::string& k, const std::string& v, const Gemma2Config& c,
                            const std::string& mask) {
  const std::string k_state = PastKey(layer) + "_RetainedState";
  const std::string v_state = PastValue(layer) + "_RetainedState";
  CtxScatter(g, PastKey(layer), io.position_ids, k, k_state);
  CtxScatter(g, PastValue(layer), io.position_ids, v, v_state);
  const int64_t groups = c.heads / c.kv_heads;
  std::string k_all = RepeatKv(g, CtxGather(g, k_state, io.ctx_indices), groups);
  std::string v_all = RepeatKv(g, CtxGather(g, v_state, io.ctx_indices), groups);
  std::string k_t = g.Node("Transpose", {k_all}, {AttrInts("perm", {0, 1, 3, 2})}, "k_t");
  std::string scores = g.Node("MatMul", {q, k_t}, {}, "scores");
  const float scaling = static_cast<float>(std::pow(c.query_pre_attn_scalar, -0.5));
  scores = g.Node("Mul", {scores, g.ScalarF32(scaling)}, {}, "scores_scaled");
  if (c.attn_softcap > 0) scores = SoftCapNode(g, scores, c.attn_softcap, "scores_capped");
  std::string masked =
      g.Node("Where", {mask, g.ScalarF32(std::numeric_limits<float>::lowest()), scores}, {}, "scores_masked");
  std::string probs = g.Node("Softmax", {masked}, {AttrInt("axis", -1)}, "probs");
  return g.Node("MatMul", {probs, v_all}, {}, "attn");
}

absl::Status BuildGemma2(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(Gemma2Config c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const hf::ModelFolder& folder = ctx.folder;
  const int64_t H = c.hidden, hd = c.head_dim, qdim = c.heads * hd, kvdim = c.kv_heads * hd;

  CausalLMShape shape{static_cast<int>(c.layers), c.kv_heads, hd, c.vocab};
  CausalLMIO io = DeclareCausalLM(g, shape);
  ctx.progress("export", "embeddings", 0, c.layers);

  auto Vec = [&](const std::string& name, int64_t n) { return LoadWeight(g, folder, name, {n}); };
  auto Norm = [&](const std::string& name) { return LoadGemmaNormWeight(g, folder, name, H); };
  auto Lin = [&](const std::string& name, int64_t out, int64_t in) { return LoadLinearWeight(g, folder, name, out, in); };
  auto Act = [&](const std::string& x) { return c.activation == "gelu" ? GeluErf(g, x) : GeluTanh(g, x); };

  QEFF_ASSIGN_OR_RETURN(std::string embed, LoadWeight(g, folder, "model.embed_tokens.weight", {c.vocab, H}));
  std::string h = g.Node("Gather", {embed, io.input_ids}, {AttrInt("axis", 0)}, "tok_emb");
  // HF: hidden * torch.tensor(hidden_size ** 0.5, dtype=float32).
  const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(H)));
  h = g.Node("Mul", {h, g.ScalarF32(normalizer)}, {}, "emb_scaled");
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  const std::string sliding_mask = c.sliding_window > 0 ? SlidingWindowMask(g, io, c.sliding_window) : "";

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    QEFF_ASSIGN_OR_RETURN(std::string ln_in, Norm(l + "input_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_post_attn, Norm(l + "post_attention_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_pre_ff, Norm(l + "pre_feedforward_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_post_ff, Norm(l + "post_feedforward_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string wq, Lin(a + "q_proj.weight", qdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, Lin(a + "k_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, Lin(a + "v_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, Lin(a + "o_proj.weight", H, qdim));
    std::string bq, bk, bv, bo;
    if (c.bias) {
      QEFF_ASSIGN_OR_RETURN(bq, Vec(a + "q_proj.bias", qdim));
      QEFF_ASSIGN_OR_RETURN(bk, Vec(a + "k_proj.bias", kvdim));
      QEFF_ASSIGN_OR_RETURN(bv, Vec(a + "v_proj.bias", kvdim));
      QEFF_ASSIGN_OR_RETURN(bo, Vec(a + "o_proj.bias", H));
    }
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string wg, Lin(m + "gate_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wu, Lin(m + "up_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, Lin(m + "down_proj.weight", H, c.inner));

    // Attention: h + post_norm(attn(input_norm(h))).
    std::string x = RMSNorm(g, h, ln_in, c.epsilon);
    std::string q = SplitHeads(g, Linear(g, x, wq, bq), c.heads, hd);
    std::string k = SplitHeads(g, Linear(g, x, wk, bk), c.kv_heads, hd);
    std::string v = SplitHeads(g, Linear(g, x, wv, bv), c.kv_heads, hd);
    q = ApplyRope(g, q, rope, hd);
    k = ApplyRope(g, k, rope, hd);
    const bool sliding = i % 2 == 0 && !sliding_mask.empty();
    std::string o = Gemma2Attention(g, io, i, q, k, v, c, sliding ? sliding_mask : io.causal_mask);
    o = Linear(g, MergeHeads(g, o, qdim), wo, bo);
    o = RMSNorm(g, o, ln_post_attn, c.epsilon);
    h = g.Node("Add", {h, o}, {}, "residual");

    // GeGLU MLP: h + post_norm(down(act(gate(x)) * up(x))), x = pre_norm(h).
    x = RMSNorm(g, h, ln_pre_ff, c.epsilon);
    std::string gate = Act(Linear(g, x, wg));
    std::string up = Linear(g, x, wu);
    x = Linear(g, g.Node("Mul", {gate, up}, {}, "geglu"), wd);
    x = RMSNorm(g, x, ln_post_ff, c.epsilon);
    h = g.Node("Add", {h, x}, {}, "residual");
    ctx.progress("export", absl::StrCat("layer ", i + 1, " of ", c.layers), i + 1, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string norm, Norm("model.norm.weight"));
  h = RMSNorm(g, h, norm, c.epsilon);
  std::string head = embed;
  if (!c.tied) {
    QEFF_ASSIGN_OR_RETURN(head, LoadWeight(g, folder, "lm_head.weight", {c.vocab, H}));
  }
  // Logits at argmax(position_ids) (as LogitsAtLastPosition), then the final soft-cap.
  std::string idx = g.Node("ArgMax", {io.position_ids}, {AttrInt("axis", 1), AttrInt("keepdims", 1)}, "last_pos");
  std::string idx3 = g.Node("Unsqueeze", {idx, g.VectorI64({2})}, {}, "last_pos3");
  std::string idx_h = g.Node("Expand", {idx3, g.VectorI64({1, 1, H})}, {}, "last_pos_h");
  std::string last = g.Node("GatherElements", {h, idx_h}, {AttrInt("axis", 1)}, "last_hidden");
  std::string w_t = g.Node("Transpose", {head}, {AttrInts("perm", {1, 0})}, "lm_head_t");
  if (c.final_softcap > 0) {
    const float cap = static_cast<float>(c.final_softcap);
    std::string raw = g.Node("MatMul", {last, w_t}, {}, "raw_logits");
    std::string d = g.Node("Div", {raw, g.ScalarF32(cap)}, {}, "logits_div");
    std::string t = g.Node("Tanh", {d}, {}, "logits_tanh");
    g.NodeNamed("Mul", {t, g.ScalarF32(cap)}, {"logits"});
  } else {
    g.NodeNamed("MatMul", {last, w_t}, {"logits"});
  }

  summary->num_layers = static_cast<int>(c.layers);
  summary->manifest_extra = {{"hidden_size", H},
                             {"num_heads", c.heads},
                             {"num_kv_heads", c.kv_heads},
                             {"head_dim", hd},
                             {"vocab_size", c.vocab},
                             {"max_positions", c.positions},
                             {"rope_theta", c.rope_theta},
                             {"sliding_window", c.sliding_window},
                             {"sliding_window_layers", "even"},
                             {"query_pre_attn_scalar", c.query_pre_attn_scalar},
                             {"attn_logit_softcapping", c.attn_softcap},
                             {"final_logit_softcapping", c.final_softcap},
                             {"rms_norm_weight_plus_one_folded", true},
                             {"tied_lm_head", c.tied},
                             {"linear_weight_layout", "in_out"},
                             {"activation", c.activation}};
  return absl::OkStatus();
}

}  // namespace

void RegisterGemma2(ModelRegistry& registry) { registry.Register("Gemma2ForCausalLM", BuildGemma2); }

}  // namespace qeff::exporter
