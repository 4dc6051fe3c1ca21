#include "services/exporter/decoder_builder.h"

#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/custom_ops.h"

namespace qeff::exporter {
namespace {

struct Norm {
  std::string weight, bias;  // bias: LayerNorm only
};

// Loads and applies the spec's norms and linear layers, checking every shape.
class LayerBuilder {
 public:
  LayerBuilder(BuildContext& ctx, const DecoderSpec& s)
      : ctx_(ctx), s_(s), g_(ctx.graph), w_{ctx.graph, ctx.folder, s.names.prefix} {}

  GraphBuilder& g() { return g_; }
  const WeightLoader& w() const { return w_; }

  absl::StatusOr<Norm> LoadNorm(const std::string& name) {
    const int64_t n = s_.dims.hidden;
    Norm norm;
    switch (s_.norm) {
      case NormKind::kRms: {
        QEFF_ASSIGN_OR_RETURN(norm.weight, w_.Vec(name + ".weight", n));
        break;
      }
      case NormKind::kRmsPlusOne: {
        QEFF_ASSIGN_OR_RETURN(norm.weight, PlusOneWeight(s_.names.prefix + name + ".weight", n));
        break;
      }
      case NormKind::kLayerNorm: {
        QEFF_ASSIGN_OR_RETURN(norm.weight, w_.Vec(name + ".weight", n));
        if (s_.norm_bias) {
          QEFF_ASSIGN_OR_RETURN(norm.bias, w_.Vec(name + ".bias", n));
        } else {
          if (zero_bias_.empty()) zero_bias_ = ConstF32(g_, "layer_norm_zero_bias", std::vector<float>(n, 0.0f), {n});
          norm.bias = zero_bias_;
        }
        break;
      }
    }
    return norm;
  }

  std::string ApplyNorm(const std::string& x, const Norm& n) {
    if (s_.norm == NormKind::kLayerNorm) return LayerNorm(g_, x, n.weight, n.bias, s_.epsilon);
    return RMSNorm(g_, x, n.weight, s_.epsilon);
  }

  // A linear layer `name` (+ .weight, optional .bias) mapping in -> out features.
  absl::StatusOr<std::string> Linear(const std::string& x, const std::string& name, int64_t out, int64_t in,
                                     bool bias) {
    std::string wt;
    if (s_.conv1d_weights) {
      QEFF_ASSIGN_OR_RETURN(wt, w_.Tensor(name + ".weight", {in, out}));
    } else {
      QEFF_ASSIGN_OR_RETURN(wt, w_.Lin(name + ".weight", out, in));
    }
    QEFF_ASSIGN_OR_RETURN(std::string b, w_.OptionalVec(bias, name + ".bias", out));
    return exporter::Linear(g_, x, wt, b);
  }

  std::string Act(const std::string& x) {
    switch (s_.act) {
      case Activation::kSilu: return Silu(g_, x);
      case Activation::kGeluTanh: return GeluTanh(g_, x);
      case Activation::kGeluErf: return GeluErf(g_, x);
    }
    return x;
  }

 private:
  // A Gemma RMSNorm weight w stored as 1 + w (float32, as HF computes 1.0 + weight.float()).
  absl::StatusOr<std::string> PlusOneWeight(const std::string& name, int64_t n) {
    QEFF_ASSIGN_OR_RETURN(hf::TensorView view, ctx_.folder.Tensor(name));
    if (!hf::IsFloatingWeight(view.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has dtype ",
                                                     hf::DTypeName(view.dtype), "; expected F32, F16 or BF16"));
    }
    if (view.shape != std::vector<int64_t>{n}) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight tensor \"", name, "\" has ", view.shape.size(), " dims; config.json implies [", n, "]"));
    }
    QEFF_ASSIGN_OR_RETURN(std::vector<float> v, hf::ToFloatVector(view));
    for (float& x : v) x = 1.0f + x;
    hf::TensorView plus_one;
    plus_one.dtype = hf::DType::kF32;
    plus_one.shape = {n};
    plus_one.data = reinterpret_cast<const uint8_t*>(v.data());
    plus_one.bytes = v.size() * sizeof(float);
    return g_.Weight(name, plus_one);
  }

  BuildContext& ctx_;
  const DecoderSpec& s_;
  GraphBuilder& g_;
  WeightLoader w_;
  std::string zero_bias_;
};

struct Qkv {
  std::string q, k, v;  // [B,S,heads·hd], [B,S,kv·hd] x2
};

absl::StatusOr<Qkv> Project(LayerBuilder& b, const DecoderSpec& s, const std::string& x, const std::string& a) {
  GraphBuilder& g = b.g();
  const int64_t H = s.dims.hidden, hd = s.dims.head_dim, heads = s.dims.heads, kv = s.dims.kv_heads;
  const int64_t qdim = heads * hd, kvdim = kv * hd;
  Qkv r;
  if (s.qkv == QkvLayout::kSeparate) {
    QEFF_ASSIGN_OR_RETURN(r.q, b.Linear(x, a + s.qkv_names.at(0), qdim, H, s.qkv_bias));
    QEFF_ASSIGN_OR_RETURN(r.k, b.Linear(x, a + s.qkv_names.at(1), kvdim, H, s.qkv_bias));
    QEFF_ASSIGN_OR_RETURN(r.v, b.Linear(x, a + s.qkv_names.at(2), kvdim, H, s.qkv_bias));
    return r;
  }
  QEFF_ASSIGN_OR_RETURN(std::string fused, b.Linear(x, a + s.qkv_names.at(0), qdim + 2 * kvdim, H, s.qkv_bias));
  auto flat = [&](const std::string& t, int64_t n, const std::string& hint) {
    return g.Node("Reshape", {t, g.VectorI64({0, 0, n})}, {}, hint);
  };
  switch (s.qkv) {
    case QkvLayout::kFused: {
      auto p = g.NodeN("Split", {fused, g.VectorI64({qdim, kvdim, kvdim})}, 3, {AttrInt("axis", -1)}, "qkv");
      return Qkv{p[0], p[1], p[2]};
    }
    case QkvLayout::kFusedPerHead: {
      std::string t = g.Node("Reshape", {fused, g.VectorI64({0, 0, heads, 3, hd})}, {}, "qkv_heads");
      auto p = g.NodeN("Split", {t, g.VectorI64({1, 1, 1})}, 3, {AttrInt("axis", 3)}, "qkv");
      return Qkv{flat(p[0], qdim, "q_flat"), flat(p[1], kvdim, "k_flat"), flat(p[2], kvdim, "v_flat")};
    }
    case QkvLayout::kFusedPerKvHead: {
      const int64_t groups = heads / kv;
      std::string t = g.Node("Reshape", {fused, g.VectorI64({0, 0, kv, groups + 2, hd})}, {}, "qkv_groups");
      auto p = g.NodeN("Split", {t, g.VectorI64({groups, 1, 1})}, 3, {AttrInt("axis", 3)}, "qkv");
      return Qkv{flat(p[0], qdim, "q_flat"), flat(p[1], kvdim, "k_flat"), flat(p[2], kvdim, "v_flat")};
    }
    case QkvLayout::kCodegen: {
      constexpr int64_t kBlocks = 4;  // HF CodeGen's mp_num
      const int64_t local = qdim / kBlocks;
      std::string t = g.Node("Reshape", {fused, g.VectorI64({0, 0, kBlocks, 3 * local})}, {}, "qkv_blocks");
      auto p = g.NodeN("Split", {t, g.VectorI64({local, local, local})}, 3, {AttrInt("axis", 3)}, "qvk");
      return Qkv{flat(p[0], qdim, "q_flat"), flat(p[2], kvdim, "k_flat"), flat(p[1], kvdim, "v_flat")};
    }
    case QkvLayout::kSeparate: break;
  }
  return absl::InternalError("unhandled qkv layout");
}

// slope_h · (key position - query position), [B,heads,S,C], with MPT's slopes (HF 4.44
// build_mpt_alibi_tensor): 1 / 2^(i·max/n2) for the next power of two n2 >= heads, odd entries
// first when heads is not a power of two.
std::string AlibiBias(GraphBuilder& g, const CausalLMIO& io, int64_t heads, float bias_max) {
  int64_t n2 = 1;
  while (n2 < heads) n2 *= 2;
  std::vector<float> all(static_cast<size_t>(n2));
  for (int64_t i = 0; i < n2; ++i) {
    const float base = static_cast<float>(i + 1) * (bias_max / static_cast<float>(n2));
    all[i] = 1.0f / std::pow(2.0f, base);
  }
  std::vector<float> slopes;
  if (n2 != heads) {
    for (int64_t i = 1; i < n2; i += 2) slopes.push_back(all[i]);
    for (int64_t i = 0; i < n2; i += 2) slopes.push_back(all[i]);
    slopes.resize(static_cast<size_t>(heads));
  } else {
    slopes = all;
  }
  std::string slope = ConstF32(g, "alibi_slopes", slopes, {1, heads, 1, 1});
  std::string keys = g.Node("Cast", {io.ctx_indices}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "alibi_keys");
  keys = g.Node("Unsqueeze", {keys, g.VectorI64({0})}, {}, "alibi_keys4");  // [1,1,1,C]
  std::string q = g.Node("Cast", {io.position_ids}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "alibi_queries");
  q = g.Node("Unsqueeze", {q, g.VectorI64({1, 3})}, {}, "alibi_queries4");  // [B,1,S,1]
  std::string rel = g.Node("Sub", {keys, q}, {}, "alibi_rel");
  return g.Node("Mul", {rel, slope}, {}, "alibi_bias");
}

// The dense MLP of the spec's kind on x.
absl::StatusOr<std::string> DenseMlp(LayerBuilder& b, const DecoderSpec& s, const std::string& x,
                                     const std::string& m, int64_t inner) {
  GraphBuilder& g = b.g();
  const int64_t H = s.dims.hidden;
  const auto& n = s.mlp_names;
  switch (s.mlp_kind) {
    case MlpKind::kGated: {
      QEFF_ASSIGN_OR_RETURN(std::string gate, b.Linear(x, m + n.at(0), inner, H, s.mlp_bias));
      QEFF_ASSIGN_OR_RETURN(std::string up, b.Linear(x, m + n.at(1), inner, H, s.mlp_bias));
      std::string h = g.Node("Mul", {b.Act(gate), up}, {}, "glu");
      return b.Linear(h, m + n.at(2), H, inner, s.mlp_bias);
    }
    case MlpKind::kFusedGated: {
      QEFF_ASSIGN_OR_RETURN(std::string gu, b.Linear(x, m + n.at(0), 2 * inner, H, s.mlp_bias));
      auto p = g.NodeN("Split", {gu, g.VectorI64({inner, inner})}, 2, {AttrInt("axis", -1)}, "gate_up");
      std::string h = g.Node("Mul", {p[1], b.Act(p[0])}, {}, "glu");
      return b.Linear(h, m + n.at(1), H, inner, s.mlp_bias);
    }
    case MlpKind::kPlain: {
      QEFF_ASSIGN_OR_RETURN(std::string up, b.Linear(x, m + n.at(0), inner, H, s.mlp_bias));
      return b.Linear(b.Act(up), m + n.at(1), H, inner, s.mlp_bias);
    }
  }
  return absl::InternalError("unhandled MLP kind");
}

// A sparse mixture of experts (+ Qwen2-MoE's gated shared expert) on x.
absl::StatusOr<std::string> MoeMlp(LayerBuilder& b, const DecoderSpec& s, const std::string& x,
                                   const std::string& layer) {
  GraphBuilder& g = b.g();
  const WeightLoader& w = b.w();
  const MoeSpec& moe = s.moe;
  const int64_t H = s.dims.hidden, I = moe.expert_inner;
  const std::string blk = layer + moe.block;
  QEFF_ASSIGN_OR_RETURN(std::string router, w.Lin(blk + moe.router + ".weight", moe.num_experts, H));
  std::vector<std::array<std::string, 3>> experts;
  for (int64_t e = 0; e < moe.num_experts; ++e) {
    const std::string p = absl::StrCat(blk, "experts.", e, ".");
    std::array<std::string, 3> ew;
    QEFF_ASSIGN_OR_RETURN(ew[0], w.Lin(p + moe.gate + ".weight", I, H));
    QEFF_ASSIGN_OR_RETURN(ew[1], w.Lin(p + moe.up + ".weight", I, H));
    QEFF_ASSIGN_OR_RETURN(ew[2], w.Lin(p + moe.down + ".weight", H, I));
    experts.push_back(ew);
  }
  std::string out = SparseMoE(g, x, router, experts, moe.top_k, moe.normalize_top_k);
  if (moe.shared.empty()) return out;
  const std::string sh = blk + moe.shared;
  QEFF_ASSIGN_OR_RETURN(std::string sg, b.Linear(x, sh + moe.gate, moe.shared_inner, H, false));
  QEFF_ASSIGN_OR_RETURN(std::string su, b.Linear(x, sh + moe.up, moe.shared_inner, H, false));
  std::string h = g.Node("Mul", {b.Act(sg), su}, {}, "shared_glu");
  QEFF_ASSIGN_OR_RETURN(std::string shared, b.Linear(h, sh + moe.down, H, moe.shared_inner, false));
  QEFF_ASSIGN_OR_RETURN(std::string gate_logit, b.Linear(x, blk + moe.shared_gate, 1, H, false));
  std::string gated = g.Node("Mul", {g.Node("Sigmoid", {gate_logit}, {}, "shared_gate"), shared}, {}, "shared_out");
  return g.Node("Add", {out, gated}, {}, "moe_out");
}

}  // namespace

absl::Status BuildDecoder(BuildContext& ctx, const DecoderSpec& s, ExportSummary* summary) {
  const DecoderDims& d = s.dims;
  if (d.heads % d.kv_heads != 0) return CheckKvGroups(d.heads, d.kv_heads);
  if (s.qkv == QkvLayout::kCodegen && d.heads % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: n_head = ", d.heads, " must be a multiple of 4 (CodeGen's 4 qkv blocks)"));
  }
  LayerBuilder b(ctx, s);
  GraphBuilder& g = ctx.graph;
  const int64_t H = d.hidden, hd = d.head_dim, qdim = d.heads * hd;

  QEFF_ASSIGN_OR_RETURN(DecoderStart start, BeginDecoder(ctx, b.w(), d, s.names.embed));
  const CausalLMIO& io = start.io;
  std::string h = start.hidden;
  if (s.scale_embeddings) {
    // HF: hidden * torch.tensor(hidden_size ** 0.5, dtype=float32).
    h = g.Node("Mul", {h, g.ScalarF32(static_cast<float>(std::sqrt(static_cast<double>(H))))}, {}, "emb_scaled");
  }
  if (!s.learned_positions.empty()) {
    QEFF_ASSIGN_OR_RETURN(std::string wpe, b.w().Tensor(s.learned_positions, {d.positions, H}));
    // Padding positions (-1) read row 0; their results are never used.
    std::string pos = g.Node("Max", {io.position_ids, g.ScalarI64(0)}, {}, "pos_clamped");
    h = g.Node("Add", {h, g.Node("Gather", {wpe, pos}, {AttrInt("axis", 0)}, "pos_emb")}, {}, "embed");
  }
  const bool rotary = s.rotary.style != RotarySpec::Style::kNone;
  RopeTables rope;
  if (rotary) rope = BuildRotary(g, io, s.rotary);
  AttentionOptions base;
  base.kv_groups = d.heads / d.kv_heads;
  base.score_divisors = s.score_divisors;
  base.score_multiplier = s.score_multiplier;
  base.softcap = s.attn_softcap;
  if (s.alibi) base.score_bias = AlibiBias(g, io, d.heads, s.alibi_bias_max);
  const std::string window_mask = s.sliding_window > 0 ? SlidingWindowMask(g, io, s.sliding_window) : "";

  for (int i = 0; i < d.layers; ++i) {
    const std::string l = absl::StrCat(s.names.layers, i, ".");
    const std::string a = l + s.names.attn;
    QEFF_ASSIGN_OR_RETURN(Norm n1, b.LoadNorm(l + s.attn_norm));
    std::string x = b.ApplyNorm(h, n1);

    // Attention.
    QEFF_ASSIGN_OR_RETURN(Qkv p, Project(b, s, x, a));
    std::string q = SplitHeads(g, p.q, d.heads, hd);
    std::string k = SplitHeads(g, p.k, d.kv_heads, hd);
    std::string v = SplitHeads(g, p.v, d.kv_heads, hd);
    if (rotary) {
      q = ApplyRotary(g, q, rope, s.rotary, hd);
      k = ApplyRotary(g, k, rope, s.rotary, hd);
    }
    AttentionOptions attn = base;
    if (s.divide_scores_by_layer) attn.score_divisors.push_back(static_cast<float>(i + 1));
    if (!s.sliding_window_even_only || i % 2 == 0) attn.mask = window_mask;
    std::string o = CachedAttention(g, io, i, q, k, v, attn);
    QEFF_ASSIGN_OR_RETURN(o, b.Linear(MergeHeads(g, o, qdim), a + s.o_name, H, qdim, s.o_bias));
    if (!s.post_attn_norm.empty()) {
      QEFF_ASSIGN_OR_RETURN(Norm pn, b.LoadNorm(l + s.post_attn_norm));
      o = b.ApplyNorm(o, pn);
    }

    // MLP: on the attention's normed input (parallel) or on the updated residual.
    std::string mlp_in = x;
    if (!s.parallel) h = g.Node("Add", {h, o}, {}, "residual");
    if (!s.parallel || !s.mlp_norm.empty()) {
      QEFF_ASSIGN_OR_RETURN(Norm n2, b.LoadNorm(l + s.mlp_norm));
      mlp_in = b.ApplyNorm(h, n2);
    }
    const bool sparse = s.moe.num_experts > 0 && (s.moe.sparse_layers.empty() || s.moe.sparse_layers[i]);
    std::string f;
    if (sparse) {
      QEFF_ASSIGN_OR_RETURN(f, MoeMlp(b, s, mlp_in, l));
    } else {
      QEFF_ASSIGN_OR_RETURN(f, DenseMlp(b, s, mlp_in, l + s.names.mlp, d.inner));
    }
    if (!s.post_mlp_norm.empty()) {
      QEFF_ASSIGN_OR_RETURN(Norm pn, b.LoadNorm(l + s.post_mlp_norm));
      f = b.ApplyNorm(f, pn);
    }
    if (s.parallel) {
      // HF: attention + MLP, then the residual.
      h = g.Node("Add", {h, g.Node("Add", {o, f}, {}, "parallel_sum")}, {}, "residual");
    } else {
      h = g.Node("Add", {h, f}, {}, "residual");
    }
    ReportLayer(ctx, i, d.layers);
  }

  QEFF_ASSIGN_OR_RETURN(Norm nf, b.LoadNorm(s.names.final_norm));
  h = b.ApplyNorm(h, nf);
  if (s.lm_head_bias) {
    QEFF_ASSIGN_OR_RETURN(std::string head, LmHeadWeight(b.w(), start.embed, s.tied, d));
    QEFF_ASSIGN_OR_RETURN(std::string head_b, LoadWeight(g, ctx.folder, "lm_head.bias", {d.vocab}));
    std::string last = LastPositionHidden(g, io, h, H);
    std::string w_t = g.Node("Transpose", {head}, {AttrInts("perm", {1, 0})}, "lm_head_t");
    g.NodeNamed("Add", {g.Node("MatMul", {last, w_t}, {}, "lm_head"), head_b}, {"logits"});
  } else {
    QEFF_RETURN_IF_ERROR(TiedOrUntiedLogits(b.w(), io, h, start.embed, s.tied, d, s.final_softcap));
  }

  nlohmann::json extra = s.summary;
  extra["tied_lm_head"] = s.tied;
  extra["linear_weight_layout"] = "in_out";
  extra["activation"] = ActivationName(s.act);
  if (rotary) {
    extra["rotary_dim"] = s.rotary.rotary_dim;
    extra["rotary_style"] = s.rotary.style == RotarySpec::Style::kInterleaved ? "interleaved" : "rotate_half";
    extra["rope_theta"] = s.rotary.theta;
    extra["rope_scaling"] = s.rotary.scaling;
  }
  if (s.alibi) extra["position_bias"] = "alibi";
  extra["sliding_window"] = s.sliding_window;
  if (s.moe.num_experts > 0) {
    extra["num_experts"] = s.moe.num_experts;
    extra["num_experts_per_tok"] = s.moe.top_k;
  }
  SetDecoderSummary(summary, d, extra);
  return absl::OkStatus();
}

void RegisterDecoder(ModelRegistry& registry, const std::string& architecture,
                     std::function<absl::StatusOr<DecoderSpec>(const hf::ModelFolder&)> read) {
  registry.Register(architecture, [read](BuildContext& ctx, ExportSummary* summary) -> absl::Status {
    QEFF_ASSIGN_OR_RETURN(DecoderSpec spec, read(ctx.folder));
    return BuildDecoder(ctx, spec, summary);
  });
}

absl::StatusOr<DecoderSpec> LlamaLayout(const nlohmann::json& c, double epsilon, bool tied,
                                        const DecoderDims* defaults) {
  DecoderSpec s;
  DecoderDims& d = s.dims;
  QEFF_RETURN_IF_ERROR(ReadDecoderDims(c, &d, defaults));
  const bool has_head_dim = c.contains("head_dim") && !c["head_dim"].is_null();
  if (!has_head_dim && defaults == nullptr) QEFF_RETURN_IF_ERROR(CheckHeadsDivide(d.hidden, d.heads));
  const int64_t default_head_dim = defaults != nullptr && defaults->head_dim > 0 ? defaults->head_dim : d.hidden / d.heads;
  QEFF_ASSIGN_OR_RETURN(d.head_dim, ConfigInt(c, "head_dim", 2, 1 << 12, &default_head_dim));
  QEFF_RETURN_IF_ERROR(CheckKvGroups(d.heads, d.kv_heads));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "rms_norm_eps", 0.0, 1.0, epsilon));
  s.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(double theta, ConfigFloat(c, "rope_theta", 1.0, 1e12, 10000.0));
  QEFF_ASSIGN_OR_RETURN(s.rotary, ReadRotary(c, RotarySpec::Style::kHalf, d.head_dim, d.positions, theta));
  s.score_divisors = {static_cast<float>(std::sqrt(static_cast<double>(d.head_dim)))};
  QEFF_ASSIGN_OR_RETURN(s.act, ReadActivation(c, "hidden_act", "silu"));
  QEFF_ASSIGN_OR_RETURN(s.tied, ConfigBool(c, "tie_word_embeddings", tied));
  return s;
}

absl::Status ReadGpt2Dims(const nlohmann::json& c, DecoderDims* d) {
  QEFF_ASSIGN_OR_RETURN(d->hidden, ConfigInt(c, "n_embd", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(d->heads, ConfigInt(c, "n_head", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d->layers, ConfigInt(c, "n_layer", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(d->vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(d->positions, ConfigInt(c, "n_positions", 1, 1 << 22));
  const int64_t default_inner = 4 * d->hidden;
  QEFF_ASSIGN_OR_RETURN(d->inner, ConfigInt(c, "n_inner", 1, 1 << 20, &default_inner));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(d->hidden, d->heads, "n_embd", "n_head"));
  d->head_dim = d->hidden / d->heads;
  d->kv_heads = d->heads;
  return absl::OkStatus();
}

absl::StatusOr<Activation> ReadActivation(const nlohmann::json& c, const std::string& key,
                                          const std::string& fallback) {
  QEFF_ASSIGN_OR_RETURN(std::string name,
                        ConfigChoice(c, key, fallback, {"silu", "swish", "gelu_new", "gelu_pytorch_tanh", "gelu"}));
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu") return Activation::kGeluErf;
  return Activation::kGeluTanh;
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kSilu: return "silu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kGeluErf: return "gelu";
  }
  return "?";
}

}  // namespace qeff::exporter
