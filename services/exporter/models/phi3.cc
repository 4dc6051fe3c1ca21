// Phi3ForCausalLM (HF transformers 4.44 semantics): Llama's layer (RMSNorm, RoPE with
// rotate_half, attention over the retained KV cache, SwiGLU MLP) with fused projections:
// qkv_proj = [q; k; v] rows (num_heads·hd, kv_heads·hd, kv_heads·hd) and gate_up_proj =
// [gate; up] rows (intermediate each). Each fused projection stays one MatMul followed by a
// Split, as HF computes it. No biases. Long-rope / su scaling (rope_scaling) is not supported.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct Phi3Config : DecoderDims {
  float epsilon = 1e-5f;
  double rope_theta = 10000.0;
  bool tied = false;
};

absl::StatusOr<Phi3Config> ReadConfig(const nlohmann::json& c) {
  Phi3Config p;
  QEFF_RETURN_IF_ERROR(ReadDecoderDims(c, &p));
  QEFF_ASSIGN_OR_RETURN(p.head_dim, RopeHeadDimFromHidden(p.hidden, p.heads));
  QEFF_RETURN_IF_ERROR(CheckKvGroups(p.heads, p.kv_heads));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, 1e-5));  // Phi3Config default
  p.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(p.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(p.tied, ConfigBool(c, "tie_word_embeddings", false));
  QEFF_RETURN_IF_ERROR(ConfigChoice(c, "hidden_act", "silu", {"silu"}).status());
  QEFF_ASSIGN_OR_RETURN(double partial, ConfigFloat(c, "partial_rotary_factor", 0.0, 1.0, 1.0));
  if (partial != 1.0) {
    return absl::UnimplementedError(
        absl::StrCat("partial_rotary_factor = ", partial, " is not supported yet (Phi-3 rotates the whole head)"));
  }
  QEFF_RETURN_IF_ERROR(RejectTypedRopeScaling(c, " (Phi-3 long-rope / su scaling)"));
  return p;
}

absl::Status BuildPhi3(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(Phi3Config c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const WeightLoader w{g, ctx.folder, ""};
  const int64_t H = c.hidden, hd = c.head_dim, qdim = c.heads * hd, kvdim = c.kv_heads * hd;

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "model.embed_tokens.weight"));
  const CausalLMIO& io = start.io;
  std::string h = start.hidden;
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  const AttentionOptions attn = ScaledAttention(hd, c.heads / c.kv_heads);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, ".");
    const std::string a = l + "self_attn.";
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string ln1, w.Vec(l + "input_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wqkv, w.Lin(a + "qkv_proj.weight", qdim + 2 * kvdim, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(a + "o_proj.weight", H, qdim));
    QEFF_ASSIGN_OR_RETURN(std::string ln2, w.Vec(l + "post_attention_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string wgu, w.Lin(m + "gate_up_proj.weight", 2 * c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string wd, w.Lin(m + "down_proj.weight", H, c.inner));

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
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string norm, w.Vec("model.norm.weight", H));
  h = RMSNorm(g, h, norm, c.epsilon);
  QEFF_RETURN_IF_ERROR(TiedOrUntiedLogits(w, io, h, start.embed, c.tied, c));

  SetDecoderSummary(summary, c,
                    {{"rope_theta", c.rope_theta},
                     {"fused_qkv", true},
                     {"fused_gate_up", true},
                     {"tied_lm_head", c.tied},
                     {"linear_weight_layout", "in_out"},
                     {"activation", "silu"}});
  return absl::OkStatus();
}

}  // namespace

void RegisterPhi3(ModelRegistry& registry) { registry.Register("Phi3ForCausalLM", BuildPhi3); }

}  // namespace qeff::exporter
