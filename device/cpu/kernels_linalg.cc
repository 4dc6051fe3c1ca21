// MatMul (batched, broadcast, optional transposed B; OpenBLAS sgemm for large products) and
// Linear (x · Wᵀ + b with packed weights). fp32/bf16 Linear runs one register-tiled kernel at
// every M over weights packed in panels of 64 output columns (kernels_linalg.h): a step over k
// broadcasts one input value per row against 64 consecutive weights, so each weight load feeds
// up to six rows (decode batches and prefill alike) and no horizontal sums are needed. int8 and
// int4 weights go to kernels_quant.h.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/kernels_linalg.h"
#include "device/cpu/kernels_quant.h"
#include "device/cpu/vector_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::device {
namespace {

inline float WeightValue(float v) { return v; }
inline float WeightValue(uint16_t v) { return Bf16ToFloat(v); }

// k is blocked so a block of the panel (256 x 64 weights) stays in L1/L2 while every tile of
// input rows passes over it; partial sums wait in y between blocks. Each output is one running
// sum over k in order, whatever the tiling: a row's result never depends on its batch.
constexpr int64_t kBlockK = 256;

// Portable: y[m, 64p + j] for the panel's `cols` columns.
template <typename W>
void PanelGeneric(const float* x, int64_t M, int64_t K, const W* panel, const float* bias, float* y, int64_t N,
                  int64_t cols) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t j = 0; j < cols; ++j) {
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * WeightValue(panel[k * kLinearPanel + j]);
      y[m * N + j] = acc + (bias ? bias[j] : 0.0f);
    }
  }
}

#if defined(__x86_64__)
// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as
// uninitialized here (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define QEFF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
// The 64 weights of one k of a panel as 4 float vectors. bf16: one 64-byte load holds 32
// outputs; shifting each 32-bit lane left by 16 gives the even outputs as floats and masking off
// the low halves gives the odd ones, so 32 weights cost one load and two ALU ops instead of two
// widening loads and two shifts. The accumulators then hold outputs in that order (even 0..30,
// odd 1..31, even 32..62, odd 33..63) and go back to natural order (ToNatural) only when
// stored: every output's FMAs are unchanged.
QEFF_AVX512 inline void LoadW4(const float* p, __m512* w) {
  for (int v = 0; v < 4; ++v) w[v] = _mm512_loadu_ps(p + 16 * v);
}
QEFF_AVX512 inline void LoadW4(const uint16_t* p, __m512* w) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int h = 0; h < 2; ++h) {
    const __m512i raw = _mm512_loadu_si512(p + 32 * h);
    w[2 * h] = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
    w[2 * h + 1] = _mm512_castsi512_ps(_mm512_and_si512(raw, high));
  }
}

// Natural output order <-> the accumulator order LoadW4 gives (the same for fp32 weights).
// Each pair of vectors (a[2h], a[2h + 1]) is permuted as one 32-lane row.
QEFF_AVX512 inline void PermutePairs(__m512* a, __m512i first, __m512i second) {
  for (int h = 0; h < 2; ++h) {
    const __m512 x = a[2 * h], y = a[2 * h + 1];
    a[2 * h] = _mm512_permutex2var_ps(x, first, y);
    a[2 * h + 1] = _mm512_permutex2var_ps(x, second, y);
  }
}
QEFF_AVX512 inline void ToNatural(const float*, __m512*) {}
QEFF_AVX512 inline void FromNatural(const float*, __m512*) {}
QEFF_AVX512 inline void ToNatural(const uint16_t*, __m512* a) {  // interleave even and odd
  PermutePairs(a, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
               _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
}
QEFF_AVX512 inline void FromNatural(const uint16_t*, __m512* a) {  // split into even and odd
  PermutePairs(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
               _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
}

// MR input rows x 64 columns of one panel over k in [k0, k1): 4·MR accumulators (24 at MR 6,
// plus 4 weight vectors and a broadcast: within the 32 registers).
template <int MR, typename W>
QEFF_AVX512 void PanelTile(const float* x, int64_t K, int64_t k0, int64_t k1, const W* panel, const float* bias,
                           float* y, int64_t N, const __mmask16* mask) {
  __m512 acc[MR][4];
  for (int m = 0; m < MR; ++m) {
    for (int v = 0; v < 4; ++v)
      acc[m][v] = k0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[v], y + m * N + 16 * v);
    if (k0 != 0) FromNatural(panel, acc[m]);
  }
  for (int64_t k = k0; k < k1; ++k) {
    __m512 w[4];
    LoadW4(panel + k * kLinearPanel, w);
    for (int m = 0; m < MR; ++m) {
      const __m512 xb = _mm512_set1_ps(x[m * K + k]);
      for (int v = 0; v < 4; ++v) acc[m][v] = _mm512_fmadd_ps(xb, w[v], acc[m][v]);
    }
  }
  for (int m = 0; m < MR; ++m) ToNatural(panel, acc[m]);
  const bool last = k1 == K;
  for (int v = 0; v < 4; ++v) {
    const __m512 b = last && bias ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
    for (int m = 0; m < MR; ++m) _mm512_mask_storeu_ps(y + m * N + 16 * v, mask[v], last ? _mm512_add_ps(acc[m][v], b) : acc[m][v]);
  }
}

template <typename W>
QEFF_AVX512 void PanelAvx512(const float* x, int64_t M, int64_t K, const W* panel, const float* bias, float* y,
                             int64_t N, int64_t cols) {
  __mmask16 mask[4];
  PanelColumnMasks(cols, mask);
  for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    const int64_t k1 = std::min(K, k0 + kBlockK);
    // Rows split into equal tiles of at most 6 (8 rows: 4 + 4, not 6 + 2): every tile reuses
    // each weight load about as often (8 rows: 89 GMAC/s on one core, was 71).
    const int64_t tiles = (M + 5) / 6, rows = (M + tiles - 1) / tiles;
    for (int64_t m = 0; m < M; m += rows) {
      const float* xm = x + m * K;
      float* ym = y + m * N;
      switch (std::min<int64_t>(rows, M - m)) {
        case 1: PanelTile<1>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
        case 2: PanelTile<2>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
        case 3: PanelTile<3>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
        case 4: PanelTile<4>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
        case 5: PanelTile<5>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
        default: PanelTile<6>(xm, K, k0, k1, panel, bias, ym, N, mask); break;
      }
    }
  }
}

// One input row against two panels at once: 8 independent accumulator chains instead of 4,
// because a single row's 4 chains leave the FMA units waiting on each other's latency. Each
// output's sum runs over k in the same order as PanelTile's, so the result is bit for bit the
// same as in a batch.
template <typename W>
QEFF_AVX512 void PanelPairRow(const float* x, int64_t K, const W* panel_a, const W* panel_b, const float* bias,
                              float* y, const __mmask16* mask_b) {
  __m512 acc[8];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const W* wa = panel_a + k * kLinearPanel;
    const W* wb = panel_b + k * kLinearPanel;
    const __m512 xb = _mm512_set1_ps(x[k]);
    __m512 w[8];
    LoadW4(wa, w);
    LoadW4(wb, w + 4);
    for (int v = 0; v < 8; ++v) acc[v] = _mm512_fmadd_ps(xb, w[v], acc[v]);
  }
  ToNatural(panel_a, acc);
  ToNatural(panel_a, acc + 4);
  for (int v = 0; v < 8; ++v) {
    const __mmask16 m = v < 4 ? __mmask16{0xffff} : mask_b[v - 4];
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + 16 * v) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + 16 * v, m, _mm512_add_ps(acc[v], b));
  }
}

#pragma GCC diagnostic pop

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
}
#endif

// Panels [p0, p1) of y = x · Wᵀ + b.
template <typename W>
void PanelRange(const float* x, int64_t M, int64_t K, const W* w, const float* bias, float* y, int64_t N, int64_t p0,
                int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const W* panel = w + p * K * kLinearPanel;
    const int64_t c0 = p * kLinearPanel, cols = std::min(kLinearPanel, N - c0);
    const float* b = bias ? bias + c0 : nullptr;
#if defined(__x86_64__)
    if (HasAvx512() && M == 1 && p + 1 < p1) {
      __mmask16 mask_b[4];
      PanelColumnMasks(N - c0 - kLinearPanel, mask_b);
      PanelPairRow(x, K, panel, panel + K * kLinearPanel, b, y + c0, mask_b);
      ++p;
      continue;
    }
    if (HasAvx512()) {
      PanelAvx512(x, M, K, panel, b, y + c0, N, cols);
      continue;
    }
#endif
    PanelGeneric(x, M, K, panel, b, y + c0, N, cols);
  }
}

}  // namespace

constexpr int64_t kMaxBlasDim = 0x7fffffff;  // cblas takes int dimensions

absl::Status CheckLinearWeight(const TensorRef& w, const TensorRef* scale, int64_t N, int64_t K, const char* what) {
  const std::string name(what);
  if (auto st = ExpectDType(w, what, {qeff::v1::F32, qeff::v1::BF16, qeff::v1::I8, qeff::v1::I4}); !st.ok()) return st;
  const bool quantized = w.dtype == qeff::v1::I8 || w.dtype == qeff::v1::I4;
  const Shape want = quantized ? QuantWeightShape(w.dtype, N, K) : Shape{LinearPanels(N), K, kLinearPanel};
  if (w.shape != want) {
    return RuleError(absl::StrCat(name, " ", ShapeString(w.shape), " is not ", ShapeString(want), " (", N,
                                  " outputs of ", K, " inputs in panels of 64 outputs)"));
  }
  if (quantized != (scale != nullptr)) {
    return RuleError(absl::StrCat(name, ": int8 and int4 weights need a scale input (and only they take one)"));
  }
  if (!quantized) return absl::OkStatus();
  return ExpectLike(*scale, (name + " scale").c_str(), w.dtype == qeff::v1::I8 ? qeff::v1::F32 : qeff::v1::BF16,
                    QuantScaleShape(w.dtype, N, K));
}

absl::Status LinearRule(const LinearAttrs& attrs, const Tensors& in, const Tensors& out) {
  const TensorRef& x = in[0];
  const TensorRef& w = in[1];
  if (auto st = ExpectDType(x, "x", {qeff::v1::F32}); !st.ok()) return st;
  const int64_t N = attrs.out_features;
  if (x.shape.empty() || x.shape.back() < 1 || N > kMaxBlasDim || x.shape.back() > kMaxBlasDim ||
      x.numel() / x.shape.back() > kMaxBlasDim) {
    return RuleError(absl::StrCat("x ", ShapeString(x.shape), " does not fit w ", ShapeString(w.shape), " [N, K >= 1]"));
  }
  const int64_t K = x.shape.back();
  if (in.size() > 2 && Present(in[2])) {
    if (auto st = ExpectLike(in[2], "bias", qeff::v1::F32, {N}); !st.ok()) return st;
  }
  const TensorRef* scale = in.size() > 3 && Present(in[3]) ? &in[3] : nullptr;
  if (auto st = CheckLinearWeight(w, scale, N, K, "w"); !st.ok()) return st;
  Shape y(x.shape.begin(), x.shape.end() - 1);
  y.push_back(N);
  return ExpectLike(out[0], "output", qeff::v1::F32, y);
}

absl::Status LinearKernel(const LinearAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const TensorRef& x = in[0];
  const TensorRef& w = in[1];
  const float* bias = in.size() > 2 && in[2].data ? in[2].as<float>() : nullptr;
  const int64_t K = x.shape.back(), N = attrs.out_features;
  const int64_t M = x.numel() / K;
  float* y = out[0].as<float>();
  const float* px = x.as<float>();
  const bool parallel = pool != nullptr && N * K * M >= (1 << 16);
  // Decode splits panels in pairs: the one-row kernels stream two panels per pass.
  const int64_t grain = M == 1 ? 2 : 1;
  if (w.dtype == qeff::v1::I8 || w.dtype == qeff::v1::I4) {
    // Integer dot products at every M (prefill too): no widening of the weights. The rows are
    // quantized once by this thread; workers only read them.
    // (Lambdas name a thread_local afresh in each worker: pass this thread's by pointer.)
    static thread_local QuantizedRows scratch_rows;
    const QuantizedRows* rows = &scratch_rows;
    scratch_rows.Quantize(px, M, K, w.dtype, parallel ? pool : nullptr);
    const void* scale = in[3].data;
    auto body = [&](int64_t p0, int64_t p1) { QuantLinearPanels(*rows, w.data, scale, bias, y, N, p0, p1); };
    if (parallel) pool->ParallelFor(LinearPanels(N), grain, body);
    else body(0, LinearPanels(N));
    return absl::OkStatus();
  }
  auto body = [&](int64_t p0, int64_t p1) {
    if (w.dtype == qeff::v1::BF16) PanelRange(px, M, K, w.as<uint16_t>(), bias, y, N, p0, p1);
    else PanelRange(px, M, K, w.as<float>(), bias, y, N, p0, p1);
  };
  if (parallel) pool->ParallelFor(LinearPanels(N), grain, body);
  else body(0, LinearPanels(N));
  return absl::OkStatus();
}

namespace {

// MatMul: numpy semantics for rank >= 2 (the compiler reshapes 1-D operands); attr trans_b
// means b holds [..., N, K].
struct MatMulAttrs {
  bool trans_b = false;
};

absl::Status ParseMatMul(AttrReader& r, MatMulAttrs* a) {
  const int64_t t = r.Int("trans_b", 0);
  if (t != 0 && t != 1) return RuleError(absl::StrCat("trans_b ", t, " is not 0 or 1"));
  a->trans_b = t != 0;
  return absl::OkStatus();
}

absl::Status MatMulRule(const MatMulAttrs& attrs, const Tensors& in, const Tensors& out) {
  const TensorRef& a = in[0];
  const TensorRef& b = in[1];
  if (auto st = ExpectDType(a, "a", {qeff::v1::F32}); !st.ok()) return st;
  if (auto st = ExpectDType(b, "b", {qeff::v1::F32}); !st.ok()) return st;
  if (a.shape.size() < 2 || b.shape.size() < 2) return RuleError("operands must have rank >= 2");
  const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back();
  const int64_t N = attrs.trans_b ? b.shape[b.shape.size() - 2] : b.shape.back();
  const int64_t Kb = attrs.trans_b ? b.shape.back() : b.shape[b.shape.size() - 2];
  if (K != Kb) {
    return RuleError(absl::StrCat("inner dimensions of ", ShapeString(a.shape), " and ", ShapeString(b.shape),
                                  attrs.trans_b ? " (b transposed)" : "", " differ"));
  }
  if (M > kMaxBlasDim || N > kMaxBlasDim || K > kMaxBlasDim) return RuleError("dimensions above 2^31");
  const Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  auto batch = BroadcastShapes({&ba, &bb});
  if (!batch.ok()) return batch.status();
  batch->push_back(M);
  batch->push_back(N);
  return ExpectLike(out[0], "output", qeff::v1::F32, *batch);
}

absl::Status MatMulKernel(const MatMulAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& a = in[0];
  const TensorRef& b = in[1];
  const TensorRef& o = out[0];
  const bool trans_b = attrs.trans_b;
  const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back();
  const int64_t N = trans_b ? b.shape[b.shape.size() - 2] : b.shape.back();
  // Batch dims broadcast to the output's.
  const Shape ob(o.shape.begin(), o.shape.end() - 2);
  auto batch_strides = [&](const Shape& s) {
    Shape bs(s.begin(), s.end() - 2);
    Shape st = Strides(bs);
    Shape r(ob.size(), 0);
    const size_t off = ob.size() - bs.size();
    for (size_t i = 0; i < bs.size(); ++i) r[off + i] = bs[i] == 1 ? 0 : st[i];
    return r;
  };
  const Shape sa = batch_strides(a.shape), sb = batch_strides(b.shape);
  const int64_t batches = NumElements(ob);
  Shape idx(ob.size(), 0);
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t oa = 0, obb = 0;
    for (size_t d = 0; d < ob.size(); ++d) {
      oa += idx[d] * sa[d];
      obb += idx[d] * sb[d];
    }
    const float* pa = a.as<float>() + oa * M * K;
    const float* pb = b.as<float>() + obb * K * N;
    float* po = o.as<float>() + bi * M * N;
    if (M <= 4 || M * N * K < 4096) {
      // Decode-sized products (attention over the cache for one token): a BLAS call per head
      // costs more than the arithmetic.
      for (int64_t m = 0; m < M; ++m) {
        float* om = po + m * N;
        if (trans_b) {
          for (int64_t n = 0; n < N; ++n) om[n] = Dot(pa + m * K, pb + n * K, K);
        } else {
          std::fill(om, om + N, 0.0f);
          for (int64_t k = 0; k < K; ++k) Axpy(pa[m * K + k], pb + k * N, om, N);
        }
      }
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(M),
                  static_cast<int>(N), static_cast<int>(K), 1.0f, pa, static_cast<int>(K), pb,
                  static_cast<int>(trans_b ? K : N), 0.0f, po, static_cast<int>(N));
    }
    for (int d = static_cast<int>(ob.size()) - 1; d >= 0; --d) {
      if (++idx[d] < ob[d]) break;
      idx[d] = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseLinear(AttrReader& r, LinearAttrs* a) {
  a->out_features = r.Int("out_features", 0);
  if (a->out_features < 1) return RuleError(absl::StrCat("out_features ", a->out_features, " is not >= 1"));
  return absl::OkStatus();
}

void RegisterLinalgOps(OpRegistry& r) {
  r.Add(MakeOp<MatMulAttrs, ParseMatMul, MatMulRule, MatMulKernel>("MatMul", {2, 2}, {1, 1}));
  r.Add(MakeOp<LinearAttrs, ParseLinear, LinearRule, LinearKernel>("Linear", {2, 4}, {1, 1}));
}

}  // namespace qeff::device
