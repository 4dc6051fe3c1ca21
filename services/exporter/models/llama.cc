// Llama-layout families (HF transformers 4.44): RMSNorm, rotate_half RoPE with rope_scaling,
// grouped-query attention, SwiGLU, final norm, lm_head tied or not.
//   LlamaForCausalLM     attention_bias (q/k/v/o), mlp_bias
//   MistralForCausalLM   sliding_window
//   Qwen2ForCausalLM     q/k/v bias (use_sliding_window is refused)
//   MixtralForCausalLM   sparse MoE block_sparse_moe: softmax over all experts, top k renormalized
//   Qwen2MoeForCausalLM  q/k/v bias; MoE without renormalization plus a sigmoid-gated shared
//                        expert; dense MLP on mlp_only_layers and off decoder_sparse_step
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::StatusOr<DecoderSpec> Llama(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-6, false));
  QEFF_ASSIGN_OR_RETURN(s.qkv_bias, ConfigBool(c, "attention_bias", false));
  s.o_bias = s.qkv_bias;
  QEFF_ASSIGN_OR_RETURN(s.mlp_bias, ConfigBool(c, "mlp_bias", false));
  return s;
}

absl::StatusOr<DecoderSpec> Mistral(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-6, false));
  const int64_t none = 0;
  QEFF_ASSIGN_OR_RETURN(s.sliding_window, ConfigInt(c, "sliding_window", 1, int64_t{1} << 40, &none));
  return s;
}

absl::Status RefuseQwenWindow(const json& c) {
  QEFF_ASSIGN_OR_RETURN(bool use_window, ConfigBool(c, "use_sliding_window", false));
  if (use_window) return absl::UnimplementedError("use_sliding_window = true is not supported yet");
  return absl::OkStatus();
}

absl::StatusOr<DecoderSpec> Qwen2(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_RETURN_IF_ERROR(RefuseQwenWindow(c));
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-6, false));
  s.qkv_bias = true;
  return s;
}

absl::Status ReadExperts(const json& c, const char* experts_key, MoeSpec* moe, int64_t inner) {
  QEFF_ASSIGN_OR_RETURN(moe->num_experts, ConfigInt(c, experts_key, 1, 1024));
  QEFF_ASSIGN_OR_RETURN(moe->top_k, ConfigInt(c, "num_experts_per_tok", 1, moe->num_experts));
  moe->expert_inner = inner;
  return absl::OkStatus();
}

absl::StatusOr<DecoderSpec> Mixtral(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-5, false));
  if (s.act != Activation::kSilu) return absl::UnimplementedError("Mixtral experts support hidden_act silu only");
  QEFF_RETURN_IF_ERROR(ReadExperts(c, "num_local_experts", &s.moe, s.dims.inner));
  return s;  // sliding_window only acts with FlashAttention-2 in 4.44's eager path
}

absl::StatusOr<DecoderSpec> Qwen2Moe(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_RETURN_IF_ERROR(RefuseQwenWindow(c));
  QEFF_ASSIGN_OR_RETURN(DecoderSpec s, LlamaLayout(c, 1e-6, false));
  if (s.act != Activation::kSilu) return absl::UnimplementedError("Qwen2-MoE experts support hidden_act silu only");
  s.qkv_bias = true;
  MoeSpec& m = s.moe;
  QEFF_ASSIGN_OR_RETURN(int64_t inner, ConfigInt(c, "moe_intermediate_size", 1, 1 << 20));
  QEFF_RETURN_IF_ERROR(ReadExperts(c, "num_experts", &m, inner));
  QEFF_ASSIGN_OR_RETURN(m.normalize_top_k, ConfigBool(c, "norm_topk_prob", false));
  m.block = "mlp.";
  m.gate = "gate_proj";
  m.up = "up_proj";
  m.down = "down_proj";
  QEFF_ASSIGN_OR_RETURN(m.shared_inner, ConfigInt(c, "shared_expert_intermediate_size", 1, 1 << 20));
  m.shared = "shared_expert.";
  m.shared_gate = "shared_expert_gate";
  const int64_t one = 1;
  QEFF_ASSIGN_OR_RETURN(int64_t step, ConfigInt(c, "decoder_sparse_step", 1, 1024, &one));
  m.sparse_layers.assign(static_cast<size_t>(s.dims.layers), false);
  for (int64_t i = 0; i < s.dims.layers; ++i) m.sparse_layers[i] = (i + 1) % step == 0;
  if (auto it = c.find("mlp_only_layers"); it != c.end() && !it->is_null()) {
    if (!it->is_array()) return absl::InvalidArgumentError("config.json: mlp_only_layers must be a list");
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= s.dims.layers) {
        return absl::InvalidArgumentError("config.json: mlp_only_layers holds a value that is not a layer index");
      }
      m.sparse_layers[v.get<int64_t>()] = false;
    }
  }
  return s;
}

}  // namespace

void RegisterLlama(ModelRegistry& registry) {
  RegisterDecoder(registry, "LlamaForCausalLM", Llama);
  RegisterDecoder(registry, "MistralForCausalLM", Mistral);
  RegisterDecoder(registry, "Qwen2ForCausalLM", Qwen2);
  RegisterDecoder(registry, "MixtralForCausalLM", Mixtral);
  RegisterDecoder(registry, "Qwen2MoeForCausalLM", Qwen2Moe);
}

}  // namespace qeff::exporter
