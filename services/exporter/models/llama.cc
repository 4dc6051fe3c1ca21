// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (HF transformers 4.44 semantics):
// RMSNorm (one CustomRMSNorm op), RoPE from precomputed cos/sin tables, grouped-query
// attention over the retained KV cache, SwiGLU MLP, final norm, lm_head (tied or not).
// The three differ only in config: kv heads, q/k/v bias (Qwen2 always; Llama attention_bias),
// Mistral's sliding window, rope_theta, tie_word_embeddings, head_dim.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

enum class Family { kLlama, kMistral, kQwen2 };

struct LlamaConfig : DecoderDims {
  float epsilon = 1e-6f;
  double rope_theta = 10000.0;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, tied = false;
  int64_t sliding_window = 0;  // 0 = none
};

absl::StatusOr<LlamaConfig> ReadConfig(const nlohmann::json& c, Family family) {
  LlamaConfig l;
  QEFF_RETURN_IF_ERROR(ReadDecoderDims(c, &l));
  if (c.find("head_dim") == c.end()) QEFF_RETURN_IF_ERROR(CheckHeadsDivide(l.hidden, l.heads));
  const int64_t default_head_dim = l.hidden / l.heads;
  QEFF_ASSIGN_OR_RETURN(l.head_dim, ConfigInt(c, "head_dim", 2, 1 << 12, &default_head_dim));
  if (l.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = ", l.head_dim, " must be even for RoPE"));
  }
  QEFF_RETURN_IF_ERROR(CheckKvGroups(l.heads, l.kv_heads));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-6));  // all three default 1e-6
  l.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(l.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(l.tied, ConfigBool(c, "tie_word_embeddings", false));
  QEFF_RETURN_IF_ERROR(ConfigChoice(c, "hidden_act", "silu", {"silu"}).status());
  QEFF_RETURN_IF_ERROR(RejectTypedRopeScaling(c));
  switch (family) {
    case Family::kLlama: {
      QEFF_ASSIGN_OR_RETURN(l.qkv_bias, ConfigBool(c, "attention_bias", false));
      l.o_bias = l.qkv_bias;
      QEFF_ASSIGN_OR_RETURN(l.mlp_bias, ConfigBool(c, "mlp_bias", false));
      break;
    }
    case Family::kMistral: {
      const int64_t none = 0;
      QEFF_ASSIGN_OR_RETURN(l.sliding_window, ConfigInt(c, "sliding_window", 1, int64_t{1} << 40, &none));
      break;
    }
    case Family::kQwen2: {
      l.qkv_bias = true;
      QEFF_ASSIGN_OR_RETURN(bool use_window, ConfigBool(c, "use_sliding_window", false));
      if (use_window) {
        return absl::UnimplementedError("Qwen2 with use_sliding_window = true is not supported yet");
      }
      break;
    }
  }
  return l;
}

absl::Status BuildLlama(BuildContext& ctx, ExportSummary* summary, Family family) {
  QEFF_ASSIGN_OR_RETURN(LlamaConfig c, ReadConfig(ctx.folder.config(), family));
  GraphBuilder& g = ctx.graph;
  const WeightLoader w{g, ctx.folder, ""};
  const int64_t H = c.hidden, hd = c.head_dim, qdim = c.heads * hd, kvdim = c.kv_heads * hd;

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "model.embed_tokens.weight"));
  const CausalLMIO& io = start.io;
  std::string h = start.hidden;
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  AttentionOptions attn = ScaledAttention(hd, c.heads / c.kv_heads);
  if (c.sliding_window > 0) attn.mask = SlidingWindowMask(g, io, c.sliding_window);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    QEFF_ASSIGN_OR_RETURN(std::string ln1, w.Vec(l + "input_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wq, w.Lin(a + "q_proj.weight", qdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, w.Lin(a + "k_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, w.Lin(a + "v_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(a + "o_proj.weight", H, qdim));
    QEFF_ASSIGN_OR_RETURN(std::string bq, w.OptionalVec(c.qkv_bias, a + "q_proj.bias", qdim));
    QEFF_ASSIGN_OR_RETURN(std::string bk, w.OptionalVec(c.qkv_bias, a + "k_proj.bias", kvdim));
    QEFF_ASSIGN_OR_RETURN(std::string bv, w.OptionalVec(c.qkv_bias, a + "v_proj.bias", kvdim));
    QEFF_ASSIGN_OR_RETURN(std::string bo, w.OptionalVec(c.o_bias, a + "o_proj.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string ln2, w.Vec(l + "post_attention_layernorm.weight", H));
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string wg, w.Lin(m + "gate_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wu, w.Lin(m + "up_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, w.Lin(m + "down_proj.weight", H, c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string bg, w.OptionalVec(c.mlp_bias, m + "gate_proj.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string bu, w.OptionalVec(c.mlp_bias, m + "up_proj.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string bd, w.OptionalVec(c.mlp_bias, m + "down_proj.bias", H));

    // Attention.
    std::string x = RMSNorm(g, h, ln1, c.epsilon);
    std::string q = SplitHeads(g, Linear(g, x, wq, bq), c.heads, hd);
    std::string k = SplitHeads(g, Linear(g, x, wk, bk), c.kv_heads, hd);
    std::string v = SplitHeads(g, Linear(g, x, wv, bv), c.kv_heads, hd);
    q = ApplyRope(g, q, rope, hd);
    k = ApplyRope(g, k, rope, hd);
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
    o = MergeHeads(g, o, qdim);
    o = Linear(g, o, wo, bo);
    h = g.Node("Add", {h, o}, {}, "residual");

    // SwiGLU MLP: down(silu(gate(x)) * up(x)).
    x = RMSNorm(g, h, ln2, c.epsilon);
    std::string gate = Silu(g, Linear(g, x, wg, bg));
    std::string up = Linear(g, x, wu, bu);
    x = Linear(g, g.Node("Mul", {gate, up}, {}, "swiglu"), wd, bd);
    h = g.Node("Add", {h, x}, {}, "residual");
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string norm, w.Vec("model.norm.weight", H));
  h = RMSNorm(g, h, norm, c.epsilon);
  QEFF_RETURN_IF_ERROR(TiedOrUntiedLogits(w, io, h, start.embed, c.tied, c));

  SetDecoderSummary(summary, c,
                    {{"rope_theta", c.rope_theta},
                     {"sliding_window", c.sliding_window},
                     {"qkv_bias", c.qkv_bias},
                     {"tied_lm_head", c.tied},
                     {"linear_weight_layout", "in_out"},
                     {"activation", "silu"}});
  return absl::OkStatus();
}

}  // namespace

void RegisterLlama(ModelRegistry& registry) {
  registry.Register("LlamaForCausalLM",
                    [](BuildContext& ctx, ExportSummary* s) { return BuildLlama(ctx, s, Family::kLlama); });
  registry.Register("MistralForCausalLM",
                    [](BuildContext& ctx, ExportSummary* s) { return BuildLlama(ctx, s, Family::kMistral); });
  registry.Register("Qwen2ForCausalLM",
                    [](BuildContext& ctx, ExportSummary* s) { return BuildLlama(ctx, s, Family::kQwen2); });
}

}  // namespace qeff::exporter
