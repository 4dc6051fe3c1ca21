// MptForCausalLM (HF transformers 4.44): ALiBi (no rotary, no learned positions), LayerNorm
// without bias and linears without bias (HF ignores no_bias), fused Wqkv rows [q; k; v], scores · softmax_scale (default
// 1/sqrt(head_dim)) + slope · (key - query), up_proj -> exact gelu -> down_proj with 4 · d_model
// (HF ignores expansion_ratio), norm_f, lm_head tied to wte. HF's ALiBi always uses
// alibi_bias_max 8; clip_qkv and qk_ln are refused by name.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/decoder_builder.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::StatusOr<DecoderSpec> Mpt(const hf::ModelFolder& f) {
  const json& c = f.config();
  DecoderSpec s;
  DecoderDims& d = s.dims;
  QEFF_ASSIGN_OR_RETURN(d.hidden, ConfigInt(c, "d_model", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(d.heads, ConfigInt(c, "n_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d.layers, ConfigInt(c, "n_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(d.positions, ConfigInt(c, "max_seq_len", 1, 1 << 22));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(d.hidden, d.heads, "d_model", "n_heads"));
  d.head_dim = d.hidden / d.heads;
  d.kv_heads = d.heads;
  d.inner = 4 * d.hidden;
  const json empty = json::object();
  const json& a = c.contains("attn_config") && c["attn_config"].is_object() ? c["attn_config"] : empty;
  if (a.contains("clip_qkv") && !a["clip_qkv"].is_null()) {
    return absl::UnimplementedError("attn_config.clip_qkv is not supported yet");
  }
  QEFF_ASSIGN_OR_RETURN(bool qk_ln, ConfigBool(a, "qk_ln", false));
  if (qk_ln) return absl::UnimplementedError("attn_config.qk_ln = true is not supported yet");
  const double default_scale = 1.0 / std::sqrt(static_cast<double>(d.hidden) / static_cast<double>(d.heads));
  QEFF_ASSIGN_OR_RETURN(double scale, ConfigFloat(a, "softmax_scale", 1e-12, 1e12, default_scale));
  s.score_multiplier = static_cast<float>(scale);
  s.alibi = true;
  // HF 4.44 builds every MPT linear without bias and drops the LayerNorm biases, whatever
  // no_bias says.
  QEFF_RETURN_IF_ERROR(ConfigBool(c, "no_bias", true).status());
  s.norm_bias = false;
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_epsilon", 0.0, 1.0, 1e-5));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", true));
  if (!s.tied) return absl::UnimplementedError("MPT with an untied lm_head is not supported");
  s.act = Activation::kGeluErf;
  s.names = {"transformer.", "wte.weight", "blocks.", "attn.", "ffn.", "norm_f"};
  s.norm = NormKind::kLayerNorm;
  s.attn_norm = "norm_1";
  s.mlp_norm = "norm_2";
  s.qkv = QkvLayout::kFused;
  s.qkv_names = {"Wqkv"};
  s.o_name = "out_proj";
  s.mlp_kind = MlpKind::kPlain;
  s.mlp_names = {"up_proj", "down_proj"};
  return s;
}

}  // namespace

void RegisterMpt(ModelRegistry& registry) { RegisterDecoder(registry, "MptForCausalLM", Mpt); }

}  // namespace qeff::exporter
