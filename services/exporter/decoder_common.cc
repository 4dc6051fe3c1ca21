#include "services/exporter/decoder_common.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/status_macros.h"

namespace qeff::exporter {

using json = nlohmann::json;

absl::Status ReadDecoderDims(const json& c, DecoderDims* d, const DecoderDims* defaults) {
  auto fallback = [&](const int64_t DecoderDims::*field) -> const int64_t* {
    return defaults != nullptr ? &(defaults->*field) : nullptr;
  };
  QEFF_ASSIGN_OR_RETURN(d->hidden, ConfigInt(c, "hidden_size", 1, 1 << 16, fallback(&DecoderDims::hidden)));
  QEFF_ASSIGN_OR_RETURN(d->heads, ConfigInt(c, "num_attention_heads", 1, 1024, fallback(&DecoderDims::heads)));
  const int64_t* kv_fallback = defaults != nullptr ? &defaults->kv_heads : &d->heads;
  QEFF_ASSIGN_OR_RETURN(d->kv_heads, ConfigInt(c, "num_key_value_heads", 1, 1024, kv_fallback));
  QEFF_ASSIGN_OR_RETURN(d->layers, ConfigInt(c, "num_hidden_layers", 1, 1024, fallback(&DecoderDims::layers)));
  QEFF_ASSIGN_OR_RETURN(d->vocab, ConfigInt(c, "vocab_size", 1, 1 << 22, fallback(&DecoderDims::vocab)));
  QEFF_ASSIGN_OR_RETURN(d->inner, ConfigInt(c, "intermediate_size", 1, 1 << 20, fallback(&DecoderDims::inner)));
  QEFF_ASSIGN_OR_RETURN(d->positions,
                        ConfigInt(c, "max_position_embeddings", 1, 1 << 22, fallback(&DecoderDims::positions)));
  return absl::OkStatus();
}

absl::Status CheckHeadsDivide(int64_t hidden, int64_t heads, const std::string& hidden_key,
                              const std::string& heads_key) {
  if (hidden % heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", hidden_key, " = ", hidden,
                                                   " is not divisible by ", heads_key, " = ", heads));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RopeHeadDimFromHidden(int64_t hidden, int64_t heads) {
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(hidden, heads));
  const int64_t head_dim = hidden / heads;
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: head_dim = hidden_size / num_attention_heads = ",
                                                   head_dim, " must be even for RoPE"));
  }
  return head_dim;
}

absl::Status CheckKvGroups(int64_t heads, int64_t kv_heads) {
  if (heads % kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_attention_heads = ", heads,
                                                   " is not divisible by num_key_value_heads = ", kv_heads));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ConfigChoice(const json& c, const std::string& key, const std::string& fallback,
                                         std::initializer_list<const char*> allowed) {
  QEFF_ASSIGN_OR_RETURN(std::string value, ConfigString(c, key, fallback));
  for (const char* a : allowed) {
    if (value == a) return value;
  }
  return absl::UnimplementedError(
      absl::StrCat(key, " \"", value, "\" is not supported (", absl::StrJoin(allowed, ", "), ")"));
}

absl::StatusOr<std::string> WeightLoader::Tensor(const std::string& name, const std::vector<int64_t>& shape) const {
  return LoadWeight(g, folder, prefix + name, shape);
}

absl::StatusOr<std::string> WeightLoader::Vec(const std::string& name, int64_t n) const { return Tensor(name, {n}); }

absl::StatusOr<std::string> WeightLoader::OptionalVec(bool present, const std::string& name, int64_t n) const {
  if (!present) return std::string();
  return Vec(name, n);
}

absl::StatusOr<std::string> WeightLoader::Lin(const std::string& name, int64_t out, int64_t in) const {
  return LoadLinearWeight(g, folder, prefix + name, out, in);
}

absl::StatusOr<std::string> DetectWeightPrefix(const hf::ModelFolder& folder, const std::string& prefix,
                                               const std::string& name, const std::string& missing_hint) {
  if (folder.HasTensor(prefix + name)) return prefix;
  if (!folder.HasTensor(name)) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor ",
                                                   missing_hint.empty() ? absl::StrCat("\"", name, "\"") : missing_hint,
                                                   " is missing from ", folder.dir().string()));
  }
  return std::string();
}

absl::StatusOr<LayerNormWeights> LoadLayerNorm(const WeightLoader& w, const std::string& name, int64_t n) {
  LayerNormWeights ln;
  QEFF_ASSIGN_OR_RETURN(ln.weight, w.Vec(name + ".weight", n));
  QEFF_ASSIGN_OR_RETURN(ln.bias, w.Vec(name + ".bias", n));
  return ln;
}

std::string LayerNorm(GraphBuilder& g, const std::string& x, const LayerNormWeights& ln, float epsilon) {
  return LayerNorm(g, x, ln.weight, ln.bias, epsilon);
}

absl::StatusOr<DecoderStart> BeginDecoder(BuildContext& ctx, const WeightLoader& w, const DecoderDims& d,
                                          const std::string& embed_name) {
  GraphBuilder& g = w.g;
  DecoderStart s;
  s.io = DeclareCausalLM(g, CausalLMShape{static_cast<int>(d.layers), d.kv_heads, d.head_dim, d.vocab,
                                          ctx.options.continuous_batching});
  ctx.progress("export", "embeddings", 0, d.layers);
  QEFF_ASSIGN_OR_RETURN(s.embed, w.Tensor(embed_name, {d.vocab, d.hidden}));
  s.hidden = g.Node("Gather", {s.embed, s.io.input_ids}, {AttrInt("axis", 0)}, "tok_emb");
  return s;
}

void ReportLayer(BuildContext& ctx, int layer, int64_t layers) {
  ctx.progress("export", absl::StrCat("layer ", layer + 1, " of ", layers), layer + 1, layers);
}

absl::StatusOr<std::string> LmHeadWeight(const WeightLoader& w, const std::string& embed, bool tied,
                                         const DecoderDims& d) {
  if (tied) return embed;
  return LoadWeight(w.g, w.folder, "lm_head.weight", {d.vocab, d.hidden});
}

absl::Status TiedOrUntiedLogits(const WeightLoader& w, const CausalLMIO& io, const std::string& hidden,
                                const std::string& embed, bool tied, const DecoderDims& d, float final_softcap) {
  QEFF_ASSIGN_OR_RETURN(std::string head, LmHeadWeight(w, embed, tied, d));
  LogitsAtLastPosition(w.g, io, hidden, d.hidden, head, final_softcap);
  return absl::OkStatus();
}

void SetDecoderSummary(ExportSummary* summary, const DecoderDims& d, const json& extra) {
  summary->num_layers = static_cast<int>(d.layers);
  json m = {{"hidden_size", d.hidden}, {"num_heads", d.heads},   {"num_kv_heads", d.kv_heads},
            {"head_dim", d.head_dim},  {"vocab_size", d.vocab}, {"max_positions", d.positions}};
  m.update(extra);
  summary->manifest_extra = std::move(m);
}

}  // namespace qeff::exporter
