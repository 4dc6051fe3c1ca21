// SparseMoE: a mixture-of-experts MLP that reads only the routed experts' weights. Tokens are
// grouped per expert, so each chosen expert's three matrices are read once per call whatever
// the number of its tokens (a decode step of one token reads top_k experts, not all of them),
// and each group goes through the Linear kernel. Routing follows HF: softmax over all experts in
// float32, the top_k largest (ties: lower expert index first), optionally renormalized; outputs
// are summed in expert order.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"
#include "device/cpu/kernels_linalg.h"
#include "device/cpu/op_registry.h"

namespace qeff::device {
namespace {

constexpr int64_t kMaxExperts = 4096;

struct MoeScratch {
  std::vector<float> logits, xe, gate, up, ye;
  std::vector<int64_t> order;
  std::vector<std::vector<std::pair<int64_t, float>>> routed;  // per expert: (token, weight)
  std::vector<TensorRef> lin_in, lin_out;
};

struct MoeAttrs {
  int64_t num_experts = 0, top_k = 0, intermediate_size = 0;
  bool normalize = false;
};

void SetView(TensorRef* t, float* data, int64_t rows, int64_t cols) {
  t->data = data;
  t->dtype = qeff::v1::F32;
  t->shape.assign({rows, cols});
}

absl::Status ParseMoe(AttrReader& r, MoeAttrs* a) {
  a->num_experts = r.Int("num_experts", 0);
  a->top_k = r.Int("top_k", 0);
  a->intermediate_size = r.Int("intermediate_size", 0);
  const int64_t normalize = r.Int("normalize", 0);
  if (a->num_experts < 1 || a->num_experts > kMaxExperts || a->top_k < 1 || a->top_k > a->num_experts) {
    return RuleError(absl::StrCat("bad num_experts / top_k: num_experts = ", a->num_experts, ", top_k = ", a->top_k,
                                  " must satisfy 1 <= top_k <= num_experts <= ", kMaxExperts));
  }
  if (a->intermediate_size < 1) return RuleError("intermediate_size must be >= 1");
  if (normalize != 0 && normalize != 1) {
    return RuleError("normalize must be 0 or 1");
  }
  a->normalize = normalize != 0;
  return absl::OkStatus();
}

absl::Status MoeRule(const MoeAttrs& a, const Tensors& in, const Tensors& out) {
  const int64_t E = a.num_experts;
  const bool scaled = in.size() == static_cast<size_t>(2 + 6 * E);
  if (in.size() != static_cast<size_t>(2 + 3 * E) && !scaled) {
    return RuleError(absl::StrCat(in.size(), " inputs for ", E, " experts"));
  }
  const TensorRef& x = in[0];
  const TensorRef& router = in[1];
  if (auto st = ExpectDType(x, "x", {qeff::v1::F32}); !st.ok()) return st;
  if (x.shape.empty() || x.shape.back() < 1) return RuleError("x must be [..., hidden >= 1]");
  const int64_t H = x.shape.back(), I = a.intermediate_size;
  if (router.dtype != qeff::v1::F32) return RuleError("the router must be f32");
  if (auto st = CheckLinearWeight(router, nullptr, E, H, "router"); !st.ok()) return st;
  const DType wt = in[2].dtype;
  if ((wt == qeff::v1::I8 || wt == qeff::v1::I4) != scaled) {
    return RuleError("int8 and int4 expert weights need scale inputs (and only they take them)");
  }
  for (int64_t e = 0; e < E; ++e) {
    const TensorRef* w[3] = {&in[2 + 3 * e], &in[3 + 3 * e], &in[4 + 3 * e]};
    const char* names[3] = {"gate", "up", "down"};
    for (int j = 0; j < 3; ++j) {
      const TensorRef* scale = scaled ? &in[2 + 3 * E + 3 * e + j] : nullptr;
      const int64_t rows = j < 2 ? I : H, cols = j < 2 ? H : I;
      auto st = w[j]->dtype == wt ? CheckLinearWeight(*w[j], scale, rows, cols, names[j])
                                  : RuleError("expert weights differ in dtype");
      if (!st.ok()) return RuleError(absl::StrCat("expert ", e, ": ", st.message()));
    }
  }
  return ExpectLike(out[0], "output", qeff::v1::F32, x.shape);
}

absl::Status SparseMoE(const MoeAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const int64_t E = attrs.num_experts, top_k = attrs.top_k;
  const bool normalize = attrs.normalize;
  const bool scaled = in.size() == static_cast<size_t>(2 + 6 * E);
  const TensorRef& x = in[0];
  const TensorRef& router = in[1];
  const int64_t H = x.shape.back(), T = x.numel() / H;
  const int64_t I = attrs.intermediate_size;
  static thread_local MoeScratch s;
  auto linear = [&](const float* xin, int64_t rows, int64_t k, const TensorRef& w, const TensorRef* scale,
                    float* y, int64_t n) {
    // Scratch TensorRefs keep their shape storage: no allocation once warm.
    s.lin_in.resize(scale != nullptr ? 4 : 3);
    s.lin_out.resize(1);
    SetView(&s.lin_in[0], const_cast<float*>(xin), rows, k);
    s.lin_in[1] = w;
    s.lin_in[2] = TensorRef{};
    if (scale != nullptr) s.lin_in[3] = *scale;
    SetView(&s.lin_out[0], y, rows, n);
    return LinearKernel(LinearAttrs{n}, s.lin_in, s.lin_out, pool);
  };

  // Routing: logits, softmax, top k.
  s.logits.resize(static_cast<size_t>(T * E));
  QEFF_RETURN_IF_ERROR(linear(x.as<float>(), T, H, router, nullptr, s.logits.data(), E));
  s.routed.resize(static_cast<size_t>(E));
  for (auto& r : s.routed) r.clear();
  s.order.resize(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    float* p = s.logits.data() + t * E;
    const float mx = *std::max_element(p, p + E);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) {
      p[e] = std::exp(p[e] - mx);
      sum += p[e];
    }
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    for (int64_t e = 0; e < E; ++e) s.order[e] = e;
    std::partial_sort(s.order.begin(), s.order.begin() + top_k, s.order.end(),
                      [p](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float top_sum = 0.0f;
    for (int64_t j = 0; j < top_k; ++j) top_sum += p[s.order[j]];
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = s.order[j];
      s.routed[e].emplace_back(t, normalize ? p[e] / top_sum : p[e]);
    }
  }

  // Experts in order, each over its tokens only.
  float* y = out[0].as<float>();
  std::fill(y, y + T * H, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const auto& toks = s.routed[e];
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size());
    s.xe.resize(static_cast<size_t>(n * H));
    for (int64_t r = 0; r < n; ++r) std::copy_n(x.as<float>() + toks[r].first * H, H, s.xe.data() + r * H);
    s.gate.resize(static_cast<size_t>(n * I));
    s.up.resize(static_cast<size_t>(n * I));
    s.ye.resize(static_cast<size_t>(n * H));
    const TensorRef* sg = scaled ? &in[2 + 3 * E + 3 * e] : nullptr;
    const TensorRef* su = scaled ? &in[3 + 3 * E + 3 * e] : nullptr;
    const TensorRef* sd = scaled ? &in[4 + 3 * E + 3 * e] : nullptr;
    QEFF_RETURN_IF_ERROR(linear(s.xe.data(), n, H, in[2 + 3 * e], sg, s.gate.data(), I));
    QEFF_RETURN_IF_ERROR(linear(s.xe.data(), n, H, in[3 + 3 * e], su, s.up.data(), I));
    for (int64_t i = 0; i < n * I; ++i) {
      const float g = s.gate[i];
      s.gate[i] = g / (1.0f + std::exp(-g)) * s.up[i];  // silu(gate) · up
    }
    QEFF_RETURN_IF_ERROR(linear(s.gate.data(), n, I, in[4 + 3 * e], sd, s.ye.data(), H));
    for (int64_t r = 0; r < n; ++r) {
      float* dst = y + toks[r].first * H;
      const float* src = s.ye.data() + r * H;
      const float wgt = toks[r].second;
      for (int64_t h = 0; h < H; ++h) dst[h] += src[h] * wgt;
    }
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterMoeOps(OpRegistry& r) {
  r.Add(MakeOp<MoeAttrs, ParseMoe, MoeRule, SparseMoE>("SparseMoE", {5, kAnyCount}, {1, 1}));
}

}  // namespace qeff::device
