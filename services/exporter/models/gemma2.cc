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

#include "absl/strings/str_cat.h"
#include "common/hf/safetensors.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct Gemma2Config : DecoderDims {
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
absl::StatusOr<double> SoftCapValue(const nlohmann::json& c, const std::string& key, double class_default) {
  auto it = c.find(key);
  if (it != c.end() && it->is_null()) return 0.0;
  return ConfigFloat(c, key, 1e-6, 1e9, class_default);
}

// config.json leaves out values equal to Gemma2Config's defaults, so those are the fallbacks.
absl::StatusOr<Gemma2Config> ReadConfig(const nlohmann::json& c) {
  Gemma2Config m;
  DecoderDims defaults;
  defaults.hidden = 3072;
  defaults.heads = 16;
  defaults.kv_heads = 16;
  defaults.layers = 28;
  defaults.vocab = 256000;
  defaults.inner = 24576;
  defaults.positions = 8192;
  const int64_t d_head_dim = 256, d_window = 4096;
  QEFF_RETURN_IF_ERROR(ReadDecoderDims(c, &m, &defaults));
  QEFF_ASSIGN_OR_RETURN(m.head_dim, ConfigInt(c, "head_dim", 2, 1 << 12, &d_head_dim));
  if (m.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = ", m.head_dim, " must be even for RoPE"));
  }
  QEFF_RETURN_IF_ERROR(CheckKvGroups(m.heads, m.kv_heads));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-6));
  m.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(m.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(m.query_pre_attn_scalar, ConfigFloat(c, "query_pre_attn_scalar", 1e-12, 1e12, 224.0));
  QEFF_ASSIGN_OR_RETURN(m.attn_softcap, SoftCapValue(c, "attn_logit_softcapping", 50.0));
  QEFF_ASSIGN_OR_RETURN(m.final_softcap, SoftCapValue(c, "final_logit_softcapping", 30.0));
  auto window = c.find("sliding_window");
  if (window == c.end() || !window->is_null()) {
    QEFF_ASSIGN_OR_RETURN(m.sliding_window, ConfigInt(c, "sliding_window", 1, int64_t{1} << 40, &d_window));
  }
  QEFF_ASSIGN_OR_RETURN(m.bias, ConfigBool(c, "attention_bias", false));
  QEFF_ASSIGN_OR_RETURN(m.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(m.activation, ConfigChoice(c, "hidden_activation", "gelu_pytorch_tanh",
                                                   {"gelu_pytorch_tanh", "gelu_new", "gelu"}));
  QEFF_RETURN_IF_ERROR(RejectRopeScaling(c));
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

absl::Status BuildGemma2(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(Gemma2Config c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const hf::ModelFolder& folder = ctx.folder;
  const WeightLoader w{g, folder, ""};
  const int64_t H = c.hidden, hd = c.head_dim, qdim = c.heads * hd, kvdim = c.kv_heads * hd;

  auto Norm = [&](const std::string& name) { return LoadGemmaNormWeight(g, folder, name, H); };
  auto Act = [&](const std::string& x) { return c.activation == "gelu" ? GeluErf(g, x) : GeluTanh(g, x); };

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "model.embed_tokens.weight"));
  const CausalLMIO& io = start.io;
  // HF: hidden * torch.tensor(hidden_size ** 0.5, dtype=float32).
  const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(H)));
  std::string h = g.Node("Mul", {start.hidden, g.ScalarF32(normalizer)}, {}, "emb_scaled");
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  const std::string sliding_mask = c.sliding_window > 0 ? SlidingWindowMask(g, io, c.sliding_window) : "";
  // Scores = (q·kᵀ)·query_pre_attn_scalar^-0.5, soft-capped, then masked.
  AttentionOptions attn;
  attn.kv_groups = c.heads / c.kv_heads;
  attn.score_multiplier = static_cast<float>(std::pow(c.query_pre_attn_scalar, -0.5));
  attn.softcap = static_cast<float>(c.attn_softcap);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    QEFF_ASSIGN_OR_RETURN(std::string ln_in, Norm(l + "input_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_post_attn, Norm(l + "post_attention_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_pre_ff, Norm(l + "pre_feedforward_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string ln_post_ff, Norm(l + "post_feedforward_layernorm.weight"));
    QEFF_ASSIGN_OR_RETURN(std::string wq, w.Lin(a + "q_proj.weight", qdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, w.Lin(a + "k_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, w.Lin(a + "v_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(a + "o_proj.weight", H, qdim));
    QEFF_ASSIGN_OR_RETURN(std::string bq, w.OptionalVec(c.bias, a + "q_proj.bias", qdim));
    QEFF_ASSIGN_OR_RETURN(std::string bk, w.OptionalVec(c.bias, a + "k_proj.bias", kvdim));
    QEFF_ASSIGN_OR_RETURN(std::string bv, w.OptionalVec(c.bias, a + "v_proj.bias", kvdim));
    QEFF_ASSIGN_OR_RETURN(std::string bo, w.OptionalVec(c.bias, a + "o_proj.bias", H));
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string wg, w.Lin(m + "gate_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wu, w.Lin(m + "up_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, w.Lin(m + "down_proj.weight", H, c.inner));

    // Attention: h + post_norm(attn(input_norm(h))), a sliding window on even layers.
    std::string x = RMSNorm(g, h, ln_in, c.epsilon);
    std::string q = SplitHeads(g, Linear(g, x, wq, bq), c.heads, hd);
    std::string k = SplitHeads(g, Linear(g, x, wk, bk), c.kv_heads, hd);
    std::string v = SplitHeads(g, Linear(g, x, wv, bv), c.kv_heads, hd);
    q = ApplyRope(g, q, rope, hd);
    k = ApplyRope(g, k, rope, hd);
    attn.mask = i % 2 == 0 ? sliding_mask : "";
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
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
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string norm, Norm("model.norm.weight"));
  h = RMSNorm(g, h, norm, c.epsilon);
  QEFF_RETURN_IF_ERROR(
      TiedOrUntiedLogits(w, io, h, start.embed, c.tied, c, static_cast<float>(c.final_softcap)));

  SetDecoderSummary(summary, c,
                    {{"rope_theta", c.rope_theta},
                     {"sliding_window", c.sliding_window},
                     {"sliding_window_layers", "even"},
                     {"query_pre_attn_scalar", c.query_pre_attn_scalar},
                     {"attn_logit_softcapping", c.attn_softcap},
                     {"final_logit_softcapping", c.final_softcap},
                     {"rms_norm_weight_plus_one_folded", true},
                     {"tied_lm_head", c.tied},
                     {"linear_weight_layout", "in_out"},
                     {"activation", c.activation}});
  return absl::OkStatus();
}

}  // namespace

void RegisterGemma2(ModelRegistry& registry) { registry.Register("Gemma2ForCausalLM", BuildGemma2); }

}  // namespace qeff::exporter
