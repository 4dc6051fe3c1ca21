// FalconForCausalLM (HF transformers 4.44): one fused query_key_value projection, rotate_half
// RoPE, scores / sqrt(head_dim), dense_h_to_4h -> gelu -> dense_4h_to_h, biases on every linear
// when `bias`, ln_f, lm_head tied by default.
//   falcon-7b layout: multi_query (one kv head, rows [q; k; v]) or, without it, rows
//     [heads, 3, head_dim]; parallel_attn: attention and MLP from one input_layernorm.
//   new_decoder_architecture (Falcon-40B/180B, Falcon2): rows grouped per kv head as
//     [heads / kv_heads queries, key, value]; always parallel; ln_attn and ln_mlp when
//     num_ln_in_parallel_attn is 2 (the default), else one input_layernorm.
// ALiBi Falcon (alibi = true) is refused by name.
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::StatusOr<DecoderSpec> Falcon(const hf::ModelFolder& f) {
  const json& c = f.config();
  QEFF_ASSIGN_OR_RETURN(bool alibi, ConfigBool(c, "alibi", false));
  if (alibi) return absl::UnimplementedError("alibi = true (ALiBi Falcon) is not supported yet");
  DecoderSpec s;
  DecoderDims& d = s.dims;
  QEFF_ASSIGN_OR_RETURN(d.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(d.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  const int64_t default_positions = 2048;  // FalconConfig default
  QEFF_ASSIGN_OR_RETURN(d.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 22, &default_positions));
  const int64_t default_inner = 4 * d.hidden;
  QEFF_ASSIGN_OR_RETURN(d.inner, ConfigInt(c, "ffn_hidden_size", 1, 1 << 20, &default_inner));
  QEFF_ASSIGN_OR_RETURN(d.head_dim, RopeHeadDimFromHidden(d.hidden, d.heads));
  QEFF_ASSIGN_OR_RETURN(bool new_arch, ConfigBool(c, "new_decoder_architecture", false));
  QEFF_ASSIGN_OR_RETURN(bool multi_query, ConfigBool(c, "multi_query", true));
  QEFF_ASSIGN_OR_RETURN(s.parallel, ConfigBool(c, "parallel_attn", true));
  if (new_arch) {
    QEFF_ASSIGN_OR_RETURN(d.kv_heads, ConfigInt(c, "num_kv_heads", 1, 1024, &d.heads));
    QEFF_RETURN_IF_ERROR(CheckKvGroups(d.heads, d.kv_heads));
    s.qkv = QkvLayout::kFusedPerKvHead;
    s.parallel = true;
    const int64_t two = 2;
    QEFF_ASSIGN_OR_RETURN(int64_t norms, ConfigInt(c, "num_ln_in_parallel_attn", 1, 2, &two));
    if (norms == 2) {
      s.attn_norm = "ln_attn";
      s.mlp_norm = "ln_mlp";
    } else {
      s.mlp_norm = "";
    }
  } else if (multi_query) {
    d.kv_heads = 1;  // HF reads num_kv_heads only with new_decoder_architecture or without multi_query
    s.qkv = QkvLayout::kFused;
  } else {
    QEFF_ASSIGN_OR_RETURN(d.kv_heads, ConfigInt(c, "num_kv_heads", 1, 1024, &d.heads));
    if (d.kv_heads != d.heads) {
      return absl::UnimplementedError(absl::StrCat("num_kv_heads = ", d.kv_heads, " != num_attention_heads = ",
                                                   d.heads, " without multi_query or new_decoder_architecture"));
    }
    s.qkv = QkvLayout::kFusedPerHead;
  }
  if (!new_arch) s.mlp_norm = s.parallel ? "" : "post_attention_layernorm";
  QEFF_ASSIGN_OR_RETURN(bool bias, ConfigBool(c, "bias", false));
  s.qkv_bias = s.o_bias = s.mlp_bias = bias;
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", true));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(double theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(s.rotary, ReadRotary(c, RotarySpec::Style::kHalf, d.head_dim, d.positions, theta));
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "activation", "gelu"));
  s.names = {"transformer.", "word_embeddings.weight", "h.", "self_attention.", "mlp.", "ln_f"};
  s.norm = NormKind::kLayerNorm;
  s.qkv_names = {"query_key_value"};
  s.o_name = "dense";
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"dense_h_to_4h", "dense_4h_to_h"};
  s.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(d.head_dim)))};
  s.summary = {{"new_decoder_architecture", new_arch}, {"parallel_attn", s.parallel}};
  return s;
}

}  // namespace

void RegisterFalcon(ModelRegistry& registry) { RegisterDecoder(registry, "FalconForCausalLM", Falcon); }

}  // namespace qeff::exporter
