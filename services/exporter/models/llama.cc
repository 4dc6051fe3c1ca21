// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (HF transformers 4.44 semantics):
// RMSNorm (one CustomRMSNorm op), RoPE from precomputed cos/sin tables, grouped-query
// attention over the retained KV cache, SwiGLU MLP, final norm, lm_head (tied or not).
// The three differ only in config: kv heads, q/k/v bias (Qwen2 always; Llama attention_bias),
// Mistral's sliding window, rope_theta, tie_word_embeddings, head_dim.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

enum class Family { kLlama, kMistral, kQwen2 };

struct LlamaConfig {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, layers = 0, vocab = 0, inner = 0, positions = 0;
  float epsilon = 1e-6f;
  double rope_theta = 10000.0;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, tied = false;
  int64_t sliding_window = 0;  // 0 = none
};

absl::StatusOr<LlamaConfig> ReadConfig(const nlohmann::json& c, Family family) {
  LlamaConfig l;
  QEFF_ASSIGN_OR_RETURN(l.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(l.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(l.kv_heads, ConfigInt(c, "num_key_value_heads", 1, 1024, &l.heads));
  QEFF_ASSIGN_OR_RETURN(l.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(l.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(l.inner, ConfigInt(c, "intermediate_size", 1, 1 << 20));
  QEFF_ASSIGN_OR_RETURN(l.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22));
  if (l.hidden % l.heads != 0 && c.find("head_dim") == c.end()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size = ", l.hidden,
                                                   " is not divisible by num_attention_heads = ", l.heads));
  }
  const int64_t default_head_dim = l.hidden / l.heads;
  QEFF_ASSIGN_OR_RETURN(l.head_dim, ConfigInt(c, "head_dim", 2, 1 << 12, &default_head_dim));
  if (l.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = ", l.head_dim, " must be even for RoPE"));
  }
  if (l.heads % l.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_attention_heads = ", l.heads,
                                                   " is not divisible by num_key_value_heads = ", l.kv_heads));
  }
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-6));  // all three default 1e-6
  l.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(l.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(l.tied, ConfigBool(c, "tie_word_embeddings", false));
  QEFF_ASSIGN_OR_RETURN(std::string act, ConfigString(c, "hidden_act", "silu"));
  if (act != "silu") {
    return absl::UnimplementedError(absl::StrCat("hidden_act \"", act, "\" is not supported (silu)"));
  }
  auto scaling = c.find("rope_scaling");
  if (scaling != c.end() && !scaling->is_null()) {
    std::string type = "?";
    if (scaling->is_object()) {
      for (const char* key : {"rope_type", "type"}) {
        if (scaling->contains(key) && (*scaling)[key].is_string()) type = (*scaling)[key].get<std::string>();
      }
    }
    return absl::UnimplementedError(
        absl::StrCat("rope_scaling (type \"", type, "\": ", scaling->dump(), ") is not supported yet"));
  }
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
  const hf::ModelFolder& folder = ctx.folder;
  const int64_t H = c.hidden, hd = c.head_dim, qdim = c.heads * hd, kvdim = c.kv_heads * hd;

  CausalLMShape shape{static_cast<int>(c.layers), c.kv_heads, hd, c.vocab};
  CausalLMIO io = DeclareCausalLM(g, shape);
  ctx.progress("export", "embeddings", 0, c.layers);

  auto Vec = [&](const std::string& name, int64_t n) { return LoadWeight(g, folder, name, {n}); };
  auto Lin = [&](const std::string& name, int64_t out, int64_t in) { return LoadLinearWeight(g, folder, name, out, in); };

  QEFF_ASSIGN_OR_RETURN(std::string embed, LoadWeight(g, folder, "model.embed_tokens.weight", {c.vocab, H}));
  std::string h = g.Node("Gather", {embed, io.input_ids}, {AttrInt("axis", 0)}, "tok_emb");
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  AttentionOptions attn;
  attn.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(hd)))};
  attn.kv_groups = c.heads / c.kv_heads;
  if (c.sliding_window > 0) attn.mask = SlidingWindowMask(g, io, c.sliding_window);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    QEFF_ASSIGN_OR_RETURN(std::string ln1, Vec(l + "input_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wq, Lin(a + "q_proj.weight", qdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, Lin(a + "k_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, Lin(a + "v_proj.weight", kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, Lin(a + "o_proj.weight", H, qdim));
    std::string bq, bk, bv, bo;
    if (c.qkv_bias) {
      QEFF_ASSIGN_OR_RETURN(bq, Vec(a + "q_proj.bias", qdim));
      QEFF_ASSIGN_OR_RETURN(bk, Vec(a + "k_proj.bias", kvdim));
      QEFF_ASSIGN_OR_RETURN(bv, Vec(a + "v_proj.bias", kvdim));
    }
    if (c.o_bias) {
      QEFF_ASSIGN_OR_RETURN(bo, Vec(a + "o_proj.bias", H));
    }
    QEFF_ASSIGN_OR_RETURN(std::string ln2, Vec(l + "post_attention_layernorm.weight", H));
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string wg, Lin(m + "gate_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wu, Lin(m + "up_proj.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, Lin(m + "down_proj.weight", H, c.inner));
    std::string bg, bu, bd;
    if (c.mlp_bias) {
      QEFF_ASSIGN_OR_RETURN(bg, Vec(m + "gate_proj.bias", c.inner));
      QEFF_ASSIGN_OR_RETURN(bu, Vec(m + "up_proj.bias", c.inner));
      QEFF_ASSIGN_OR_RETURN(bd, Vec(m + "down_proj.bias", H));
    }

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
    ctx.progress("export", absl::StrCat("layer ", i + 1, " of ", c.layers), i + 1, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string norm, Vec("model.norm.weight", H));
  h = RMSNorm(g, h, norm, c.epsilon);
  std::string head = embed;
  if (!c.tied) {
    QEFF_ASSIGN_OR_RETURN(head, LoadWeight(g, folder, "lm_head.weight", {c.vocab, H}));
  }
  LogitsAtLastPosition(g, io, h, H, head);

  summary->num_layers = static_cast<int>(c.layers);
  summary->manifest_extra = {{"hidden_size", H},
                             {"num_heads", c.heads},
                             {"num_kv_heads", c.kv_heads},
                             {"head_dim", hd},
                             {"vocab_size", c.vocab},
                             {"max_positions", c.positions},
                             {"rope_theta", c.rope_theta},
                             {"sliding_window", c.sliding_window},
                             {"qkv_bias", c.qkv_bias},
                             {"tied_lm_head", c.tied},
                             {"linear_weight_layout", "in_out"},
                             {"activation", "silu"}};
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
