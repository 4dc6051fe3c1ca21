#include "services/exporter/rotary.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::exporter {
namespace {

using json = nlohmann::json;

absl::Status BadScaling(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: rope_scaling ", what));
}

absl::StatusOr<double> ScalingNumber(const json& s, const std::string& key, double min, double max,
                                     const double* fallback) {
  auto it = s.find(key);
  if (it == s.end() || it->is_null()) {
    if (fallback != nullptr) return *fallback;
    return BadScaling(absl::StrCat("needs \"", key, "\" for its type"));
  }
  if (!it->is_number()) return BadScaling(absl::StrCat("\"", key, "\" must be a number"));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < min || v > max) {
    return BadScaling(absl::StrCat("\"", key, "\" = ", it->dump(), " is outside [", min, ", ", max, "]"));
  }
  return v;
}

absl::StatusOr<std::vector<float>> FactorList(const json& s, const std::string& key, int64_t n) {
  auto it = s.find(key);
  if (it == s.end() || !it->is_array()) return BadScaling(absl::StrCat("needs a \"", key, "\" list for longrope"));
  if (static_cast<int64_t>(it->size()) != n) {
    return BadScaling(absl::StrCat("\"", key, "\" has ", it->size(), " values; the rotary needs rotary_dim / 2 = ", n));
  }
  std::vector<float> out;
  for (const auto& v : *it) {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0) {
      return BadScaling(absl::StrCat("\"", key, "\" values must be positive numbers"));
    }
    out.push_back(static_cast<float>(v.get<double>()));
  }
  return out;
}

// 1 / theta^(2i / dim) in float32, as HF computes it (arange(0, dim, 2).float() / dim).
float DefaultInvFreq(double theta, int64_t i, int64_t dim) {
  const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
  return 1.0f / static_cast<float>(std::pow(theta, static_cast<double>(expo)));
}

}  // namespace

absl::StatusOr<RotarySpec> ReadRotary(const json& c, RotarySpec::Style style, int64_t rotary_dim,
                                      int64_t max_positions, double theta) {
  RotarySpec r;
  r.style = style;
  r.rotary_dim = rotary_dim;
  r.max_positions = max_positions;
  r.theta = theta;
  if (rotary_dim < 2 || rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: the rotary dimension ", rotary_dim,
                                                   " must be even and at least 2"));
  }
  auto it = c.find("rope_scaling");
  if (it == c.end() || it->is_null()) return r;
  const json& s = *it;
  if (!s.is_object()) return BadScaling("must be an object or null");
  std::string type;
  for (const char* key : {"type", "rope_type"}) {  // rope_type wins, as in HF 4.44
    if (s.contains(key) && s[key].is_string()) type = s[key].get<std::string>();
  }
  if (type.empty()) return BadScaling("needs a \"rope_type\" (or \"type\")");
  if (type == "su") type = "longrope";  // Phi-3's earlier name
  const double one = 1.0;
  if (type == "default") return r;
  if (type != "linear" && type != "dynamic" && type != "llama3" && type != "yarn" && type != "longrope") {
    return absl::UnimplementedError(absl::StrCat("rope_scaling type \"", type,
                                                 "\" is not supported (linear, dynamic, llama3, yarn, longrope)"));
  }
  r.scaling = type;
  if (type != "longrope") {
    QEFF_ASSIGN_OR_RETURN(r.factor, ScalingNumber(s, "factor", 1e-6, 1e6, nullptr));
  }
  const auto top_original = c.find("original_max_position_embeddings");
  const int64_t config_positions = max_positions;
  if (type == "llama3") {
    QEFF_ASSIGN_OR_RETURN(r.low_freq_factor, ScalingNumber(s, "low_freq_factor", 1e-6, 1e6, nullptr));
    QEFF_ASSIGN_OR_RETURN(r.high_freq_factor, ScalingNumber(s, "high_freq_factor", 1e-6, 1e6, nullptr));
    if (r.high_freq_factor <= r.low_freq_factor) {
      return BadScaling("high_freq_factor must be larger than low_freq_factor");
    }
    QEFF_ASSIGN_OR_RETURN(double orig, ScalingNumber(s, "original_max_position_embeddings", 1, 1e9, nullptr));
    r.original_max_positions = static_cast<int64_t>(orig);
  } else if (type == "yarn") {
    const double fast = 32, slow = 1, positions = static_cast<double>(config_positions);
    QEFF_ASSIGN_OR_RETURN(r.beta_fast, ScalingNumber(s, "beta_fast", 1e-6, 1e6, &fast));
    QEFF_ASSIGN_OR_RETURN(r.beta_slow, ScalingNumber(s, "beta_slow", 1e-6, 1e6, &slow));
    QEFF_ASSIGN_OR_RETURN(double orig, ScalingNumber(s, "original_max_position_embeddings", 1, 1e9, &positions));
    r.original_max_positions = static_cast<int64_t>(orig);
    const double paper = 0.1 * std::log(r.factor) + 1.0;
    QEFF_ASSIGN_OR_RETURN(r.attention_factor, ScalingNumber(s, "attention_factor", 0, 1e6, &paper));
  } else if (type == "longrope") {
    const int64_t half = rotary_dim / 2;
    QEFF_ASSIGN_OR_RETURN(r.short_factor, FactorList(s, "short_factor", half));
    QEFF_ASSIGN_OR_RETURN(r.long_factor, FactorList(s, "long_factor", half));
    double factor = 1.0;
    if (top_original != c.end() && top_original->is_number_integer()) {
      // Phi-3: the ratio of the extended to the pretrained context is the factor.
      r.original_max_positions = top_original->get<int64_t>();
      if (r.original_max_positions < 1) return BadScaling("original_max_position_embeddings must be positive");
      factor = static_cast<double>(config_positions) / static_cast<double>(r.original_max_positions);
    } else {
      QEFF_ASSIGN_OR_RETURN(factor, ScalingNumber(s, "factor", 1e-6, 1e6, &one));
      r.original_max_positions = config_positions;
    }
    r.factor = factor;
    const double derived =
        factor <= 1.0 ? 1.0
                      : std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(r.original_max_positions)));
    QEFF_ASSIGN_OR_RETURN(r.attention_factor, ScalingNumber(s, "attention_factor", 0, 1e6, &derived));
  }
  return r;
}

std::vector<float> RotaryInverseFrequencies(const RotarySpec& r, bool long_factors) {
  const int64_t dim = r.rotary_dim, half = dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv[i] = DefaultInvFreq(r.theta, i, dim);
  const float factor = static_cast<float>(r.factor);
  if (r.scaling == "linear") {
    for (float& f : inv) f = f / factor;
  } else if (r.scaling == "llama3") {
    const double old_ctx = static_cast<double>(r.original_max_positions);
    const float low_wavelen = static_cast<float>(old_ctx / r.low_freq_factor);
    const float high_wavelen = static_cast<float>(old_ctx / r.high_freq_factor);
    const float two_pi = static_cast<float>(2.0 * M_PI);
    for (float& f : inv) {
      const float wavelen = (1.0f / f) * two_pi;  // torch: scalar / t == t.reciprocal() * scalar
      const float scaled = wavelen > low_wavelen ? f / factor : f;
      const float smooth = ((1.0f / wavelen) * static_cast<float>(old_ctx) - static_cast<float>(r.low_freq_factor)) /
                           static_cast<float>(r.high_freq_factor - r.low_freq_factor);
      const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      f = medium ? smoothed : scaled;
    }
  } else if (r.scaling == "yarn") {
    const double base = r.theta, positions = static_cast<double>(r.original_max_positions);
    auto correction_dim = [&](double rotations) {
      return (static_cast<double>(dim) * std::log(positions / (rotations * 2 * M_PI))) / (2 * std::log(base));
    };
    double low = std::max(std::floor(correction_dim(r.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(r.beta_slow)), static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
      const float pos_freq = static_cast<float>(std::pow(base, static_cast<double>(expo)));
      const float extrapolation = 1.0f / pos_freq;
      const float interpolation = 1.0f / (factor * pos_freq);
      float ramp = (static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low);
      ramp = std::min(1.0f, std::max(0.0f, ramp));
      const float extrapolation_factor = 1.0f - ramp;
      inv[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
    }
  } else if (r.scaling == "longrope") {
    const std::vector<float>& ext = long_factors ? r.long_factor : r.short_factor;
    for (int64_t i = 0; i < half; ++i) {
      const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
      inv[i] = 1.0f / (ext[i] * static_cast<float>(std::pow(r.theta, static_cast<double>(expo))));
    }
  }
  return inv;
}

namespace {

// cos/sin tables [max_positions, rotary_dim]: frequency i/2 per column (interleaved) or
// cat(freqs, freqs) (rotate_half), times the attention factor; gathered at the clamped positions
// -> [B,S,rotary_dim].
std::pair<std::string, std::string> GatheredTables(GraphBuilder& g, const RotarySpec& r,
                                                   const std::vector<float>& inv, const std::string& tag,
                                                   const std::string& pos) {
  const int64_t width = r.rotary_dim, half = width / 2;
  const bool interleaved = r.style == RotarySpec::Style::kInterleaved;
  const float attention = static_cast<float>(r.attention_factor);
  std::vector<float> cos(static_cast<size_t>(r.max_positions * width)), sin(cos.size());
  for (int64_t p = 0; p < r.max_positions; ++p) {
    for (int64_t i = 0; i < width; ++i) {
      const float f = static_cast<float>(p) * inv[static_cast<size_t>(interleaved ? i / 2 : i % half)];
      float cv = static_cast<float>(std::cos(static_cast<double>(f)));
      float sv = static_cast<float>(std::sin(static_cast<double>(f)));
      if (attention != 1.0f) {
        cv *= attention;
        sv *= attention;
      }
      cos[static_cast<size_t>(p * width + i)] = cv;
      sin[static_cast<size_t>(p * width + i)] = sv;
    }
  }
  std::string cos_t = ConstF32(g, tag + "_cos_table", cos, {r.max_positions, width});
  std::string sin_t = ConstF32(g, tag + "_sin_table", sin, {r.max_positions, width});
  return {g.Node("Gather", {cos_t, pos}, {AttrInt("axis", 0)}, tag + "_cos_bs"),
          g.Node("Gather", {sin_t, pos}, {AttrInt("axis", 0)}, tag + "_sin_bs")};
}

}  // namespace

RopeTables BuildRotary(GraphBuilder& g, const CausalLMIO& io, const RotarySpec& r) {
  const std::string tag = r.style == RotarySpec::Style::kInterleaved ? "rope_interleaved" : "rope";
  // Padding positions (-1) read row 0; their results are never used.
  std::string pos = g.Node("Max", {io.position_ids, g.ScalarI64(0)}, {}, "rope_pos");
  auto [cos, sin] = GatheredTables(g, r, RotaryInverseFrequencies(r, false), tag, pos);
  if (r.scaling == "longrope") {
    auto [cos_long, sin_long] = GatheredTables(g, r, RotaryInverseFrequencies(r, true), tag + "_long", pos);
    // Long factors for a row whose largest position + 1 exceeds the original context.
    std::string pf = g.Node("Cast", {io.position_ids}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "rope_pos_f");
    std::string row_max = g.Node("ReduceMax", {pf}, {AttrInts("axes", {1}), AttrInt("keepdims", 1)}, "rope_row_max");
    std::string is_long =
        g.Node("Greater", {row_max, g.ScalarF32(static_cast<float>(r.original_max_positions) - 1.0f)}, {},
               "rope_is_long");
    std::string sel = g.Node("Unsqueeze", {is_long, g.VectorI64({2})}, {}, "rope_is_long3");
    cos = g.Node("Where", {sel, cos_long, cos}, {}, "rope_cos_sel");
    sin = g.Node("Where", {sel, sin_long, sin}, {}, "rope_sin_sel");
  }
  RopeTables t;
  t.cos = g.Node("Unsqueeze", {cos, g.VectorI64({1})}, {}, "rope_cos");
  t.sin = g.Node("Unsqueeze", {sin, g.VectorI64({1})}, {}, "rope_sin");
  return t;
}

std::string ApplyRotary(GraphBuilder& g, const std::string& x, const RopeTables& rope, const RotarySpec& r,
                        int64_t head_dim) {
  const int64_t rd = r.rotary_dim;
  std::string rot_in = x, pass;
  if (rd < head_dim) {
    auto parts = g.NodeN("Split", {x, g.VectorI64({rd, head_dim - rd})}, 2, {AttrInt("axis", 3)}, "rope_part");
    rot_in = parts[0];
    pass = parts[1];
  }
  std::string rot;
  if (r.style == RotarySpec::Style::kInterleaved) {
    // rotate_every_two: view the last axis as [rd/2, 2] pairs, (x1, x2) -> (-x2, x1).
    std::string pairs = g.Node("Reshape", {rot_in, g.VectorI64({0, 0, 0, rd / 2, 2})}, {}, "rope_pairs");
    auto eo = g.NodeN("Split", {pairs, g.VectorI64({1, 1})}, 2, {AttrInt("axis", 4)}, "rope_even_odd");
    std::string neg = g.Node("Neg", {eo[1]}, {}, "rope_neg");
    std::string swapped = g.Node("Concat", {neg, eo[0]}, {AttrInt("axis", 4)}, "rope_swapped");
    rot = g.Node("Reshape", {swapped, g.VectorI64({0, 0, 0, rd})}, {}, "rope_rot");
  } else {
    // rotate_half: cat(-x2, x1).
    auto halves = g.NodeN("Split", {rot_in, g.VectorI64({rd / 2, rd - rd / 2})}, 2, {AttrInt("axis", 3)}, "rope_half");
    std::string neg = g.Node("Neg", {halves[1]}, {}, "rope_neg");
    rot = g.Node("Concat", {neg, halves[0]}, {AttrInt("axis", 3)}, "rope_rot");
  }
  std::string a = g.Node("Mul", {rot_in, rope.cos}, {}, "rope_xcos");
  std::string b = g.Node("Mul", {rot, rope.sin}, {}, "rope_rsin");
  std::string out = g.Node("Add", {a, b}, {}, "rope");
  if (pass.empty()) return out;
  return g.Node("Concat", {out, pass}, {AttrInt("axis", 3)}, "rope_full");
}

}  // namespace qeff::exporter
