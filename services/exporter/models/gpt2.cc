// GPT2LMHeadModel: learned positions, fused c_attn (Conv1D weights are already [in, out]),
// gelu_new MLP, pre-LN blocks, final ln_f, lm_head tied to wte.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct Gpt2Config : DecoderDims {
  float epsilon = 1e-5f;
  std::string activation;
  bool scale_attn = true, scale_by_layer = false, tied = true;
};

absl::StatusOr<Gpt2Config> ReadConfig(const nlohmann::json& c) {
  Gpt2Config g;
  QEFF_ASSIGN_OR_RETURN(g.hidden, ConfigInt(c, "n_embd", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(g.heads, ConfigInt(c, "n_head", 1, 1024));
  g.kv_heads = g.heads;
  QEFF_ASSIGN_OR_RETURN(g.layers, ConfigInt(c, "n_layer", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(g.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(g.positions, ConfigInt(c, "n_positions", 1, 1 << 22));
  const int64_t default_inner = 4 * g.hidden;
  QEFF_ASSIGN_OR_RETURN(g.inner, ConfigInt(c, "n_inner", 1, 1 << 18, &default_inner));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  g.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(g.activation, ConfigString(c, "activation_function", "gelu_new"));
  QEFF_ASSIGN_OR_RETURN(g.scale_attn, ConfigBool(c, "scale_attn_weights", true));
  QEFF_ASSIGN_OR_RETURN(g.scale_by_layer, ConfigBool(c, "scale_attn_by_inverse_layer_idx", false));
  QEFF_ASSIGN_OR_RETURN(g.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(bool cross, ConfigBool(c, "add_cross_attention", false));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(g.hidden, g.heads, "n_embd", "n_head"));
  g.head_dim = g.hidden / g.heads;
  if (g.activation != "gelu_new" && g.activation != "gelu_pytorch_tanh" && g.activation != "gelu") {
    return absl::UnimplementedError(absl::StrCat("GPT-2 activation_function \"", g.activation,
                                                 "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu)"));
  }
  if (cross) return absl::UnimplementedError("GPT-2 with add_cross_attention is not supported");
  return g;
}

absl::Status BuildGpt2(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(Gpt2Config c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const int64_t H = c.hidden, hd = c.head_dim;

  // save_pretrained of GPT2LMHeadModel writes "transformer.*"; the original hub checkpoints
  // have no prefix (and extra attn.bias / attn.masked_bias buffers, which are never read).
  QEFF_ASSIGN_OR_RETURN(std::string p, DetectWeightPrefix(ctx.folder, "transformer.", "wte.weight",
                                                          "\"transformer.wte.weight\" (or \"wte.weight\")"));
  const WeightLoader w{g, ctx.folder, p};

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "wte.weight"));
  const CausalLMIO& io = start.io;
  QEFF_ASSIGN_OR_RETURN(std::string wpe, w.Tensor("wpe.weight", {c.positions, H}));
  // Padding positions (-1) read row 0; their results are never used.
  std::string pos = g.Node("Max", {io.position_ids, g.ScalarI64(0)}, {}, "pos_clamped");
  std::string pe = g.Node("Gather", {wpe, pos}, {AttrInt("axis", 0)}, "pos_emb");
  std::string h = g.Node("Add", {start.hidden, pe}, {}, "embed");

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("h.", i, ".");
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln1, LoadLayerNorm(w, l + "ln_1", H));
    QEFF_ASSIGN_OR_RETURN(std::string attn_w, w.Tensor(l + "attn.c_attn.weight", {H, 3 * H}));
    QEFF_ASSIGN_OR_RETURN(std::string attn_b, w.Vec(l + "attn.c_attn.bias", 3 * H));
    QEFF_ASSIGN_OR_RETURN(std::string proj_w, w.Tensor(l + "attn.c_proj.weight", {H, H}));
    QEFF_ASSIGN_OR_RETURN(std::string proj_b, w.Vec(l + "attn.c_proj.bias", H));
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln2, LoadLayerNorm(w, l + "ln_2", H));
    QEFF_ASSIGN_OR_RETURN(std::string fc_w, w.Tensor(l + "mlp.c_fc.weight", {H, c.inner}));
    QEFF_ASSIGN_OR_RETURN(std::string fc_b, w.Vec(l + "mlp.c_fc.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string mproj_w, w.Tensor(l + "mlp.c_proj.weight", {c.inner, H}));
    QEFF_ASSIGN_OR_RETURN(std::string mproj_b, w.Vec(l + "mlp.c_proj.bias", H));

    // Attention.
    std::string x = LayerNorm(g, h, ln1, c.epsilon);
    std::string qkv = Linear(g, x, attn_w, attn_b);
    auto parts = g.NodeN("Split", {qkv, g.VectorI64({H, H, H})}, 3, {AttrInt("axis", 2)}, "qkv");
    std::string q = SplitHeads(g, parts[0], c.heads, hd);
    std::string k = SplitHeads(g, parts[1], c.heads, hd);
    std::string v = SplitHeads(g, parts[2], c.heads, hd);
    // HF divides the scores by sqrt(head_dim), then (optionally) by layer + 1, in that order.
    std::vector<float> divisors;
    if (c.scale_attn) divisors.push_back(static_cast<float>(std::sqrt(static_cast<double>(hd))));
    if (c.scale_by_layer) divisors.push_back(static_cast<float>(i + 1));
    std::string a = CachedAttention(g, io, i, q, k, v, divisors);
    a = MergeHeads(g, a, H);
    a = Linear(g, a, proj_w, proj_b);
    h = g.Node("Add", {h, a}, {}, "residual");

    // MLP.
    x = LayerNorm(g, h, ln2, c.epsilon);
    x = Linear(g, x, fc_w, fc_b);
    x = c.activation == "gelu" ? GeluErf(g, x) : GeluTanh(g, x);
    x = Linear(g, x, mproj_w, mproj_b);
    h = g.Node("Add", {h, x}, {}, "residual");
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(LayerNormWeights lnf, LoadLayerNorm(w, "ln_f", H));
  h = LayerNorm(g, h, lnf, c.epsilon);
  QEFF_RETURN_IF_ERROR(TiedOrUntiedLogits(w, io, h, start.embed, c.tied, c));

  SetDecoderSummary(summary, c, {{"weight_prefix", p}, {"tied_lm_head", c.tied}, {"activation", c.activation}});
  return absl::OkStatus();
}

}  // namespace

void RegisterGpt2(ModelRegistry& registry) { registry.Register("GPT2LMHeadModel", BuildGpt2); }

}  // namespace qeff::exporter
