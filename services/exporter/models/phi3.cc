// Phi3ForCausalLM and PhiForCausalLM (HF transformers 4.44).
//   Phi-3: the Llama layout with fused qkv_proj and gate_up_proj; rope_scaling longrope ("su")
//          with original_max_position_embeddings.
//   Phi (phi-2): LayerNorm with bias, q/k/v/dense with bias, partial rotate_half rotary
//          (partial_rotary_factor of head_dim), attention and MLP (fc1 -> gelu_new -> fc2) in
//          parallel from one input_layernorm, final_layernorm, lm_head with bias.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::StatusOr<DecoderSpec> Phi3(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(double partial, ConfigFloat(c, "partial_rotary_factor", 0.0, 1.0, 1.0));
  if (partial != 1.0) {
    return absl::UnimplementedError(absl::StrCat("partial_rotary_factor = ", partial, " is not supported for Phi-3"));
  }
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-5, false));
  if (s.rotary.scaling != "default" && s.rotary.scaling != "longrope") {
    return absl::UnimplementedError(
        absl::StrCat("Phi-3 supports rope_scaling longrope only, not \"", s.rotary.scaling, "\""));
  }
  s.qkv = QkvLayout::kFused;
  s.qkv_names = {"qkv_proj"};
  s.mlp_kind = MlpKind::kFusedGated;
  s.mlp_names = {"gate_up_proj", "down_proj"};
  return s;
}

absl::StatusOr<DecoderSpec> Phi(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(bool qk_norm, ConfigBool(c, "qk_layernorm", false));
  if (qk_norm) return absl::UnimplementedError("qk_layernorm = true is not supported yet");
  DecoderSpec s;
  DecoderDims& d = s.dims;
  QEFF_RETURN_IF_ERROR(ReadDecoderDims(c, &d));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(d.hidden, d.heads));
  QEFF_RETURN_IF_ERROR(CheckKvGroups(d.heads, d.kv_heads));
  d.head_dim = d.hidden / d.heads;
  QEFF_ASSIGN_OR_RETURN(double partial, ConfigFloat(c, "partial_rotary_factor", 0.0, 1.0, 0.5));
  QEFF_ASSIGN_OR_RETURN(double theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  const int64_t rotary_dim = static_cast<int64_t>(static_cast<double>(d.head_dim) * partial);
  QEFF_ASSIGN_OR_RETURN(s.rotary, ReadRotary(c, RotarySpec::Style::kHalf, rotary_dim, d.positions, theta));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_eps", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "hidden_act", "gelu_new"));
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", false));
  if (s.tied) return absl::UnimplementedError("tie_word_embeddings = true is not supported for Phi (lm_head has a bias)");
  s.norm = NormKind::kLayerNorm;
  s.names.final_norm = "final_layernorm";
  s.parallel = true;
  s.mlp_norm = "";
  s.qkv_bias = s.o_bias = s.mlp_bias = true;
  s.o_name = "dense";
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"fc1", "fc2"};
  s.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(d.head_dim)))};
  s.lm_head_bias = true;
  return s;
}

}  // namespace

void RegisterPhi3(ModelRegistry& registry) {
  RegisterDecoder(registry, "Phi3ForCausalLM", Phi3);
  RegisterDecoder(registry, "PhiForCausalLM", Phi);
}

}  // namespace qeff::exporter
