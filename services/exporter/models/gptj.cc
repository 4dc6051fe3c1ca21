// GPTJForCausalLM and CodeGenForCausalLM (HF transformers 4.44): GPT-J's config keys, one ln_1
// feeding attention and the MLP in parallel (h + attn + mlp), q/k/v/out without bias, partial
// interleaved rotary (rotate_every_two over the first rotary_dim dims, base 10000), fc_in ->
// gelu_new -> fc_out with biases, ln_f, untied lm_head with bias.
//   CodeGen: one qkv_proj in 4 blocks, each [q, v, k] rows for heads / 4 heads.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::StatusOr<DecoderSpec> Gptj(const hf::ModelFolder& f) {
  const json& c = f.config();
  DecoderSpec s;
  DecoderDims& d = s.dims;
  QEFF_RETURN_IF_ERROR(ReadGpt2Dims(c, &d));
  auto rd = c.find("rotary_dim");
  if (rd == c.end() || rd->is_null()) {
    // HF then builds tables of n_embd dims against head_dim-wide heads, which only works for
    // one head; not supported.
    return absl::UnimplementedError("rotary_dim = null (rotary over the whole embedding) is not supported");
  }
  QEFF_ASSIGN_OR_RETURN(int64_t rotary_dim, ConfigInt(c, "rotary_dim", 2, d.head_dim));
  QEFF_ASSIGN_OR_RETURN(s.rotary, ReadRotary(c, RotarySpec::Style::kInterleaved, rotary_dim, d.positions, 10000.0));
  if (s.rotary.scaling != "default") return absl::UnimplementedError("rope_scaling is not supported for GPT-J");
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "activation_function", "gelu_new"));
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", false));
  if (s.tied) return absl::UnimplementedError("tie_word_embeddings = true is not supported (lm_head has a bias)");
  s.names = {"transformer.", "wte.weight", "h.", "attn.", "mlp.", "ln_f"};
  s.norm = NormKind::kLayerNorm;
  s.attn_norm = "ln_1";
  s.mlp_norm = "";
  s.parallel = true;
  s.o_name = "out_proj";
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"fc_in", "fc_out"};
  s.mlp_bias = true;
  s.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(d.head_dim)))};
  s.lm_head_bias = true;
  return s;
}

absl::StatusOr<DecoderSpec> CodeGen(const hf::ModelFolder& f) {
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, Gptj(f));
  s.qkv = QkvLayout::kCodegen;
  s.qkv_names = {"qkv_proj"};
  return s;
}

}  // namespace

void RegisterGptj(ModelRegistry& registry) {
  RegisterDecoder(registry, "GPTJForCausalLM", Gptj);
  RegisterDecoder(registry, "CodeGenForCausalLM", CodeGen);
}

}  // namespace qeff::exporter
