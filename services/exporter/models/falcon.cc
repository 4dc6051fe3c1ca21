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
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct FalconConfig {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, layers = 0, vocab = 0, inner = 0, positions = 0;
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
  auto scaling = c.find("rope_scaling");
  if (scaling != c.end() && !scaling->is_null()) {
    return absl::UnimplementedError(absl::StrCat("rope_scaling (", scaling->dump(), ") is not supported yet"));
  }
  QEFF_ASSIGN_OR_RETURN(p.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(p.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  const int64_t default_positions = 2048;  // FalconConfig default
  QEFF_ASSIGN_OR_RETURN(p.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22, &default_positions));
  const int64_t default_inner = 4 * p.hidden;
  QEFF_ASSIGN_OR_RETURN(p.inner, ConfigInt(c, "ffn_hidden_size", 1, 1 << 20, &default_inner));
  if (p.hidden % p.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size = ", p.hidden,
                                                   " is not divisible by num_attention_heads = ", p.heads));
  }
  p.head_dim = p.hidden / p.heads;
  if (p.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = hidden_size / num_attention_heads = ",
                                                   p.head_dim, " must be even for RoPE"));
  }
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
  QEFF_ASSIGN_OR_RETURN(p.activation, ConfigString(c, "activation", "gelu"));
  if (p.activation != "gelu") {
    return absl::UnimplementedError(absl::StrCat("activation \"", p.activation, "\" is not supported (gelu)"));
  }
  return p;
}

absl::Status BuildFalcon(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(FalconConfig c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const hf::ModelFolder& folder = ctx.folder;
  const int64_t H = c.hidden, hd = c.head_dim, kvdim = c.kv_heads * hd;
  const int64_t qkv_out = H + 2 * kvdim;

  CausalLMShape shape{static_cast<int>(c.layers), c.kv_heads, hd, c.vocab};
  CausalLMIO io = DeclareCausalLM(g, shape);
  ctx.progress("export", "embeddings", 0, c.layers);

  auto Vec = [&](const std::string& name, int64_t n) { return LoadWeight(g, folder, name, {n}); };
  auto Lin = [&](const std::string& name, int64_t out, int64_t in) { return LoadLinearWeight(g, folder, name, out, in); };
  // Optional bias (config `bias`).
  auto Bias = [&](const std::string& name, int64_t n) -> absl::StatusOr<std::string> {
    if (!c.bias) return std::string();
    return Vec(name, n);
  };

  QEFF_ASSIGN_OR_RETURN(std::string embed, LoadWeight(g, folder, "transformer.word_embeddings.weight", {c.vocab, H}));
  std::string h = g.Node("Gather", {embed, io.input_ids}, {AttrInt("axis", 0)}, "tok_emb");
  RopeTables rope = Rope(g, io, c.positions, hd, c.rope_theta);
  AttentionOptions attn;
  attn.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(hd)))};
  attn.kv_groups = c.heads / c.kv_heads;

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("transformer.h.", i, ".");
    const std::string a = l + "self_attention.";
    const std::string m = l + "mlp.";
    QEFF_ASSIGN_OR_RETURN(std::string ln_w, Vec(l + "input_layernorm.weight", H));
    QEFF_ASSIGN_OR_RETURN(std::string ln_b, Vec(l + "input_layernorm.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string wqkv, Lin(a + "query_key_value.weight", qkv_out, H));
    QEFF_ASSIGN_OR_RETURN(std::string bqkv, Bias(a + "query_key_value.bias", qkv_out));
    QEFF_ASSIGN_OR_RETURN(std::string wo, Lin(a + "dense.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bo, Bias(a + "dense.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string w_up, Lin(m + "dense_h_to_4h.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string b_up, Bias(m + "dense_h_to_4h.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string w_down, Lin(m + "dense_4h_to_h.weight", H, c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string b_down, Bias(m + "dense_4h_to_h.bias", H));
    std::string ln2_w, ln2_b;
    if (!c.parallel_attn) {
      QEFF_ASSIGN_OR_RETURN(ln2_w, Vec(l + "post_attention_layernorm.weight", H));
      QEFF_ASSIGN_OR_RETURN(ln2_b, Vec(l + "post_attention_layernorm.bias", H));
    }

    // Attention.
    std::string x = LayerNorm(g, h, ln_w, ln_b, c.epsilon);
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
      std::string x2 = LayerNorm(g, h, ln2_w, ln2_b, c.epsilon);
      std::string f = Linear(g, GeluErf(g, Linear(g, x2, w_up, b_up)), w_down, b_down);
      h = g.Node("Add", {h, f}, {}, "residual");
    }
    ctx.progress("export", absl::StrCat("layer ", i + 1, " of ", c.layers), i + 1, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(std::string lnf_w, Vec("transformer.ln_f.weight", H));
  QEFF_ASSIGN_OR_RETURN(std::string lnf_b, Vec("transformer.ln_f.bias", H));
  h = LayerNorm(g, h, lnf_w, lnf_b, c.epsilon);
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
                             {"multi_query", c.multi_query},
                             {"parallel_attn", c.parallel_attn},
                             {"bias", c.bias},
                             {"tied_lm_head", c.tied},
                             {"linear_weight_layout", "in_out"},
                             {"activation", c.activation}};
  return absl::OkStatus();
}

}  // namespace

void RegisterFalcon(ModelRegistry& registry) { registry.Register("FalconForCausalLM", BuildFalcon); }

}  // namespace qeff::exporter
