// Phi3ForCausalLM (HF transformers 4.44 semantics): Llama's layer (RMSNorm, RoPE with
// rotate_half, attention over the retained KV cache, SwiGLU MLP) with fused projections:
// qkv_proj = [q; k; v] rows (num_heads·hd, kv_heads·hd, kv_heads·hd) and gate_up_proj =
// [gate; up] rows (intermediate each). Each fused projection stays one MatMul followed by a
// Split, as HF computes it. No biases. Long-rope / su scaling (rope_scaling) is not supported.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct Phi3Config {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, layers = 0, vocab = 0, inner = 0, positions = 0;
  float epsilon = 1e-5f;
  double rope_theta = 10000.0;
  bool tied = false;
};

absl::StatusOr<Phi3Config> ReadConfig(const nlohmann::json& c) {
  Phi3Config p;
  QEFF_ASSIGN_OR_RETURN(p.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(p.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.kv_heads, ConfigInt(c, "num_key_value_heads", 1, 1024, &p.heads));
  QEFF_ASSIGN_OR_RETURN(p.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(p.inner, ConfigInt(c, "intermediate_size", 1, 1 << 20));
  QEFF_ASSIGN_OR_RETURN(p.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22));
  if (p.hidden % p.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size = ", p.hidden,
                                                   " is not divisible by num_attention_heads = ", p.heads));
  }
  p.head_dim = p.hidden / p.heads;
  if (p.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = hidden_size / num_attention_heads = ",
                                                   p.head_dim, " must be even for RoPE"));
  }
  if (p.heads % p.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_attention_heads = ", p.heads,
                                                   " is not divisible by num_key_value_heads = ", p.kv_heads));
  }
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-5));  // Phi3Config default
  p.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(p.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(p.tied, ConfigBool(c, "tie_word_embeddings", false));
  QEFF_ASSIGN_OR_RETURN(std::string act, ConfigString(c, "hidden_act", "silu"));
  if (act != "silu") {
    return absl::UnimplementedError(absl::StrCat("hidden_act \"", act, "\" is not supported (silu)"));
  }
  QEFF_ASSIGN_OR_RETURN(double partial, ConfigFloat(c, "partial_rotary_factor", 0.0, 1.0, 1.0));
  if (partial != 1.0) {
    return absl::UnimplementedError(
        absl::StrCat("partial_rotary_factor = ", partial, " is not supported yet (Phi-3 rotates the whole head)"));
  }
  auto scaling = c.find("rope_scaling");
  if (scaling != c.end() && !scaling->is_null()) {
    std::string type = "?";
    if (scaling->is_object()) {
      for (const char* key : {"rope_type", "type"}) {
        if (scaling->contains(key) && (*scaling)[key].is_string()) type = (*scaling)[key].get<std::string>();
      }
    }
    return absl::UnimplementedError(absl::StrCat("rope_scaling (type \"", type, "\": ", scaling->dump(),
                                                 ") is not supported yet (Phi-3 long-rope / su scaling)"));
  }
  return p;
}

absl::Status BuildPhi3(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(Phi3Config c, ReadConfig(ctx.folder.config()));
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

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string ln1, Vec(l + "input_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wqkv, Lin(a + "qkv_proj.weight", qdim + 2 * kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, Lin(a + "o_proj.weight", H, qdim));
    QEFF_ASSIGN_OR_RETURN(std::string ln2, Vec(l + "post_attention_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wgu, Lin(m + "gate_up_proj.weight", 2 * c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, Lin(m + "down_proj.weight", H, c.inner));

    // Attention: qkv = x·Wqkv, split into q [.., :qdim], k, v.
    std::string x = RMSNorm(g, h, ln1, c.epsilon);
    auto qkv = g.NodeN("Split", {Linear(g, x, wqkv), g.VectorI64({qdim, kvdim, kvdim})}, 3, {AttrInt("axis", -1)},
                       "qkv");
    std::string q = SplitHeads(g, qkv[0], c.heads, hd);
    std::string k = SplitHeads(g, qkv[1], c.kv_heads, hd);
    std::string v = SplitHeads(g, qkv[2], c.kv_heads, hd);
    q = ApplyRope(g, q, rope, hd);
    k = ApplyRope(g, k, rope, hd);
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
    o = Linear(g, MergeHeads(g, o, qdim), wo);
    h = g.Node("Add", {h, o}, {}, "residual");

    // MLP: gate, up = chunk(x·Wgate_up, 2); down(up · silu(gate)).
    x = RMSNorm(g, h, ln2, c.epsilon);
    auto gu = g.NodeN("Split", {Linear(g, x, wgu), g.VectorI64({c.inner, c.inner})}, 2, {AttrInt("axis", -1)},
                      "gate_up");
    std::string act = g.Node("Mul", {gu[1], Silu(g, gu[0])}, {}, "swiglu");
    x = Linear(g, act, wd);
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
                             {"fused_qkv", true},
                             {"fused_gate_up", true},
                             {"tied_lm_head", c.tied},
                             {"linear_weight_layout", "in_out"},
                             {"activation", "silu"}};
  return absl::OkStatus();
}

}  // namespace

void RegisterPhi3(ModelRegistry& registry) { registry.Register("Phi3ForCausalLM", BuildPhi3); }

}  // namespace qeff::exporter
