// CachedAttention: softmax(score_ops(q·kᵀ) where unmasked) · v straight from the retained KV
// cache (the compiler's FuseAttention pass emits it). Decode is bounded by reading the cache, so
// each (batch row, query position) reads only the cache rows between its first and last
// unmasked key, and the G query heads that share a kv head are served by one pass over those
// rows. A row's result depends only on its own q, mask row and cache rows: no reduction order
// changes with the batch size, ctx_len or the other rows in the call (continuous batching gives
// the same tokens as running a request alone). The cache is float32 or bfloat16
// (--kv-cache-dtype bf16: half the bytes per step; rows are widened exactly on load). Calls with
// one query position (decode) run per row; calls with several (prefill) run as small tiled
// matrix products per block of positions (RunBlockTask), with the same independence per row.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/op_registry.h"
#include "device/cpu/vector_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qeff::device {
namespace {

constexpr int kMaxScoreOps = 16;
constexpr int64_t kMaxGroups = 64;

std::atomic<bool> force_portable{false};

bool UseAvx512() { return CpuHasAvx512() && !force_portable.load(std::memory_order_relaxed); }

struct ScoreStep {
  ScoreOp op;
  float c;
};

// Everything a task needs, so ParallelFor's closure is one pointer (no std::function allocation).
struct Job {
  const float* q;
  const void* k;  // float or bf16 (uint16_t) cache rows, as `bf16_cache` says
  const void* v;
  bool bf16_cache;
  const uint8_t* mask;
  const TensorRef* batch_index;  // null: cache row b serves batch row b
  float* out;
  int64_t Hq, S, D, Hkv, C, G;
  int64_t mask_b_stride, mask_s_stride;
  std::array<ScoreStep, kMaxScoreOps> steps;
  int num_steps;
};

// Per-thread scratch, grown on demand and kept: no heap traffic in steady state.
struct Scratch {
  std::vector<int32_t> keys;
  std::vector<float> scores;  // [G][stride]
};

int64_t RowOf(const Job& job, int64_t b) {
  if (job.batch_index == nullptr) return b;
  const TensorRef& t = *job.batch_index;
  return t.dtype == qeff::v1::I32 ? t.as<int32_t>()[b] : t.as<int64_t>()[b];
}

// The first and last unmasked key (mask byte 0) of a mask row of C bytes; false if none.
bool UnmaskedRange(const uint8_t* mrow, int64_t C, int64_t* lo, int64_t* hi) {
  const void* first = std::memchr(mrow, 0, static_cast<size_t>(C));
  if (first == nullptr) return false;
  *lo = static_cast<const uint8_t*>(first) - mrow;
  *hi = static_cast<const uint8_t*>(memrchr(mrow, 0, static_cast<size_t>(C))) - mrow;
  return true;
}

// ---- q·k for G query rows against the selected cache rows -------------------------------------

inline float CacheValue(float v) { return v; }
inline float CacheValue(uint16_t v) { return Bf16ToFloat(v); }

template <typename T>
void ScoresScalar(const float* const* qg, int64_t G, const T* kbase, const int32_t* keys, int64_t n,
                  int64_t D, float* sc, int64_t stride) {
  for (int64_t i = 0; i < n; ++i) {
    const T* kr = kbase + static_cast<int64_t>(keys[i]) * D;
    for (int64_t g = 0; g < G; ++g) {
      float acc = 0;
      for (int64_t d = 0; d < D; ++d) acc += qg[g][d] * CacheValue(kr[d]);
      sc[g * stride + i] = acc;
    }
  }
}

// out[g] = sum_i p[g][i] * v[keys[i]]
template <typename T>
void AccumulateScalar(const float* p, int64_t stride, int64_t G, const T* vbase, const int32_t* keys, int64_t n,
                      int64_t D, float* const* out) {
  for (int64_t g = 0; g < G; ++g) {
    float* o = out[g];
    std::fill(o, o + D, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float w = p[g * stride + i];
      const T* vr = vbase + static_cast<int64_t>(keys[i]) * D;
      for (int64_t d = 0; d < D; ++d) o[d] += w * CacheValue(vr[d]);
    }
  }
}

#if defined(__x86_64__)
#define QEFF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as uninitialized
// here (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

constexpr int64_t kPrefetchKeys = 8;
template <typename T>
inline void PrefetchRow(const T* row, int64_t D) {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < D * static_cast<int64_t>(sizeof(T)); b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// 16 cache values (fewer under the mask) as floats.
QEFF_AVX512 inline __m512 LoadCache(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
QEFF_AVX512 inline __m512 LoadCache(__mmask16 m, const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

QEFF_AVX512 inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

// Scores of one query row against 16 keys at a time. Each key's score is a lane-wise FMA chain
// over the D chunks in order, then the 16 accumulators are reduced together by one transpose
// tree (15 adds and 30 shuffles for 16 scores, where one horizontal sum per key cost 8): prefill
// computes a score for every (query, earlier key) pair. Keys are assigned to accumulators in the
// order the tree leaves them in lanes, so lane j holds key i0 + j. Every score takes the same
// operations whatever n, the group or the batch; missing keys of the last group are zeros.
QEFF_AVX512 inline __m512 ReduceSixteen(const __m512* a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i) {
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  }
  for (int i = 0; i < 2; ++i) {
    d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44), _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  }
  // Lane 4k + m now holds the sum of a[4m + k].
  return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
}

template <typename T>
QEFF_AVX512 void ScoresRowAvx512(const float* q, const T* kbase, const T* vbase, const int32_t* keys, int64_t n,
                                 int64_t D, bool prefetch, float* sc) {
  // Decode reads each cache row once, from memory (the weights have evicted it): the first head
  // of a group requests key rows two groups ahead of the one it scores, and that group's value
  // rows for p·v after the softmax; the other heads find them in cache.
  if (prefetch) {
    for (int64_t j = 0; j < std::min<int64_t>(n, 32); ++j) PrefetchRow(kbase + static_cast<int64_t>(keys[j]) * D, D);
  }
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int64_t count = std::min<int64_t>(16, n - i0);
    if (prefetch) {
      for (int64_t j = i0 + 32; j < std::min(n, i0 + 48); ++j) PrefetchRow(kbase + static_cast<int64_t>(keys[j]) * D, D);
      for (int64_t j = i0; j < i0 + count; ++j) PrefetchRow(vbase + static_cast<int64_t>(keys[j]) * D, D);
    }
    __m512 acc[16];
    const T* rows[16];
    for (int v = 0; v < 16; ++v) {
      acc[v] = _mm512_setzero_ps();
      const int64_t key = (v % 4) * 4 + v / 4;  // the lane ReduceSixteen puts accumulator v in
      // A missing key of the last group reads key i0's row: its lane is never stored.
      rows[v] = kbase + static_cast<int64_t>(keys[i0 + (key < count ? key : 0)]) * D;
    }
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 m = TailMask(D - d);
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
      for (int v = 0; v < 16; ++v) acc[v] = _mm512_fmadd_ps(qv, LoadCache(m, rows[v] + d), acc[v]);
    }
    _mm512_mask_storeu_ps(sc + i0, TailMask(count), ReduceSixteen(acc));
  }
}

template <typename T>
QEFF_AVX512 void ScoresAvx512(const float* const* qg, int64_t G, const T* kbase, const T* vbase, const int32_t* keys,
                              int64_t n, int64_t D, float* sc, int64_t stride) {
  for (int64_t g = 0; g < G; ++g) ScoresRowAvx512(qg[g], kbase, vbase, keys, n, D, g == 0, sc + g * stride);
}

// GB heads' output rows x NC 16-float column chunks held in registers over all keys: each value
// row chunk is loaded once for the GB heads (one head at a time left 4 FMA chains per key,
// bound by their latency). Every output is still one FMA per key, in key order.
template <int GB, int NC, typename T>
QEFF_AVX512 void AccumulateTileAvx512(const float* p, int64_t stride, const T* vbase, const int32_t* keys, int64_t n,
                                      int64_t D, int64_t d0, float* const* out) {
  __m512 acc[GB][NC];
  __mmask16 m[NC];
  for (int c = 0; c < NC; ++c) {
    m[c] = TailMask(D - d0 - 16 * c);
    for (int g = 0; g < GB; ++g) acc[g][c] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < n; ++i) {
    if (d0 == 0 && i + kPrefetchKeys < n) PrefetchRow(vbase + static_cast<int64_t>(keys[i + kPrefetchKeys]) * D, D);
    const T* vr = vbase + static_cast<int64_t>(keys[i]) * D + d0;
    __m512 v[NC];
    for (int c = 0; c < NC; ++c) v[c] = LoadCache(m[c], vr + 16 * c);
    for (int g = 0; g < GB; ++g) {
      const __m512 w = _mm512_set1_ps(p[g * stride + i]);
      for (int c = 0; c < NC; ++c) acc[g][c] = _mm512_fmadd_ps(w, v[c], acc[g][c]);
    }
  }
  for (int g = 0; g < GB; ++g) {
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(out[g] + d0 + 16 * c, m[c], acc[g][c]);
  }
}

// Heads in blocks of up to 16 / NC accumulators' worth (4 at D <= 64, 2 up to 128), the rest
// one by one.
template <int NC, typename T>
QEFF_AVX512 void AccumulateColsAvx512(const float* p, int64_t stride, int64_t G, const T* vbase,
                                      const int32_t* keys, int64_t n, int64_t D, int64_t d0, float* const* out) {
  constexpr int kBlock = NC <= 4 ? 4 : 2;
  int64_t g = 0;
  for (; g + kBlock <= G; g += kBlock) {
    AccumulateTileAvx512<kBlock, NC>(p + g * stride, stride, vbase, keys, n, D, d0, out + g);
  }
  for (; g < G; ++g) AccumulateTileAvx512<1, NC>(p + g * stride, stride, vbase, keys, n, D, d0, out + g);
}

template <typename T>
QEFF_AVX512 void AccumulateAvx512(const float* p, int64_t stride, int64_t G, const T* vbase, const int32_t* keys,
                                  int64_t n, int64_t D, float* const* out) {
  for (int64_t d0 = 0; d0 < D; d0 += 128) {
    switch (std::min<int64_t>(8, (D - d0 + 15) / 16)) {
      case 8: AccumulateColsAvx512<8>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 7: AccumulateColsAvx512<7>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 6: AccumulateColsAvx512<6>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 5: AccumulateColsAvx512<5>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 4: AccumulateColsAvx512<4>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 3: AccumulateColsAvx512<3>(p, stride, G, vbase, keys, n, D, d0, out); break;
      case 2: AccumulateColsAvx512<2>(p, stride, G, vbase, keys, n, D, d0, out); break;
      default: AccumulateColsAvx512<1>(p, stride, G, vbase, keys, n, D, d0, out); break;
    }
  }
}

// ---- Prefill: many query rows against one kv head ------------------------------------------------
// A prefill call has S query positions (x G heads) reading the same cache rows, so it runs as
// small matrix products instead of one row at a time: rows are packed 16 to a vector (lane =
// row, q transposed), every score is a lane-wise FMA chain over d with one broadcast cache
// value, softmax runs lane-wise over the keys in order (a key outside a row's unmasked range
// adds nothing: it is skipped by max and contributes exactly 0 to the sum and to p·v), and p·v
// takes 4 rows x 64 outputs per pass. Every row's arithmetic is the same whichever rows share
// its vector or tile, so a row's bits still depend only on its own q, mask row and cache rows.

constexpr int64_t kBlockPositions = 32;  // query positions per task

struct BlockScratch {
  std::vector<float> qt;      // [vectors][D][16] transposed q
  std::vector<float> scores;  // [vectors][keys][16] scores, then probabilities
  std::vector<float> kv;      // widened bf16 cache rows [2][span][D]
  std::vector<int32_t> lo, hi;  // per row: first and last unmasked key (lo > hi: none)
  std::vector<uint8_t> holes;   // per row: masked keys between lo and hi
  std::vector<const float*> q;
  std::vector<float*> out;
  std::vector<const uint8_t*> mrow;
};

// Lane-wise over one vector of 16 rows (only lanes < `lanes` are rows): scores for keys
// [k0, k1) into sc[(j - k0) * 16 + lane].
QEFF_AVX512 void BlockScores(const float* qt, int64_t D, const float* kbase, int64_t k0, int64_t k1, float* sc) {
  constexpr int kKeys = 8;
  int64_t j = k0;
  for (; j + kKeys <= k1; j += kKeys) {
    __m512 acc[kKeys];
    for (auto& a : acc) a = _mm512_setzero_ps();
    const float* kr = kbase + j * D;
    for (int64_t d = 0; d < D; ++d) {
      const __m512 qv = _mm512_loadu_ps(qt + d * 16);
      for (int t = 0; t < kKeys; ++t) acc[t] = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[t * D + d]), acc[t]);
    }
    for (int t = 0; t < kKeys; ++t) _mm512_storeu_ps(sc + (j - k0 + t) * 16, acc[t]);
  }
  for (; j < k1; ++j) {
    __m512 acc = _mm512_setzero_ps();
    const float* kr = kbase + j * D;
    for (int64_t d = 0; d < D; ++d) acc = _mm512_fmadd_ps(_mm512_loadu_ps(qt + d * 16), _mm512_set1_ps(kr[d]), acc);
    _mm512_storeu_ps(sc + (j - k0) * 16, acc);
  }
}

// Score ops, then softmax over each lane's unmasked keys among [k0, k1), in place.
QEFF_AVX512 void BlockSoftmax(const Job& job, const BlockScratch& b, int64_t r0, int64_t lanes, int64_t k0,
                              int64_t k1, float* sc) {
  const int64_t n = (k1 - k0) * 16;
  for (int k = 0; k < job.num_steps; ++k) {
    const __m512 c = _mm512_set1_ps(job.steps[k].c);
    switch (job.steps[k].op) {
      case ScoreOp::kDiv:
        for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(sc + i, _mm512_div_ps(_mm512_loadu_ps(sc + i), c));
        break;
      case ScoreOp::kMul:
        for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(sc + i, _mm512_mul_ps(_mm512_loadu_ps(sc + i), c));
        break;
      case ScoreOp::kTanh:
        TanhArray(sc, sc, n);
        break;
    }
  }
  alignas(64) int32_t lo[16], hi[16];
  bool holes = false;
  for (int l = 0; l < 16; ++l) {
    lo[l] = l < lanes ? b.lo[r0 + l] : 1;
    hi[l] = l < lanes ? b.hi[r0 + l] : 0;
    holes |= l < lanes && b.holes[r0 + l];
  }
  const __m512i vlo = _mm512_load_si512(lo), vhi = _mm512_load_si512(hi);
  auto active = [&](int64_t j) QEFF_AVX512 {
    const __m512i vj = _mm512_set1_epi32(static_cast<int32_t>(j));
    __mmask16 m = _mm512_cmpge_epi32_mask(vj, vlo) & _mm512_cmple_epi32_mask(vj, vhi);
    if (holes) {
      for (int l = 0; l < lanes; ++l) {
        if (b.mrow[r0 + l][j] != 0) m &= static_cast<__mmask16>(~(1u << l));
      }
    }
    return m;
  };
  __m512 mx = _mm512_set1_ps(std::numeric_limits<float>::lowest());
  for (int64_t j = k0; j < k1; ++j) mx = _mm512_mask_max_ps(mx, active(j), mx, _mm512_loadu_ps(sc + (j - k0) * 16));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = k0; j < k1; ++j) {
    float* p = sc + (j - k0) * 16;
    const __m512 e = _mm512_maskz_mov_ps(active(j), Exp16(_mm512_sub_ps(_mm512_loadu_ps(p), mx)));
    sum = _mm512_add_ps(sum, e);
    _mm512_storeu_ps(p, e);
  }
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
  for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(sc + i, _mm512_mul_ps(_mm512_loadu_ps(sc + i), inv));
}

// out[r] = sum over keys [k0, k1) of p[j][lane r] * v[j], for MR rows (lanes l0 ..) and D.
template <int MR>
QEFF_AVX512 void BlockAccumulate(const float* sc, int64_t l0, const float* vbase, int64_t D, int64_t k0,
                                 int64_t j0, int64_t j1, float* const* out) {
  for (int64_t d0 = 0; d0 < D; d0 += 64) {
    __m512 acc[MR][4];
    __mmask16 m[4];
    for (int c = 0; c < 4; ++c) {
      m[c] = TailMask(std::max<int64_t>(0, D - d0 - 16 * c));
      for (int r = 0; r < MR; ++r) acc[r][c] = _mm512_setzero_ps();
    }
    for (int64_t j = j0; j < j1; ++j) {
      const float* vr = vbase + j * D + d0;
      const float* pj = sc + (j - k0) * 16 + l0;
      __m512 v[4];
      for (int c = 0; c < 4; ++c) v[c] = _mm512_maskz_loadu_ps(m[c], vr + 16 * c);
      for (int r = 0; r < MR; ++r) {
        const __m512 p = _mm512_set1_ps(pj[r]);
        for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(p, v[c], acc[r][c]);
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(out[r] + d0 + 16 * c, m[c], acc[r][c]);
  }
}

// One (batch row, kv head, block of kBlockPositions query positions): all their G heads.
QEFF_AVX512 void RunBlockTask(const Job& job, int64_t task, BlockScratch& b) {
  const int64_t blocks = (job.S + kBlockPositions - 1) / kBlockPositions;
  const int64_t s0 = task % blocks * kBlockPositions, s1 = std::min(job.S, s0 + kBlockPositions);
  const int64_t kh = task / blocks % job.Hkv, bi = task / (blocks * job.Hkv);
  const int64_t G = job.G, D = job.D, C = job.C;
  // The rows (position-major, then head) that see at least one key; the others get zeros.
  b.q.clear();
  b.out.clear();
  b.mrow.clear();
  b.lo.clear();
  b.hi.clear();
  b.holes.clear();
  int64_t span_lo = C, span_hi = -1;
  for (int64_t s = s0; s < s1; ++s) {
    const uint8_t* mrow = job.mask + bi * job.mask_b_stride + s * job.mask_s_stride;
    int64_t lo = 0, hi = -1;
    bool holes = false;
    const bool any = UnmaskedRange(mrow, C, &lo, &hi);
    if (any) {
      holes = std::memchr(mrow + lo, 1, static_cast<size_t>(hi - lo + 1)) != nullptr;
      span_lo = std::min(span_lo, lo);
      span_hi = std::max(span_hi, hi);
    }
    for (int64_t g = 0; g < G; ++g) {
      const int64_t h = kh * G + g;
      float* out = job.out + ((bi * job.Hq + h) * job.S + s) * D;
      if (!any) {
        std::fill(out, out + D, 0.0f);
        continue;
      }
      b.q.push_back(job.q + ((bi * job.Hq + h) * job.S + s) * D);
      b.out.push_back(out);
      b.mrow.push_back(mrow);
      b.lo.push_back(static_cast<int32_t>(lo));
      b.hi.push_back(static_cast<int32_t>(hi));
      b.holes.push_back(holes);
    }
  }
  const int64_t rows = static_cast<int64_t>(b.q.size());
  if (rows == 0) return;
  const int64_t vectors = (rows + 15) / 16;
  // Cache rows as floats: the fp32 cache in place, a bf16 one widened once for all rows here.
  const int64_t offset = (RowOf(job, bi) * job.Hkv + kh) * C * D;
  const float* kbase;
  const float* vbase;
  if (job.bf16_cache) {
    const int64_t span = span_hi - span_lo + 1;
    b.kv.resize(static_cast<size_t>(2 * span * D));
    const uint16_t* kc = static_cast<const uint16_t*>(job.k) + offset + span_lo * D;
    const uint16_t* vc = static_cast<const uint16_t*>(job.v) + offset + span_lo * D;
    for (int64_t i = 0; i < span * D; i += 16) {
      const __mmask16 m = TailMask(span * D - i);
      _mm512_mask_storeu_ps(b.kv.data() + i, m, LoadCache(m, kc + i));
      _mm512_mask_storeu_ps(b.kv.data() + span * D + i, m, LoadCache(m, vc + i));
    }
    kbase = b.kv.data() - span_lo * D;
    vbase = b.kv.data() + span * D - span_lo * D;
  } else {
    kbase = static_cast<const float*>(job.k) + offset;
    vbase = static_cast<const float*>(job.v) + offset;
  }
  b.qt.assign(static_cast<size_t>(vectors * D * 16), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d) b.qt[(r / 16 * D + d) * 16 + r % 16] = b.q[r][d];
  for (int64_t v = 0; v < vectors; ++v) {
    const int64_t r0 = v * 16, lanes = std::min<int64_t>(16, rows - r0);
    int64_t k0 = C, k1 = 0;
    for (int64_t r = r0; r < r0 + lanes; ++r) {
      k0 = std::min<int64_t>(k0, b.lo[r]);
      k1 = std::max<int64_t>(k1, b.hi[r] + 1);
    }
    if (static_cast<int64_t>(b.scores.size()) < (k1 - k0) * 16) b.scores.resize(static_cast<size_t>((k1 - k0) * 16));
    float* sc = b.scores.data();
    BlockScores(b.qt.data() + v * D * 16, D, kbase, k0, k1, sc);
    BlockSoftmax(job, b, r0, lanes, k0, k1, sc);
    // p·v over each tile's own key range (probabilities outside a row's range are 0).
    for (int64_t l = 0; l < lanes;) {
      const int64_t mr = std::min<int64_t>(4, lanes - l);
      int64_t j0 = C, j1 = 0;
      for (int64_t r = r0 + l; r < r0 + l + mr; ++r) {
        j0 = std::min<int64_t>(j0, b.lo[r]);
        j1 = std::max<int64_t>(j1, b.hi[r] + 1);
      }
      float* const* out = b.out.data() + r0 + l;
      switch (mr) {
        case 4: BlockAccumulate<4>(sc, l, vbase, D, k0, j0, j1, out); break;
        case 3: BlockAccumulate<3>(sc, l, vbase, D, k0, j0, j1, out); break;
        case 2: BlockAccumulate<2>(sc, l, vbase, D, k0, j0, j1, out); break;
        default: BlockAccumulate<1>(sc, l, vbase, D, k0, j0, j1, out); break;
      }
      l += mr;
    }
  }
}
#pragma GCC diagnostic pop
#endif

template <typename T>
void Scores(const float* const* qg, int64_t G, const T* kbase, const T* vbase, const int32_t* keys, int64_t n,
            int64_t D, float* sc, int64_t stride) {
#if defined(__x86_64__)
  if (UseAvx512()) return ScoresAvx512(qg, G, kbase, vbase, keys, n, D, sc, stride);
#else
  (void)vbase;  // only the vector path prefetches
#endif
  ScoresScalar(qg, G, kbase, keys, n, D, sc, stride);
}

template <typename T>
void Accumulate(const float* p, int64_t stride, int64_t G, const T* vbase, const int32_t* keys, int64_t n,
                int64_t D, float* const* out) {
#if defined(__x86_64__)
  if (UseAvx512()) return AccumulateAvx512(p, stride, G, vbase, keys, n, D, out);
#endif
  AccumulateScalar(p, stride, G, vbase, keys, n, D, out);
}

// The score ops in graph order, then softmax, over one head's n unmasked scores.
void ScoresToProbs(const Job& job, float* s, int64_t n) {
  for (int k = 0; k < job.num_steps; ++k) {
    const float c = job.steps[k].c;
    switch (job.steps[k].op) {
      case ScoreOp::kDiv:
        for (int64_t i = 0; i < n; ++i) s[i] = s[i] / c;
        break;
      case ScoreOp::kMul:
        for (int64_t i = 0; i < n; ++i) s[i] = s[i] * c;
        break;
      case ScoreOp::kTanh:
        TanhArray(s, s, n);
        break;
    }
  }
  float mx = s[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, s[i]);
  const float inv = 1.0f / ExpShiftSum(s, s, n, mx);
  for (int64_t i = 0; i < n; ++i) s[i] *= inv;
}

// One (batch row, kv head, query position): all G query heads of that kv head.
void RunTask(const Job& job, int64_t task, Scratch& scratch) {
  const int64_t s = task % job.S;
  const int64_t kh = (task / job.S) % job.Hkv;
  const int64_t b = task / (job.S * job.Hkv);
  const int64_t G = job.G, D = job.D, C = job.C;
  std::array<const float*, 64> qg_small;
  std::array<float*, 64> out_small;
  const float* const* qg = qg_small.data();
  float* const* out = out_small.data();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = kh * G + g;
    qg_small[g] = job.q + ((b * job.Hq + h) * job.S + s) * D;
    out_small[g] = job.out + ((b * job.Hq + h) * job.S + s) * D;
  }
  // Unmasked keys (mask byte 0), between the first and the last one.
  const uint8_t* mrow = job.mask + b * job.mask_b_stride + s * job.mask_s_stride;
  int64_t lo, hi;
  if (!UnmaskedRange(mrow, C, &lo, &hi)) {
    // Every key masked (a padding row): zeros, never read by the graph's outputs.
    for (int64_t g = 0; g < G; ++g) std::fill(out_small[g], out_small[g] + D, 0.0f);
    return;
  }
  if (static_cast<int64_t>(scratch.keys.size()) < hi - lo + 1) scratch.keys.resize(hi - lo + 1);
  int32_t* keys = scratch.keys.data();
  int64_t n = 0;
  for (int64_t j = lo; j <= hi; ++j) {
    keys[n] = static_cast<int32_t>(j);
    n += mrow[j] == 0;
  }
  const int64_t stride = (n + 15) / 16 * 16;
  if (static_cast<int64_t>(scratch.scores.size()) < G * stride) scratch.scores.resize(G * stride);
  float* sc = scratch.scores.data();
  const int64_t offset = (RowOf(job, b) * job.Hkv + kh) * C * D;
  if (job.bf16_cache) {
    Scores(qg, G, static_cast<const uint16_t*>(job.k) + offset, static_cast<const uint16_t*>(job.v) + offset, keys, n,
           D, sc, stride);
    for (int64_t g = 0; g < G; ++g) ScoresToProbs(job, sc + g * stride, n);
    Accumulate(sc, stride, G, static_cast<const uint16_t*>(job.v) + offset, keys, n, D, out);
  } else {
    Scores(qg, G, static_cast<const float*>(job.k) + offset, static_cast<const float*>(job.v) + offset, keys, n, D,
           sc, stride);
    for (int64_t g = 0; g < G; ++g) ScoresToProbs(job, sc + g * stride, n);
    Accumulate(sc, stride, G, static_cast<const float*>(job.v) + offset, keys, n, D, out);
  }
}

struct AttentionAttrs {
  int64_t groups = 1;
  std::array<ScoreStep, kMaxScoreOps> steps{};
  int num_steps = 0;
};

absl::Status ParseAttention(AttrReader& r, AttentionAttrs* a) {
  a->groups = r.Int("groups", 1);
  if (a->groups < 1 || a->groups > kMaxGroups) {
    return RuleError(absl::StrCat("groups ", a->groups, " not in [1, ", kMaxGroups, "]"));
  }
  const std::vector<int64_t> ops = r.Ints("score_ops");
  const std::vector<int64_t> args = r.Ints("score_args");
  if (ops.size() > static_cast<size_t>(kMaxScoreOps) || args.size() != ops.size()) {
    return RuleError("score_ops and score_args differ in length (or exceed 16)");
  }
  a->num_steps = static_cast<int>(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const int64_t code = ops[i];
    if (code != static_cast<int64_t>(ScoreOp::kDiv) && code != static_cast<int64_t>(ScoreOp::kMul) &&
        code != static_cast<int64_t>(ScoreOp::kTanh)) {
      return RuleError(absl::StrCat("unknown score op ", code));
    }
    if (args[i] < 0 || args[i] > 0xffffffffll) return RuleError(absl::StrCat("score_args[", i, "] is not float bits"));
    const float c = ScoreArgFloat(args[i]);
    // A constant that could turn every score into inf or NaN is no attention scaling.
    if (code != static_cast<int64_t>(ScoreOp::kTanh) && !(std::fabs(c) >= 1e-6f && std::fabs(c) <= 1e6f)) {
      return RuleError(absl::StrCat("score op ", i, " constant ", c, " outside 1e-6 <= |c| <= 1e6"));
    }
    a->steps[i] = {static_cast<ScoreOp>(code), code == static_cast<int64_t>(ScoreOp::kTanh) ? 0.0f : c};
  }
  if (r.Has("mask_value")) {
    const float m = r.Float("mask_value", 0.0f);
    if (!(m <= -1e9f)) return RuleError(absl::StrCat("mask_value ", m, " is not <= -1e9"));
  }
  return absl::OkStatus();
}

absl::Status AttentionRule(const AttentionAttrs& a, const Tensors& in, const Tensors& out) {
  const TensorRef& q = in[0];
  const TensorRef& k = in[1];
  const TensorRef& v = in[2];
  const TensorRef& mask = in[3];
  const TensorRef& o = out[0];
  const bool cache_type_ok = (k.dtype == qeff::v1::F32 || k.dtype == qeff::v1::BF16) && v.dtype == k.dtype;
  if (q.dtype != qeff::v1::F32 || !cache_type_ok ||
      mask.dtype != qeff::v1::BOOL || q.shape.size() != 4 || k.shape.size() != 4 || k.shape != v.shape ||
      mask.shape.size() != 4 || o.shape != q.shape || o.dtype != qeff::v1::F32) {
    return RuleError(absl::StrCat(
        "expects float q [B,Hq,S,D], float or bf16 k/v caches [Bc,Hkv,C,D], bool mask [B|1,1,S|1,C], output like q; got q ",
        ShapeString(q.shape), ", k ", ShapeString(k.shape), ", v ", ShapeString(v.shape), ", mask ",
        ShapeString(mask.shape), ", output ", ShapeString(o.shape)));
  }
  const int64_t B = q.shape[0], Hq = q.shape[1], S = q.shape[2], D = q.shape[3];
  const int64_t Bc = k.shape[0], Hkv = k.shape[1], C = k.shape[2];
  if (Hkv * a.groups != Hq || k.shape[3] != D) {
    return RuleError(absl::StrCat(Hq, " query heads do not fit ", Hkv, " kv heads x groups ", a.groups,
                                  " with head_dim ", D));
  }
  if ((mask.shape[0] != 1 && mask.shape[0] != B) || mask.shape[1] != 1 || (mask.shape[2] != 1 && mask.shape[2] != S) ||
      mask.shape[3] != C) {
    return RuleError(absl::StrCat("mask ", ShapeString(mask.shape), " does not broadcast to [", B, ",1,", S, ",", C, "]"));
  }
  if (C > (int64_t{1} << 30)) return RuleError("ctx_len above 2^30");
  const TensorRef& bidx = in[4];
  if (Present(bidx)) {
    if (auto st = ExpectDType(bidx, "batch_index", {qeff::v1::I64, qeff::v1::I32}); !st.ok()) return st;
    if (bidx.shape.empty() || bidx.shape[0] != B || bidx.numel() != B) {
      return RuleError(absl::StrCat("batch_index must be [", B, ",1], got ", ShapeString(bidx.shape)));
    }
  } else if (Bc != B) {
    return RuleError(absl::StrCat("cache has ", Bc, " rows for batch ", B, " and no batch_index picks them"));
  }
  return absl::OkStatus();
}

absl::Status CachedAttention(const AttentionAttrs& attrs, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const TensorRef& q = in[0];
  const TensorRef& k = in[1];
  const TensorRef& v = in[2];
  const TensorRef& mask = in[3];
  const TensorRef* bidx = in[4].data ? &in[4] : nullptr;
  const TensorRef& o = out[0];
  Job job;
  const int64_t B = q.shape[0];
  job.Hq = q.shape[1];
  job.S = q.shape[2];
  job.D = q.shape[3];
  job.Hkv = k.shape[1];
  job.C = k.shape[2];
  job.G = attrs.groups;
  const int64_t Bc = k.shape[0];
  job.q = q.as<float>();
  job.k = k.data;
  job.v = v.data;
  job.bf16_cache = k.dtype == qeff::v1::BF16;
  job.mask = mask.as<uint8_t>();
  job.batch_index = bidx;
  job.out = o.as<float>();
  job.mask_s_stride = mask.shape[2] == 1 ? 0 : job.C;
  job.mask_b_stride = mask.shape[0] == 1 ? 0 : mask.shape[2] * job.C;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = RowOf(job, b);
    if (r < 0 || r >= Bc) {
      return absl::InvalidArgumentError(absl::StrCat("CachedAttention: batch_index[", b, "] = ", r,
                                                     " is not a KV slot in [0, ", Bc, ")"));
    }
  }
  job.num_steps = attrs.num_steps;
  job.steps = attrs.steps;

#if defined(__x86_64__)
  if (job.S > 1 && UseAvx512()) {
    const int64_t block_tasks = B * job.Hkv * ((job.S + kBlockPositions - 1) / kBlockPositions);
    const Job* jp = &job;
    auto body = [jp](int64_t t0, int64_t t1) {
      static thread_local BlockScratch scratch;
      for (int64_t t = t0; t < t1; ++t) RunBlockTask(*jp, t, scratch);
    };
    if (pool != nullptr && block_tasks > 1) pool->ParallelFor(block_tasks, 1, body);
    else body(0, block_tasks);
    return absl::OkStatus();
  }
#endif
  const int64_t tasks = B * job.Hkv * job.S;
  const Job* jp = &job;
  auto body = [jp](int64_t t0, int64_t t1) {
    static thread_local Scratch scratch;
    for (int64_t t = t0; t < t1; ++t) RunTask(*jp, t, scratch);
  };
  // Size the call by the widest unmasked span of any row. Decode is bound by reading the cache
  // rows (which the weights have evicted from cache), prefill by the arithmetic. Below ~64 KB /
  // 512 KFLOP (a few µs on one core) the pool's hand-off costs about what it saves; above, the
  // other cores help (GPT-2 decode at 2 threads spent 18% of a step in attention on one thread
  // under the former 1 MB / 4 MFLOP bar).
  int64_t span = 0;
  for (int64_t b = 0; b < (job.mask_b_stride ? B : 1); ++b) {
    for (int64_t s = 0; s < (job.mask_s_stride ? job.S : 1); ++s) {
      int64_t lo, hi;
      if (UnmaskedRange(job.mask + b * job.mask_b_stride + s * job.mask_s_stride, job.C, &lo, &hi)) {
        span = std::max(span, hi - lo + 1);
      }
    }
  }
  const int64_t cache_bytes = B * job.Hkv * span * job.D * 2 * static_cast<int64_t>(DTypeSize(k.dtype));
  const int64_t flops = tasks * job.G * span * job.D * 4;
  if (pool != nullptr && tasks > 1 && (cache_bytes >= (int64_t{1} << 16) || flops >= (int64_t{1} << 19))) {
    pool->ParallelFor(tasks, 1, body);
  } else {
    body(0, tasks);
  }
  return absl::OkStatus();
}

}  // namespace

void SetCachedAttentionPortableForTesting(bool portable) { force_portable.store(portable); }

void RegisterAttentionOps(OpRegistry& r) {
  r.Add(MakeOp<AttentionAttrs, ParseAttention, AttentionRule, CachedAttention>("CachedAttention", {5, 5}, {1, 1}));
}

}  // namespace qeff::device
