// FalconForCausalLM (HF transformers 4.44 semantics), the falcon-7b / falcon-40b-era layout
// with new_decoder_architecture = false:
// - multi_query (default): one fused query_key_value projection producing num_heads query heads
//   and ONE key and ONE value head (whatever num_kv_heads says), rows [q; k; v]; without
//   multi_query the fused rows are interleaved per head ([heads, 3, head_dim]) and kv heads =
//   num_heads.
// - RoPE (rotate_half, rope_theta), scores / sqrt(head_dim).
// - parallel_attn (default): h = h + (mlp(ln(h)) + attn(ln(h))) with one input_layernorm;
//   otherwise sequential with post_attention_layernorm.
// - MLP dense_h_to_4h -> gelu (erf) -> dense_4h_to_h; biases on every linear when `bias`.
// - ln_f, lm_head tied to word_embeddings by default.
// Not supported (UNIMPLEMENTED naming the field): new_decoder_architecture, alibi, rope_scaling.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct FalconConfig : DecoderDims {
  float epsilon = 1e-5f;
  double rope_theta = 10000.0;
  bool multi_query = true, parallel_attn = true, bias = false, tied = true;
  std::string activation;
};

absl::StatusOr<FalconConfig> ReadConfig(const nlohmann::json& c) {
  FalconConfig p;
  QEFF_ASSIGN_OR_RETURN(bool new_arch, ConfigBool(c, "new_decoder_architecture", false));
  if (new_arch) {
    return absl::UnimplementedError(
        "new_decoder_architecture = true (falcon-40b/180b grouped layout) is not supported yet");
  }
  QEFF_ASSIGN_OR_RETURN(bool alibi, ConfigBool(c, "alibi", false));
  if (alibi) return absl::UnimplementedError("alibi = true (ALiBi position bias) is not supported yet");
  QEFF_RETURN_IF_ERROR(RejectRopeScaling(c));
  QEFF_ASSIGN_OR_RETURN(p.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(p.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  const int64_t default_positions = 2048;  // FalconConfig default
  QEFF_ASSIGN_OR_RETURN(p.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22, &default_positions));
  const int64_t default_inner = 4 * p.hidden;
  QEFF_ASSIGN_OR_RETURN(p.inner, ConfigInt(c, "ffn_hidden_size", 1, 1 << 20, &default_inner));
  QEFF_ASSIGN_OR_RETURN(p.head_dim, RopeHeadDimFromHidden(p.hidden, p.heads));
  QEFF_ASSIGN_OR_RETURN(p.multi_query, ConfigBool(c, "multi_query", true));
  if (p.multi_query) {
    p.kv_heads = 1;  // HF: num_kv_heads is only read with new_decoder_architecture or !multi_query
  } else {
    QEFF_ASSIGN_OR_RETURN(p.kv_heads, ConfigInt(c, "num_kv_heads", 1, 1024, &p.heads));
    if (p.kv_heads != p.heads) {
      return absl::UnimplementedError(absl::StrCat("num_kv_heads = ", p.kv_heads, " != num_attention_heads = ",
                                                   p.heads, " without multi_query or new_decoder_architecture"));
    }
  }
  QEFF_ASSIGN_OR_RETURN(p.parallel_attn, ConfigBool(c, "parallel_attn", true));
  QEFF_ASSIGN_OR_RETURN(p.bias, ConfigBool(c, "bias", false));
  QEFF_ASSIGN_OR_RETURN(p.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  p.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(p.rope_theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(p.activation, ConfigChoice(c, "activation", "gelu", {"gelu"}));
  return p;
}

absl::Status BuildFalcon(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(FalconConfig c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const WeightLoader w{g, ctx.folder, ""};
  const int64_t H = c.hidden, hd = c.head_dim, kvdim = c.kv_heads * hd;
  const int64_t qkv_out = H + 2 * kvdim;

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "transformer.word_embeddings.weight"));
  const CausalLMIO& io = start.io;
  std::string h = start.hidden;
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  const AttentionOptions attn = ScaledAttention(hd, c.heads / c.kv_heads);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("transformer.h.", i, ".");
    const std::string a = l + "self_attention.";
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln, LoadLayerNorm(w, l + "input_layernorm", H));
    QEFF_ASSIGN_OR_RETURN(std::string wqkv, w.Lin(a + "query_key_value.weight", qkv_out, H));
    QEFF_ASSIGN_OR_RETURN(std::string bqkv, w.OptionalVec(c.bias, a + "query_key_value.bias", qkv_out));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(a + "dense.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bo, w.OptionalVec(c.bias, a + "dense.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string w_up, w.Lin(m + "dense_h_to_4h.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string b_up, w.OptionalVec(c.bias, m + "dense_h_to_4h.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string w_down, w.Lin(m + "dense_4h_to_h.weight", H, c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string b_down, w.OptionalVec(c.bias, m + "dense_4h_to_h.bias", H));
    LayerNormWeights ln2;
    if (!c.parallel_attn) {
      QEFF_ASSIGN_OR_RETURN(ln2, LoadLayerNorm(w, l + "post_attention_layernorm", H));
    }

    // Attention.
    std::string x = LayerNorm(g, h, ln, c.epsilon);
    std::string fused = Linear(g, x, wqkv, bqkv);
    std::string q, k, v;
    if (c.multi_query) {
      // view(B, S, heads + 2, hd): heads query rows, then one key and one value head.
      auto qkv = g.NodeN("Split", {fused, g.VectorI64({H, kvdim, kvdim})}, 3, {AttrInt("axis", -1)}, "qkv");
      q = qkv[0];
      k = qkv[1];
      v = qkv[2];
    } else {
      // view(B, S, heads, 3, hd): q/k/v interleaved per head.
      std::string r = g.Node("Reshape", {fused, g.VectorI64({0, 0, c.heads, 3, hd})}, {}, "qkv_heads");
      auto qkv = g.NodeN("Split", {r, g.VectorI64({1, 1, 1})}, 3, {AttrInt("axis", 3)}, "qkv");
      q = g.Node("Reshape", {qkv[0], g.VectorI64({0, 0, H})}, {}, "q_flat");
      k = g.Node("Reshape", {qkv[1], g.VectorI64({0, 0, H})}, {}, "k_flat");
      v = g.Node("Reshape", {qkv[2], g.VectorI64({0, 0, H})}, {}, "v_flat");
    }
    q = ApplyRope(g, SplitHeads(g, q, c.heads, hd), rope, hd);
    k = ApplyRope(g, SplitHeads(g, k, c.kv_heads, hd), rope, hd);
    v = SplitHeads(g, v, c.kv_heads, hd);
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
    o = Linear(g, MergeHeads(g, o, H), wo, bo);

    if (c.parallel_attn) {
      // HF: mlp_output += attention_output; output = residual + mlp_output.
      std::string f = Linear(g, GeluErf(g, Linear(g, x, w_up, b_up)), w_down, b_down);
      std::string sum = g.Node("Add", {f, o}, {}, "parallel_sum");
      h = g.Node("Add", {h, sum}, {}, "residual");
    } else {
      h = g.Node("Add", {h, o}, {}, "residual");
      std::string x2 = LayerNorm(g, h, ln2, c.epsilon);
      std::string f = Linear(g, GeluErf(g, Linear(g, x2, w_up, b_up)), w_down, b_down);
      h = g.Node("Add", {h, f}, {}, "residual");
    }
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(LayerNormWeights lnf, LoadLayerNorm(w, "transformer.ln_f", H));
  h = LayerNorm(g, h, lnf, c.epsilon);
  QEFF_RETURN_IF_ERROR(TiedOrUntiedLogits(w, io, h, start.embed, c.tied, c));

  SetDecoderSummary(summary, c,
                    {{"rope_theta", c.rope_theta},
                     {"multi_query", c.multi_query},
                     {"parallel_attn", c.parallel_attn},
                     {"bias", c.bias},
                     {"tied_lm_head", c.tied},
                     {"linear_weight_layout", "in_out"},
                     {"activation", c.activation}});
  return absl::OkStatus();
}

}  // namespace

void RegisterFalcon(ModelRegistry& registry) { registry.Register("FalconForCausalLM", BuildFalcon); }

}  // namespace qeff::exporter
