// GPT2LMHeadModel and GPTBigCodeForCausalLM (StarCoder / SantaCoder), HF transformers 4.44:
// learned positions, pre-LN blocks with LayerNorm, fused c_attn, c_fc -> gelu -> c_proj MLP,
// ln_f, lm_head tied to wte.
//   GPT-2: Conv1D weights ([in, out]), scores / sqrt(head_dim) then / (layer + 1) when
//          scale_attn_by_inverse_layer_idx; hub checkpoints without the "transformer." prefix.
//   GPTBigCode: nn.Linear weights; multi_query (one kv head, c_attn rows [q; k; v]) or per-head
//          [q, k, v] rows; scores · 1/sqrt(head_dim).
#include <cmath>

#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

// The GPT-2 config keys (n_embd, n_head, n_layer, n_positions, n_inner) and layout.
absl::StatusOr<DecoderSpec> Gpt2Layout(const hf::ModelFolder& f) {
  const json& c = f.config();
  DecoderSpec s;
  QEFF_RETURN_IF_ERROR(ReadGpt2Dims(c, &s.dims));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(bool cross, ConfigBool(c, "add_cross_attention", false));
  if (cross) return absl::UnimplementedError("add_cross_attention = true is not supported");
  // save_pretrained writes "transformer.*"; the original hub checkpoints have no prefix (and
  // extra attn.bias / attn.masked_bias buffers, which are never read).
  QEFF_ASSIGN_OR_RETURN(s.names.prefix, DetectWeightPrefix(f, "transformer.", "wte.weight",
                                                     "\"transformer.wte.weight\" (or \"wte.weight\")"));
  s.names = {s.names.prefix, "wte.weight", "h.", "attn.", "mlp.", "ln_f"};
  s.learned_positions = "wpe.weight";
  s.norm = NormKind::kLayerNorm;
  s.attn_norm = "ln_1";
  s.mlp_norm = "ln_2";
  s.qkv = QkvLayout::kFused;
  s.qkv_names = {"c_attn"};
  s.o_name = "c_proj";
  s.qkv_bias = s.o_bias = s.mlp_bias = true;
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"c_fc", "c_proj"};
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "activation_function", "gelu_new"));
  s.summary = {{"weight_prefix", s.names.prefix}};
  return s;
}

absl::StatusOr<DecoderSpec> Gpt2(const hf::ModelFolder& f) {
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, Gpt2Layout(f));
  const json& c = f.config();
  s.conv1d_weights = true;
  QEFF_ASSIGN_OR_RETURN(bool scale, ConfigBool(c, "scale_attn_weights", true));
  QEFF_ASSIGN_OR_RETURN(s.divide_scores_by_layer, ConfigBool(c, "scale_attn_by_inverse_layer_idx", false));
  if (scale) s.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(s.dims.head_dim)))};
  return s;
}

absl::StatusOr<DecoderSpec> GptBigCode(const hf::ModelFolder& f) {
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, Gpt2Layout(f));
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(bool multi_query, ConfigBool(c, "multi_query", true));
  s.dims.kv_heads = multi_query ? 1 : s.dims.heads;
  s.qkv = multi_query ? QkvLayout::kFused : QkvLayout::kFusedPerHead;
  QEFF_ASSIGN_OR_RETURN(bool scale, ConfigBool(c, "scale_attn_weights", true));
  if (scale) s.score_multiplier = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.dims.head_dim)));
  s.summary["multi_query"] = multi_query;
  return s;
}

}  // namespace

void RegisterGpt2(ModelRegistry& registry) {
  RegisterDecoder(registry, "GPT2LMHeadModel", Gpt2);
  RegisterDecoder(registry, "GPTBigCodeForCausalLM", GptBigCode);
}

}  // namespace qeff::exporter
