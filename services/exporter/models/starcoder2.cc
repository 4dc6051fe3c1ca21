// Starcoder2ForCausalLM (HF transformers 4.44): the Llama layout with LayerNorm (bias,
// norm_epsilon), q/k/v/o and MLP biases under use_bias, a plain c_fc -> gelu_pytorch_tanh ->
// c_proj MLP, rotate_half RoPE, grouped-query attention, lm_head tied by default. The eager
// path ignores sliding_window.
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

absl::StatusOr<DecoderSpec> Starcoder2(const hf::ModelFolder& f) {
  const nlohmann::json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-5, true));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "norm_epsilon", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  s.norm = NormKind::kLayerNorm;
  QEFF_ASSIGN_OR_RETURN(bool bias, ConfigBool(c, "use_bias", true));
  s.qkv_bias = s.o_bias = s.mlp_bias = bias;  // the LayerNorms always have a bias
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "hidden_act", "gelu_pytorch_tanh"));
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"c_fc", "c_proj"};
  return s;
}

}  // namespace

void RegisterStarcoder2(ModelRegistry& registry) { RegisterDecoder(registry, "Starcoder2ForCausalLM", Starcoder2); }

}  // namespace qeff::exporter
