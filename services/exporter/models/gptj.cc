// GPTJForCausalLM (HF transformers 4.44 semantics): one LayerNorm (ln_1) feeds attention and
// the MLP in parallel (h = attn(ln_1(h)) + mlp(ln_1(h)) + h); q/k/v/out projections without
// bias; partial interleaved rotary (rotate_every_two over the first rotary_dim dims of each
// head, sin/cos tables from create_sinusoidal_positions, base 10000); MLP fc_in -> gelu_new ->
// fc_out with biases; ln_f; untied lm_head with bias.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

struct GptjConfig : DecoderDims {
  int64_t rotary_dim = 0;
  float epsilon = 1e-5f;
  std::string activation;
  bool tied = false;
};

absl::StatusOr<GptjConfig> ReadConfig(const nlohmann::json& c) {
  GptjConfig p;
  QEFF_ASSIGN_OR_RETURN(p.hidden, ConfigInt(c, "n_embd", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(p.heads, ConfigInt(c, "n_head", 1, 1024));
  p.kv_heads = p.heads;
  QEFF_ASSIGN_OR_RETURN(p.layers, ConfigInt(c, "n_layer", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(p.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(p.positions, ConfigInt(c, "n_positions", 1, 1 << 22));
  const int64_t default_inner = 4 * p.hidden;
  QEFF_ASSIGN_OR_RETURN(p.inner, ConfigInt(c, "n_inner", 1, 1 << 20, &default_inner));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(p.hidden, p.heads, "n_embd", "n_head"));
  p.head_dim = p.hidden / p.heads;
  auto rd = c.find("rotary_dim");
  if (rd == c.end() || rd->is_null()) {
    // HF then builds tables of n_embd dims against head_dim-wide heads, which only works for
    // one head; not supported.
    return absl::UnimplementedError("rotary_dim = null (rotary over the whole embedding) is not supported");
  }
  QEFF_ASSIGN_OR_RETURN(p.rotary_dim, ConfigInt(c, "rotary_dim", 2, p.head_dim));
  if (p.rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: rotary_dim = ", p.rotary_dim, " must be even"));
  }
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  p.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(p.activation, ConfigChoice(c, "activation_function", "gelu_new", {"gelu_new", "gelu"}));
  QEFF_ASSIGN_OR_RETURN(p.tied, ConfigBool(c, "tie_word_embeddings", false));
  if (p.tied) {
    return absl::UnimplementedError("tie_word_embeddings = true is not supported for GPT-J (lm_head has a bias)");
  }
  QEFF_RETURN_IF_ERROR(RejectRopeScaling(c, " for GPT-J"));
  return p;
}

absl::Status BuildGptj(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(GptjConfig c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const WeightLoader w{g, ctx.folder, ""};
  const int64_t H = c.hidden, hd = c.head_dim;
  auto Act = [&](const std::string& x) { return c.activation == "gelu" ? GeluErf(g, x) : GeluTanh(g, x); };

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, w, c, "transformer.wte.weight"));
  const CausalLMIO& io = start.io;
  std::string h = start.hidden;
  RopeTables rope = RopeInterleaved(g, io, c.positions, c.rotary_dim, 10000.0);
  const AttentionOptions attn = ScaledAttention(hd);

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("transformer.h.", i, ".");
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln, LoadLayerNorm(w, l + "ln_1", H));
    QEFF_ASSIGN_OR_RETURN(std::string wq, w.Lin(l + "attn.q_proj.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, w.Lin(l + "attn.k_proj.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, w.Lin(l + "attn.v_proj.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(l + "attn.out_proj.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string w_in, w.Lin(l + "mlp.fc_in.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string b_in, w.Vec(l + "mlp.fc_in.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string w_out, w.Lin(l + "mlp.fc_out.weight", H, c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string b_out, w.Vec(l + "mlp.fc_out.bias", H));

    std::string x = LayerNorm(g, h, ln, c.epsilon);
    // Attention.
    std::string q = SplitHeads(g, Linear(g, x, wq), c.heads, hd);
    std::string k = SplitHeads(g, Linear(g, x, wk), c.heads, hd);
    std::string v = SplitHeads(g, Linear(g, x, wv), c.heads, hd);
    q = ApplyRopeInterleaved(g, q, rope, hd, c.rotary_dim);
    k = ApplyRopeInterleaved(g, k, rope, hd, c.rotary_dim);
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
    o = Linear(g, MergeHeads(g, o, H), wo);
    // MLP on the same normalized input.
    std::string f = Linear(g, Act(Linear(g, x, w_in, b_in)), w_out, b_out);
    // HF: attn_output + feed_forward_hidden_states + residual.
    std::string sum = g.Node("Add", {o, f}, {}, "parallel_sum");
    h = g.Node("Add", {sum, h}, {}, "residual");
    ReportLayer(ctx, i, c.layers);
  }

  QEFF_ASSIGN_OR_RETURN(LayerNormWeights lnf, LoadLayerNorm(w, "transformer.ln_f", H));
  h = LayerNorm(g, h, lnf, c.epsilon);
  QEFF_ASSIGN_OR_RETURN(std::string head, LmHeadWeight(w, start.embed, /*tied=*/false, c));
  QEFF_ASSIGN_OR_RETURN(std::string head_b, w.Vec("lm_head.bias", c.vocab));
  std::string last = LastPositionHidden(g, io, h, H);
  std::string w_t = g.Node("Transpose", {head}, {AttrInts("perm", {1, 0})}, "lm_head_t");
  std::string mm = g.Node("MatMul", {last, w_t}, {}, "lm_head");
  g.NodeNamed("Add", {mm, head_b}, {"logits"});

  SetDecoderSummary(summary, c,
                    {{"rotary_dim", c.rotary_dim},
                     {"rotary_style", "interleaved"},
                     {"parallel_attn", true},
                     {"tied_lm_head", false},
                     {"lm_head_bias", true},
                     {"linear_weight_layout", "in_out"},
                     {"activation", c.activation}});
  return absl::OkStatus();
}

}  // namespace

void RegisterGptj(ModelRegistry& registry) { registry.Register("GPTJForCausalLM", BuildGptj); }

}  // namespace qeff::exporter
