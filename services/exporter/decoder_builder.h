// The one causal-LM builder every decoder family uses. A family reads its config.json into a
// DecoderSpec (a typed description: weight names, projection layout and biases, norms and their
// placement, rotary/ALiBi, attention scaling, MLP kind or mixture of experts, lm_head) and calls
// BuildDecoder, which emits QEfficient's causal-LM graph: token (+ learned position) embedding,
// the layers over the retained KV cache, the final norm and the logits at the last position.
// Adding a family is a declaration in models/<family>.cc; see docs/adding-a-model.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/exporter.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/rotary.h"

namespace qeff::exporter {

enum class NormKind {
  kRms,         // CustomRMSNorm(x, w)
  kRmsPlusOne,  // Gemma: x·(1 + w), the +1 folded into the stored weight
  kLayerNorm,   // LayerNormalization with <name>.weight and <name>.bias (zero bias when norm_bias is false)
};

enum class Activation { kSilu, kGeluTanh, kGeluErf };

// How q, k and v come out of the attention's input projections.
enum class QkvLayout {
  kSeparate,       // q_proj, k_proj, v_proj
  kFused,          // one projection, rows [q; k; v]
  kFusedPerHead,   // one projection, rows [heads, 3 (q,k,v), head_dim] (Falcon without multi_query)
  kFusedPerKvHead, // one projection, rows [kv_heads, groups + 2 (queries, k, v), head_dim] (Falcon new arch)
  kCodegen,        // one projection in 4 blocks, each rows [q, v, k] for heads / 4 heads (CodeGen)
};

enum class MlpKind {
  kGated,       // down(act(gate(x)) · up(x))
  kFusedGated,  // gate, up = chunk(gate_up(x), 2) (Phi-3)
  kPlain,       // down(act(up(x)))
};

struct MoeSpec {
  int64_t num_experts = 0;  // 0 = no mixture of experts
  int64_t top_k = 0;
  int64_t expert_inner = 0;
  bool normalize_top_k = true;  // renormalize the top-k probabilities to sum 1 (Mixtral)
  std::string block = "block_sparse_moe.";  // under the layer: <block>gate.weight, <block>experts.<e>.*
  std::string router = "gate";
  std::string gate = "w1", up = "w3", down = "w2";  // expert projections
  // Qwen2-MoE's shared expert: down(act(gate(x))·up(x)) · sigmoid(shared_gate(x)); empty = none.
  std::string shared = "";  // e.g. "shared_expert." under the block
  std::string shared_gate = "";  // e.g. "shared_expert_gate"
  int64_t shared_inner = 0;
  // Which layers are sparse (the others use the dense MLP); empty = all.
  std::vector<bool> sparse_layers;
};

struct DecoderSpec {
  DecoderDims dims;  // hidden, heads, kv_heads, head_dim, layers, vocab, inner, positions

  // ---- weight names: <prefix><layers><i>.<attn>/<mlp>..., final norm <prefix><final_norm> ----
  struct Names {
    std::string prefix = "model.", embed = "embed_tokens.weight", layers = "layers.", attn = "self_attn.",
                mlp = "mlp.", final_norm = "norm";
  } names;
  std::string learned_positions;  // e.g. "wpe.weight" [positions, hidden]; empty = none
  bool conv1d_weights = false;  // GPT-2's Conv1D: weights stored [in, out] instead of nn.Linear's [out, in]

  // ---- embeddings ----
  bool scale_embeddings = false;  // · sqrt(hidden) in float32 (Gemma)

  // ---- norms ----
  NormKind norm = NormKind::kRms;
  bool norm_bias = true;  // LayerNorm only
  float epsilon = 1e-6f;
  std::string attn_norm = "input_layernorm";
  std::string mlp_norm = "post_attention_layernorm";  // parallel blocks: empty = share attn_norm's output
  std::string post_attn_norm, post_mlp_norm;          // Gemma2's sandwich norms; empty = none
  bool parallel = false;  // h + attn(n1(h)) + mlp(n2(h)) instead of two residual steps

  // ---- attention ----
  QkvLayout qkv = QkvLayout::kSeparate;
  std::vector<std::string> qkv_names = {"q_proj", "k_proj", "v_proj"};  // kSeparate: three, fused: one
  std::string o_name = "o_proj";
  bool qkv_bias = false, o_bias = false;
  RotarySpec rotary;  // style kNone = no rotary
  bool alibi = false;  // MPT: slope_h · (key - query) added to the scores
  float alibi_bias_max = 8.0f;
  // Score scaling: divided by each divisor, then · multiplier when non-zero, then soft-capped.
  std::vector<float> score_divisors;
  bool divide_scores_by_layer = false;  // GPT-2's scale_attn_by_inverse_layer_idx: then / (layer + 1)
  float score_multiplier = 0.0f;
  float attn_softcap = 0.0f;
  int64_t sliding_window = 0;         // 0 = none
  bool sliding_window_even_only = false;  // Gemma2: layers 0, 2, 4, ...

  // ---- MLP ----
  MlpKind mlp_kind = MlpKind::kGated;
  std::vector<std::string> mlp_names = {"gate_proj", "up_proj", "down_proj"};  // kPlain: {up, down}; fused: {gate_up, down}
  bool mlp_bias = false;
  Activation act = Activation::kSilu;
  MoeSpec moe;

  // ---- head ----
  bool tied = false;
  bool lm_head_bias = false;
  float final_softcap = 0.0f;

  // Manifest fields beyond the dims (rotary, layout, ...): added to the export summary.
  nlohmann::json summary;
};

// Emits the whole causal-LM graph for `spec`, loading every weight with a shape check.
absl::Status BuildDecoder(BuildContext& ctx, const DecoderSpec& spec, ExportSummary* summary);

// Registers `read` (config.json -> DecoderSpec) under `architecture`.
void RegisterDecoder(ModelRegistry& registry, const std::string& architecture,
                     std::function<absl::StatusOr<DecoderSpec>(const hf::ModelFolder&)> read);

// The layout most HF decoders share (Llama's config keys and weight names): ReadDecoderDims,
// head_dim (default hidden / heads), kv groups, rms_norm_eps (default `epsilon`), rope_theta,
// full rotate_half rotary with rope_scaling, scores / sqrt(head_dim), hidden_act (default silu),
// tie_word_embeddings (default `tied`), SwiGLU gate/up/down. Families override what differs.
absl::StatusOr<DecoderSpec> LlamaLayout(const nlohmann::json& c, double epsilon, bool tied,
                                        const DecoderDims* defaults = nullptr);

// GPT-2's config keys (GPT-2, GPTBigCode, GPT-J, CodeGen): n_embd, n_head (kv heads = heads),
// n_layer, vocab_size, n_positions, n_inner (default 4 · n_embd); head_dim = n_embd / n_head.
absl::Status ReadGpt2Dims(const nlohmann::json& c, DecoderDims* d);

// Config helpers the family readers share.
absl::StatusOr<Activation> ReadActivation(const nlohmann::json& c, const std::string& key,
                                          const std::string& fallback);
const char* ActivationName(Activation a);

}  // namespace qeff::exporter
