// GemmaForCausalLM and Gemma2ForCausalLM (HF transformers 4.44): embeddings · sqrt(hidden),
// (1 + w) RMSNorm (the +1 folded into the stored weight, as QEff's GemmaCustomRMSNormAIC does),
// GeGLU, tied lm_head; config.json leaves out values equal to the class defaults, which are
// the fallbacks here.
//   Gemma:  MLP activation is hidden_activation, or gelu_pytorch_tanh when that is null (HF
//           ignores hidden_act), scores / sqrt(head_dim).
//   Gemma2: pre and post norms around attention and MLP, scores · query_pre_attn_scalar^-0.5,
//           attention and final logit soft-caps, sliding window on even layers. The full-length
//           QEff cache with a sliding-window mask attends to what HF's HybridCache keeps.
#include <cmath>

#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

DecoderDims GemmaDefaults() {
  DecoderDims d;
  d.hidden = 3072;
  d.heads = d.kv_heads = 16;
  d.head_dim = 256;
  d.layers = 28;
  d.vocab = 256000;
  d.inner = 24576;
  d.positions = 8192;
  return d;
}

absl::StatusOr<DecoderSpec> GemmaCommon(const json& c) {
  const DecoderDims defaults = GemmaDefaults();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-6, true, &defaults));
  s.norm = NormKind::kRmsPlusOne;
  s.scale_embeddings = true;
  QEFF_ASSIGN_OR_RETURN(s.qkv_bias, ConfigBool(c, "attention_bias", false));
  s.o_bias = s.qkv_bias;
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "hidden_activation", "gelu_pytorch_tanh"));
  return s;
}

absl::StatusOr<DecoderSpec> Gemma(const hf::ModelFolder& f) { return GemmaCommon(f.config()); }

// A soft-cap value: the class default when absent, none (0) when explicitly null.
absl::StatusOr<float> SoftCapValue(const json& c, const std::string& key, double class_default) {
  auto it = c.find(key);
  if (it != c.end() && it->is_null()) return 0.0f;
  QEFF_ASSIGN_OR_RETURN(double v, ConfigFloat(c, key, 1e-6, 1e9, class_default));
  return static_cast<float>(v);
}

absl::StatusOr<DecoderSpec> Gemma2(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, GemmaCommon(c));
  s.post_attn_norm = "post_attention_layernorm";
  s.mlp_norm = "pre_feedforward_layernorm";
  s.post_mlp_norm = "post_feedforward_layernorm";
  QEFF_ASSIGN_OR_RETURN(double scalar, ConfigFloat(c, "query_pre_attn_scalar", 1e-12, 1e12, 224.0));
  s.score_divisors.clear();
  s.score_multiplier = static_cast<float>(std::pow(scalar, -0.5));
  QEFF_ASSIGN_OR_RETURN(s.attn_softcap, SoftCapValue(c, "attn_logit_softcapping", 50.0));
  QEFF_ASSIGN_OR_RETURN(s.final_softcap, SoftCapValue(c, "final_logit_softcapping", 30.0));
  const int64_t default_window = 4096;
  if (auto it = c.find("sliding_window"); it == c.end() || !it->is_null()) {
    QEFF_ASSIGN_OR_RETURN(s.sliding_window, ConfigInt(c, "sliding_window", 1, int64_t{1} << 40, &default_window));
  }
  s.sliding_window_even_only = true;
  s.summary = {{"query_pre_attn_scalar", scalar}, {"rms_norm_weight_plus_one_folded", true}};
  return s;
}

}  // namespace

void RegisterGemma(ModelRegistry& registry) {
  RegisterDecoder(registry, "GemmaForCausalLM", Gemma);
  RegisterDecoder(registry, "Gemma2ForCausalLM", Gemma2);
}

}  // namespace qeff::exporter
