#include "device/cpu/kernels_quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "device/cpu/kernels_linalg.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace qeff::device {
namespace {

constexpr int64_t kPanel = kLinearPanel;       // outputs per panel
constexpr int64_t kGroupBytes = kPanel * 4;    // one input group (4 int8 or 8 int4 inputs) of a panel
constexpr int32_t kInt8Offset = 128, kInt4Offset = 8;

std::atomic<bool> g_portable{false};
std::atomic<bool> g_emulate_amx{false};
std::atomic<int64_t> g_emulated_dots{0};  // tdpbsud run by EmulatedTiles (tests: the path was taken)

int64_t PanelBytes(bool int4, int64_t kp) { return int4 ? kp / 8 * kGroupBytes : kp / 4 * kGroupBytes; }

// One row of x: per block of 32, scale max|x| / 127, q = round(x / scale) (zeros past K), and
// the block's offset correction -offset * sum(q).
#if defined(__x86_64__)
void QuantizeBlockAvx512(const float* x, int32_t offset, int8_t* q, float* scale, int32_t* corr);
bool HasVnni();
#endif

void QuantizeRow(const float* x, int64_t K, int64_t kp, int32_t offset, int8_t* q, float* scale, int32_t* corr) {
#if defined(__x86_64__)
  const bool vector = HasVnni() && !g_portable;
#endif
  for (int64_t b = 0; b < kp / kQuantBlock; ++b) {
    const int64_t k0 = b * kQuantBlock, k1 = std::min(K, k0 + kQuantBlock);
#if defined(__x86_64__)
    if (vector && k1 - k0 == kQuantBlock) {
      QuantizeBlockAvx512(x + k0, offset, q + k0, scale + b, corr + b);
      continue;
    }
#endif
    float amax = 0.0f;
    for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[k]));
    const float d = amax / 127.0f;
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int64_t k = k0; k < k0 + kQuantBlock; ++k) {
      q[k] = k < k1 ? static_cast<int8_t>(std::nearbyint(x[k] * inv)) : int8_t{0};
      sum += q[k];
    }
    scale[b] = d;
    corr[b] = -offset * sum;
  }
}

// The stored (offset) weight of output j, input k in a panel.
inline int32_t StoredWeight(const uint8_t* panel, bool int4, int64_t j, int64_t k) {
  if (!int4) return panel[k / 4 * kGroupBytes + 4 * j + k % 4];
  const uint8_t byte = panel[k / 8 * kGroupBytes + 4 * j + k % 4];
  return k % 8 < 4 ? byte & 0x0f : byte >> 4;
}

// Portable: the running float sums y[m, j] += block sum · scale, block by block.
void PanelPortable(const QuantizedRows& x, bool int4, const uint8_t* panel, const uint16_t* block_scale, float* y,
                   int64_t N, int64_t cols) {
  const int64_t blocks = QuantBlocks(x.k());
  for (int64_t m = 0; m < x.rows(); ++m) {
    const int8_t* q = x.q(m);
    for (int64_t j = 0; j < cols; ++j) {
      float acc = y[m * N + j];
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t sum = x.offset(m)[b];
        for (int64_t k = b * kQuantBlock; k < (b + 1) * kQuantBlock; ++k) sum += StoredWeight(panel, int4, j, k) * q[k];
        const float s = int4 ? Bf16ToFloat(block_scale[b * kPanel + j]) * x.scale(m)[b] : x.scale(m)[b];
        acc = std::fma(static_cast<float>(sum), s, acc);
      }
      y[m * N + j] = acc;
    }
  }
}

#if defined(__x86_64__)
bool HasVnni() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
}

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as
// uninitialized here (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define QEFF_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

// One full block of 32 as QuantizeRow's loop computes it (x * inv rounded to nearest even, which
// is cvtps2dq's default mode; max ignores NaN the way std::max(amax, v) does): same bytes, scale
// and correction, without a libm call per value. Prefill quantizes every Linear's input rows.
QEFF_VNNI void QuantizeBlockAvx512(const float* x, int32_t offset, int8_t* q, float* scale, int32_t* corr) {
  const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
  const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
  __m512 m = _mm512_max_ps(a0, _mm512_setzero_ps());  // NaN lanes give the second operand
  m = _mm512_max_ps(a1, m);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, m);
  float amax = 0.0f;
  for (float v : lanes) amax = std::max(amax, v);
  const float d = amax / 127.0f;
  const float inv = d > 0.0f ? 1.0f / d : 0.0f;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vinv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vinv));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(q1));
  alignas(64) int32_t sums[16];
  _mm512_store_si512(sums, _mm512_add_epi32(q0, q1));
  int32_t sum = 0;
  for (int32_t v : sums) sum += v;
  *scale = d;
  *corr = -offset * sum;
}

// int4's one-row pass prefetches this many blocks ahead (measured best of 1, 2, 4, 6); int8's
// weights stream as fast without prefetching, except into the next pair of panels.
constexpr int64_t kPrefetchBlocks = 2;

// A hint only: addresses past the end of a panel are harmless.
inline void Prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

QEFF_VNNI inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// 16 int4 block scales (bf16) as floats, exactly.
QEFF_VNNI inline __m512 LoadBlockScales(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Rows m0 .. m0+MR-1 against one panel: per block of 32 inputs, integer accumulators (started
// at the offset correction), then y += float(sum) · scale. MR <= 4: with 6 rows the block's
// closing multiply-adds spill registers (int8 measured 87 GMAC/s at 6 rows, 138 at 4).
// With 1 row a block's 8 dependent vpdpbusd per accumulator bound the speed (latency, not
// throughput: 2 rows ran 1.7x the MACs/s of 1), so that tile keeps two banks of accumulators:
// int8 alternates input groups between them; int4 puts low nibbles in one and the high nibbles,
// masked in place (16 x the value, one instruction fewer than shifting them down), in the other,
// shifted back exactly when the block closes (int4 1.25x, int8 1.05x from cache; with 2 rows
// the second bank cost int8 a quarter). It also keeps its float sums in registers over the
// chunk instead of in y.
template <int MR, bool kInt4>
QEFF_VNNI void PanelTile(const QuantizedRows& x, int64_t m0, const uint8_t* panel, const uint16_t* block_scale,
                         float* y, int64_t N, const __mmask16* mask, int64_t b0, int64_t b1) {
  constexpr bool kTwoBanks = MR == 1;
  constexpr int kBanks = kTwoBanks ? 2 : 1;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 ysum[4];
  if constexpr (MR == 1) {
    for (int v = 0; v < 4; ++v) ysum[v] = _mm512_maskz_loadu_ps(mask[v], y + m0 * N + 16 * v);
  }
  for (int64_t b = b0; b < b1; ++b) {
    __m512i acc[kBanks][MR][4];
    for (int m = 0; m < MR; ++m) {
      const __m512i o = _mm512_set1_epi32(x.offset(m0 + m)[b]);
      for (int v = 0; v < 4; ++v) {
        acc[0][m][v] = o;
        if constexpr (kTwoBanks) acc[1][m][v] = _mm512_setzero_si512();
      }
    }
    if constexpr (!kInt4) {
      for (int g = 0; g < 8; ++g) {
        const int bank = kTwoBanks ? g & 1 : 0;
        const uint8_t* wg = panel + (b * 8 + g) * kGroupBytes;
        __m512i w[4];
        for (int v = 0; v < 4; ++v) w[v] = _mm512_loadu_si512(wg + 64 * v);
        for (int m = 0; m < MR; ++m) {
          const __m512i xb = Broadcast4(x.q(m0 + m) + b * kQuantBlock + 4 * g);
          for (int v = 0; v < 4; ++v) acc[bank][m][v] = _mm512_dpbusd_epi32(acc[bank][m][v], w[v], xb);
        }
      }
    } else {
      for (int c = 0; c < 4; ++c) {
        const uint8_t* wc = panel + (b * 4 + c) * kGroupBytes;
        __m512i xl[MR], xh[MR];
        for (int m = 0; m < MR; ++m) {
          xl[m] = Broadcast4(x.q(m0 + m) + b * kQuantBlock + 8 * c);
          xh[m] = Broadcast4(x.q(m0 + m) + b * kQuantBlock + 8 * c + 4);
        }
        for (int v = 0; v < 4; ++v) {
          const __m512i raw = _mm512_loadu_si512(wc + 64 * v);
          const __m512i lo = _mm512_and_si512(raw, low4);
          if constexpr (kTwoBanks) {
            const __m512i hi16 = _mm512_andnot_si512(low4, raw);  // 16 x the high nibble
            for (int m = 0; m < MR; ++m) {
              acc[0][m][v] = _mm512_dpbusd_epi32(acc[0][m][v], lo, xl[m]);
              acc[1][m][v] = _mm512_dpbusd_epi32(acc[1][m][v], hi16, xh[m]);
            }
          } else {
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
            for (int m = 0; m < MR; ++m) {
              acc[0][m][v] = _mm512_dpbusd_epi32(acc[0][m][v], lo, xl[m]);
              acc[0][m][v] = _mm512_dpbusd_epi32(acc[0][m][v], hi, xh[m]);
            }
          }
        }
      }
    }
    if constexpr (kTwoBanks) {
      for (int m = 0; m < MR; ++m) {
        for (int v = 0; v < 4; ++v) {
          acc[0][m][v] = _mm512_add_epi32(acc[0][m][v], kInt4 ? _mm512_srai_epi32(acc[1][m][v], 4) : acc[1][m][v]);
        }
      }
    }
    for (int v = 0; v < 4; ++v) {
      const __m512 ws = kInt4 ? LoadBlockScales(block_scale + b * kPanel + 16 * v) : _mm512_set1_ps(1.0f);
      for (int m = 0; m < MR; ++m) {
        const __m512 s = kInt4 ? _mm512_mul_ps(ws, _mm512_set1_ps(x.scale(m0 + m)[b])) : _mm512_set1_ps(x.scale(m0 + m)[b]);
        if constexpr (MR == 1) {
          ysum[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[0][m][v]), s, ysum[v]);
        } else {
          float* yp = y + (m0 + m) * N + 16 * v;
          const __m512 sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[0][m][v]), s, _mm512_maskz_loadu_ps(mask[v], yp));
          _mm512_mask_storeu_ps(yp, mask[v], sum);
        }
      }
    }
  }
  if constexpr (MR == 1) {
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(y + m0 * N + 16 * v, mask[v], ysum[v]);
  }
}

template <bool kInt4>
QEFF_VNNI void PanelVnni(const QuantizedRows& x, const uint8_t* panel, const uint16_t* block_scale, float* y,
                         int64_t N, int64_t cols) {
  __mmask16 mask[4];
  PanelColumnMasks(cols, mask);
  // Blocks in chunks whose weights (8 KB of int4, 16 KB of int8) stay in L1 while every tile of
  // rows passes over them; the running sums wait in y.
  constexpr int64_t kRows = 4, kChunk = 8;
  const int64_t blocks = QuantBlocks(x.k());
  for (int64_t b0 = 0; b0 < blocks; b0 += kChunk) {
    const int64_t b1 = std::min(blocks, b0 + kChunk);
    for (int64_t m = 0; m < x.rows(); m += kRows) {
      switch (std::min(kRows, x.rows() - m)) {
        case 1: PanelTile<1, kInt4>(x, m, panel, block_scale, y, N, mask, b0, b1); break;
        case 2: PanelTile<2, kInt4>(x, m, panel, block_scale, y, N, mask, b0, b1); break;
        case 3: PanelTile<3, kInt4>(x, m, panel, block_scale, y, N, mask, b0, b1); break;
        default: PanelTile<4, kInt4>(x, m, panel, block_scale, y, N, mask, b0, b1); break;
      }
    }
  }
}

// One row against two panels at once (decode): two independent weight streams and twice the
// independent accumulator chains of a one-panel pass (measured: a single stream left int8 at
// ~70% of the read bandwidth on one core). Integer block sums are exact and each output's float
// sum runs over the blocks in order, so the result is the same as PanelTile's. `next_pair`: the
// two panels after pb are this call's too, so the last blocks prefetch their first ones.
template <bool kInt4>
QEFF_VNNI void RowPairVnni(const QuantizedRows& x, const uint8_t* pa, const uint8_t* pb, const uint16_t* sa,
                           const uint16_t* sb, float* y, const __mmask16* mask_b, bool next_pair) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const int64_t blocks = QuantBlocks(x.k());
  const int8_t* q = x.q(0);
  // The next pair's panels (read only through prefetches, when `next_pair`).
  const uint8_t* next_a = pb + (pb - pa);
  const uint8_t* next_b = next_a + (pb - pa);
  __m512 ysum[8];
  for (auto& v : ysum) v = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i acc[8];
    const __m512i o = _mm512_set1_epi32(x.offset(0)[b]);
    for (auto& a : acc) a = o;
    if constexpr (!kInt4) {
      // The hardware prefetcher carries int8's streams, but not from one pair into the next:
      // the last blocks fetch the next pair's first ones.
      const int64_t ahead = b + kPrefetchBlocks - blocks;  // >= 0: a block of the next pair
      for (int g = 0; g < 8; ++g) {
        if (next_pair && ahead >= 0) {
          for (int v = 0; v < 4; ++v) {
            Prefetch(next_a + (ahead * 8 + g) * kGroupBytes + 64 * v);
            Prefetch(next_b + (ahead * 8 + g) * kGroupBytes + 64 * v);
          }
        }
        const __m512i xb = Broadcast4(q + b * kQuantBlock + 4 * g);
        const uint8_t* wa = pa + (b * 8 + g) * kGroupBytes;
        const uint8_t* wb = pb + (b * 8 + g) * kGroupBytes;
        for (int v = 0; v < 4; ++v) {
          acc[v] = _mm512_dpbusd_epi32(acc[v], _mm512_loadu_si512(wa + 64 * v), xb);
          acc[4 + v] = _mm512_dpbusd_epi32(acc[4 + v], _mm512_loadu_si512(wb + 64 * v), xb);
        }
      }
    } else {
      // Both panels' weights and block scales, kPrefetchBlocks ahead: without it the scale
      // stream's misses stall the block closes (the stack bench read 35 -> 45 GB/s on two cores).
      const int64_t ahead = b + kPrefetchBlocks;
      // Past a panel's end its stream runs on into the next panel: b's into the next pair's
      // first panel, a's into b (already read), so a's turns to the next pair's second panel.
      const bool wrap = next_pair && ahead >= blocks;
      const uint8_t* pa_ahead = wrap ? next_a : pa;  // next_a + `ahead` blocks is inside next_b
      const uint16_t* sa_ahead = wrap ? sa + 2 * (sb - sa) : sa;
      for (int h = 0; h < 2; ++h) {
        Prefetch(sa_ahead + ahead * kPanel + 32 * h);
        Prefetch(sb + ahead * kPanel + 32 * h);
      }
      for (int c = 0; c < 4; ++c) {
        const __m512i xl = Broadcast4(q + b * kQuantBlock + 8 * c);
        const __m512i xh = Broadcast4(q + b * kQuantBlock + 8 * c + 4);
        for (int v = 0; v < 4; ++v) {
          Prefetch(pa_ahead + (ahead * 4 + c) * kGroupBytes + 64 * v);
          Prefetch(pb + (ahead * 4 + c) * kGroupBytes + 64 * v);
        }
        for (int i = 0; i < 8; ++i) {
          const __m512i raw = _mm512_loadu_si512((i < 4 ? pa : pb) + (b * 4 + c) * kGroupBytes + 64 * (i % 4));
          acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_and_si512(raw, low4), xl);
          acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4), xh);
        }
      }
    }
    const __m512 xs = _mm512_set1_ps(x.scale(0)[b]);
    for (int i = 0; i < 8; ++i) {
      const __m512 s = kInt4 ? _mm512_mul_ps(LoadBlockScales((i < 4 ? sa : sb) + b * kPanel + 16 * (i % 4)), xs) : xs;
      ysum[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), s, ysum[i]);
    }
  }
  for (int i = 0; i < 8; ++i) _mm512_mask_storeu_ps(y + 16 * i, i < 4 ? __mmask16{0xffff} : mask_b[i - 4], ysum[i]);
}

// ---- AMX (Intel Sapphire Rapids and later): prefill's integer block sums on tiles ----------
//
// tdpbsud adds a tile of 16 rows x 32 signed bytes (one block of 16 quantized input rows) times
// a tile of 8 rows x 64 unsigned bytes (those 32 inputs of 16 outputs, 4 per output per row:
// exactly a 64-byte slice of 8 consecutive int8 input groups of a panel, at a stride of 256)
// into 16 x 16 int32 sums: 8192 multiply-adds per instruction. int4 panels are unpacked per
// block into that layout first (low nibbles are inputs 8c..8c+3, high ones 8c+4..8c+7), once
// for every 16 rows that use them. The integer sums are the ones vpdpbusd computes, and each
// block closes with the same fused multiply-add per output, so the results are bit-identical to
// PanelTile's and the portable loop's. Tiles: tmm0-3 the sums of the panel's 4 column groups,
// tmm4 the activations, tmm5/tmm6 the weights (alternating, so a load overlaps the previous dot).

// LDTILECFG's 64-byte operand.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of tmm0..15
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

TileConfig BlockTileConfig() {
  TileConfig c;
  for (int t = 0; t < 4; ++t) c.rows[t] = 16, c.colsb[t] = 64;  // 16 x 16 int32 sums
  c.rows[4] = 16, c.colsb[4] = kQuantBlock;                        // 16 rows x 32 inputs
  for (int t = 5; t < 7; ++t) c.rows[t] = kQuantBlock / 4, c.colsb[t] = 64;  // 8 groups x 16 outputs
  return c;
}

// The instructions themselves. GCC's _tile_* macros paste their tile number into the mnemonic, so
// a template parameter cannot name it; "%c" prints the constant instead. Loads clobber memory so
// the compiler finishes the stores they read (unpacked int4 weights) before them.
struct HardwareTiles {
  static void Configure(const TileConfig& c) { asm volatile("ldtilecfg %0" ::"m"(c) : "memory"); }
  static void Release() { asm volatile("tilerelease" ::: "memory"); }
  template <int T>
  static void Load(const void* p, int64_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
  template <int T>
  static void Zero() { asm volatile("tilezero %%tmm%c0" ::"i"(T)); }
  // tmm C += tmm A (signed bytes) . tmm B (unsigned bytes), in groups of 4.
  template <int C, int A, int B>
  static void DotSignedUnsigned() { asm volatile("tdpbsud %%tmm%c0, %%tmm%c1, %%tmm%c2" ::"i"(B), "i"(A), "i"(C)); }
  template <int T>
  static void Store(void* p, int64_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
};

// The same instructions as the Intel SDM defines them, on per-thread arrays: tests run the AMX
// kernel's data movement on hosts without AMX. Shapes a real tdpbsud would fault on abort.
struct EmulatedTiles {
  struct State {
    TileConfig config;
    uint8_t tile[8][16][64];
  };
  static State& state() {
    static thread_local State s;
    return s;
  }
  static void Configure(const TileConfig& c) {
    state().config = c;
    std::memset(state().tile, 0, sizeof(state().tile));
  }
  static void Release() { Configure(TileConfig{}); }
  template <int T>
  static void Load(const void* p, int64_t stride) {
    State& s = state();
    for (int r = 0; r < 16; ++r) {
      for (int c = 0; c < 64; ++c) {
        const bool in = r < s.config.rows[T] && c < s.config.colsb[T];
        s.tile[T][r][c] = in ? static_cast<const uint8_t*>(p)[r * stride + c] : 0;
      }
    }
  }
  template <int T>
  static void Zero() { std::memset(state().tile[T], 0, sizeof(state().tile[T])); }
  template <int C, int A, int B>
  static void DotSignedUnsigned() {
    State& s = state();
    const TileConfig& c = s.config;
    if (c.rows[C] != c.rows[A] || c.colsb[A] / 4 != c.rows[B] || c.colsb[B] != c.colsb[C] || c.colsb[A] % 4 != 0 ||
        c.colsb[C] % 4 != 0) {
      std::fprintf(stderr, "EmulatedTiles: tdpbsud on mismatched tile shapes (a real one raises #UD)\n");
      std::abort();
    }
    g_emulated_dots.fetch_add(1, std::memory_order_relaxed);
    for (int m = 0; m < c.rows[C]; ++m) {
      for (int n = 0; n < c.colsb[C] / 4; ++n) {
        int32_t sum;
        std::memcpy(&sum, &s.tile[C][m][4 * n], 4);
        for (int k = 0; k < c.colsb[A] / 4; ++k) {
          for (int i = 0; i < 4; ++i) sum += int32_t{static_cast<int8_t>(s.tile[A][m][4 * k + i])} * s.tile[B][k][4 * n + i];
        }
        std::memcpy(&s.tile[C][m][4 * n], &sum, 4);
      }
    }
  }
  template <int T>
  static void Store(void* p, int64_t stride) {
    const State& s = state();
    for (int r = 0; r < s.config.rows[T]; ++r) std::memcpy(static_cast<uint8_t*>(p) + r * stride, s.tile[T][r], s.config.colsb[T]);
  }
};

// AMX-TILE and AMX-INT8 in cpuid, their state enabled by the OS (XCR0 bits 17-18), Linux's
// permission to use tile data (ARCH_REQ_XCOMP_PERM, once per process, Linux >= 5.16) and
// VNNI's AVX-512 for the block closes; QEFF_CPU_AMX=0 turns it off (A/B runs on such a host).
bool HasAmxInt8() {
  static const bool has = [] {
    const char* env = std::getenv("QEFF_CPU_AMX");
    if (env != nullptr && std::strcmp(env, "0") == 0) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!HasVnni() || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE: xgetbv exists
    uint32_t xcr0_lo = 0, xcr0_hi = 0;
    asm volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtileData) == 0;
  }();
  return has;
}

// Column group C's block sums: tmm C = tmm4 (the activations) . the weights, loaded into tmm B.
template <class Tiles, int C, int B>
inline void ColumnGroupSums(const uint8_t* weights, int64_t stride) {
  Tiles::template Zero<C>();
  Tiles::template Load<B>(weights, stride);
  Tiles::template DotSignedUnsigned<C, 4, B>();
}

// Prefill rows from this many on take the tiles (a tile holds 16 rows; fewer leave it part empty).
constexpr int64_t kAmxMinRows = 16;

// All rows against one panel, in chunks of 8 blocks (16 KB of int8 weights stay in L1 while every
// 16 rows pass over them); the running float sums wait in y, as in PanelVnni. The caller has
// configured the tiles (BlockTileConfig) on this thread.
template <class Tiles, bool kInt4>
QEFF_VNNI void PanelAmx(const QuantizedRows& x, const uint8_t* panel, const uint16_t* block_scale, float* y, int64_t N,
                        int64_t cols) {
  __mmask16 mask[4];
  PanelColumnMasks(cols, mask);
  constexpr int64_t kChunk = 8, kTileBytes = kQuantBlock / 4 * 64;
  alignas(64) int32_t sums[16][kPanel];
  alignas(64) uint8_t unpacked[kInt4 ? kChunk : 1][4][kTileBytes];  // int4: [block][column group]
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const int64_t blocks = QuantBlocks(x.k()), kp = QuantPaddedK(x.k()), M = x.rows();
  for (int64_t b0 = 0; b0 < blocks; b0 += kChunk) {
    const int64_t b1 = std::min(blocks, b0 + kChunk);
    if constexpr (kInt4) {
      for (int64_t b = b0; b < b1; ++b) {
        for (int c = 0; c < 4; ++c) {
          for (int t = 0; t < 4; ++t) {
            const __m512i raw = _mm512_loadu_si512(panel + (b * 4 + c) * kGroupBytes + 64 * t);
            uint8_t* tile = unpacked[b - b0][t];
            _mm512_store_si512(tile + 64 * (2 * c), _mm512_and_si512(raw, low4));
            _mm512_store_si512(tile + 64 * (2 * c + 1), _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4));
          }
        }
      }
    }
    for (int64_t m0 = 0; m0 < M; m0 += 16) {
      const int64_t rows = std::min<int64_t>(16, M - m0);
      for (int64_t b = b0; b < b1; ++b) {
        // Column group t's weights for block b, and the stride between their input groups.
        auto weights = [&](int t) -> const uint8_t* {
          return kInt4 ? unpacked[b - b0][t] : panel + b * 8 * kGroupBytes + 64 * t;
        };
        constexpr int64_t kStride = kInt4 ? 64 : kGroupBytes;
        Tiles::template Load<4>(x.q(m0) + b * kQuantBlock, kp);  // QuantizedRows pads rows to 16
        ColumnGroupSums<Tiles, 0, 5>(weights(0), kStride);
        ColumnGroupSums<Tiles, 1, 6>(weights(1), kStride);
        ColumnGroupSums<Tiles, 2, 5>(weights(2), kStride);
        ColumnGroupSums<Tiles, 3, 6>(weights(3), kStride);
        Tiles::template Store<0>(&sums[0][0], sizeof(sums[0]));
        Tiles::template Store<1>(&sums[0][16], sizeof(sums[0]));
        Tiles::template Store<2>(&sums[0][32], sizeof(sums[0]));
        Tiles::template Store<3>(&sums[0][48], sizeof(sums[0]));
        // PanelTile's block close: y += float(offset + sum) * scale.
        for (int v = 0; v < 4; ++v) {
          const __m512 ws = kInt4 ? LoadBlockScales(block_scale + b * kPanel + 16 * v) : _mm512_set1_ps(1.0f);
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t m = m0 + r;
            const __m512i acc = _mm512_add_epi32(_mm512_load_si512(&sums[r][16 * v]), _mm512_set1_epi32(x.offset(m)[b]));
            const __m512 xs = _mm512_set1_ps(x.scale(m)[b]);
            const __m512 s = kInt4 ? _mm512_mul_ps(ws, xs) : xs;
            float* yp = y + m * N + 16 * v;
            _mm512_mask_storeu_ps(yp, mask[v], _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, _mm512_maskz_loadu_ps(mask[v], yp)));
          }
        }
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

Shape QuantWeightShape(DType weights, int64_t N, int64_t K) {
  const int64_t kp = QuantPaddedK(K);
  return {LinearPanels(N), weights == qeff::v1::I4 ? kp / 8 : kp / 4, kGroupBytes};
}

Shape QuantScaleShape(DType weights, int64_t N, int64_t K) {
  if (weights == qeff::v1::I4) return {LinearPanels(N), QuantBlocks(K), kPanel};
  return {N};
}

void SetQuantLinearPortableForTesting(bool portable) { g_portable = portable; }
void SetQuantLinearEmulatedAmxForTesting(bool emulate) { g_emulate_amx = emulate; }
int64_t QuantLinearEmulatedAmxDotsForTesting() { return g_emulated_dots.load(); }

void QuantizedRows::Quantize(const float* x, int64_t M, int64_t K, DType weights, ThreadPool* pool) {
  M_ = M;
  K_ = K;
  kp_ = QuantPaddedK(K);
  blocks_ = QuantBlocks(K);
  weights_ = weights;
  // Whole tiles of 16 rows: the AMX kernel loads 16 rows at a time and drops the padding's sums.
  q_.resize(static_cast<size_t>((M + 15) / 16 * 16 * kp_));
  scale_.resize(static_cast<size_t>(M * blocks_));
  offset_.resize(static_cast<size_t>(M * blocks_));
  const int32_t offset = weights == qeff::v1::I4 ? kInt4Offset : kInt8Offset;
  auto rows = [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      QuantizeRow(x + m * K, K, kp_, offset, q_.data() + m * kp_, scale_.data() + m * blocks_,
                  offset_.data() + m * blocks_);
    }
  };
  // Prefill quantizes hundreds of rows per Linear: not on one thread while the other waits.
  if (pool != nullptr && M * K >= (1 << 16)) pool->ParallelFor(M, 4, rows);
  else rows(0, M);
}

void QuantLinearPanels(const QuantizedRows& x, const void* w, const void* scale, const float* bias, float* y,
                       int64_t N, int64_t p0, int64_t p1) {
  const bool int4 = x.weights() == qeff::v1::I4;
  const int64_t M = x.rows(), kp = QuantPaddedK(x.k()), blocks = QuantBlocks(x.k());
#if defined(__x86_64__)
  const bool vnni = HasVnni() && !g_portable;
  // Tiles where the CPU has them (or their emulation, in tests), for batches of rows.
  const bool emulate_amx = g_emulate_amx && HasVnni();
  const bool amx = M >= kAmxMinRows && (emulate_amx || (vnni && HasAmxInt8()));
  if (amx) {
    if (emulate_amx) EmulatedTiles::Configure(BlockTileConfig());
    else HardwareTiles::Configure(BlockTileConfig());
  }
#else
  const bool vnni = false, amx = false;
#endif
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = static_cast<const uint8_t*>(w) + p * PanelBytes(int4, kp);
    const uint16_t* block_scale = int4 ? static_cast<const uint16_t*>(scale) + p * blocks * kPanel : nullptr;
    const int64_t c0 = p * kPanel;
    int64_t cols = std::min(kPanel, N - c0);
    float* yp = y + c0;
    // One row (decode): two panels per pass while a second one is in range.
    const bool pair = vnni && M == 1 && p + 1 < p1;
    if (pair) {
#if defined(__x86_64__)
      __mmask16 mask_b[4];
      PanelColumnMasks(N - c0 - kPanel, mask_b);
      const uint8_t* next = panel + PanelBytes(int4, kp);
      // The next pair is this call's too: its first blocks can be fetched while this one ends.
      const bool next_pair = p + 3 < p1;
      if (int4) RowPairVnni<true>(x, panel, next, block_scale, block_scale + blocks * kPanel, yp, mask_b, next_pair);
      else RowPairVnni<false>(x, panel, next, nullptr, nullptr, yp, mask_b, next_pair);
#endif
      cols = std::min(2 * kPanel, N - c0);
    } else {
      for (int64_t m = 0; m < M; ++m) std::fill_n(yp + m * N, cols, 0.0f);
#if defined(__x86_64__)
      if (amx && emulate_amx) {
        if (int4) PanelAmx<EmulatedTiles, true>(x, panel, block_scale, yp, N, cols);
        else PanelAmx<EmulatedTiles, false>(x, panel, block_scale, yp, N, cols);
      } else if (amx) {
        if (int4) PanelAmx<HardwareTiles, true>(x, panel, block_scale, yp, N, cols);
        else PanelAmx<HardwareTiles, false>(x, panel, block_scale, yp, N, cols);
      } else if (vnni) {
        if (int4) PanelVnni<true>(x, panel, block_scale, yp, N, cols);
        else PanelVnni<false>(x, panel, block_scale, yp, N, cols);
      } else {
        PanelPortable(x, int4, panel, block_scale, yp, N, cols);
      }
#else
      PanelPortable(x, int4, panel, block_scale, yp, N, cols);
#endif
    }
    // int8's per-output scale and the bias, once per output.
    const float* col_scale = int4 ? nullptr : static_cast<const float*>(scale) + c0;
    for (int64_t m = 0; m < M; ++m) {
      float* row = yp + m * N;
      for (int64_t j = 0; j < cols; ++j) row[j] = row[j] * (col_scale ? col_scale[j] : 1.0f) + (bias ? bias[c0 + j] : 0.0f);
    }
    if (pair) ++p;
  }
#if defined(__x86_64__)
  if (amx) {  // gives the tile state back, so the OS stops saving it on context switches
    if (emulate_amx) EmulatedTiles::Release();
    else HardwareTiles::Release();
  }
#endif
}

void QuantLinearReference(const float* x, int64_t M, int64_t K, const int8_t* w, const float* scale, bool per_block,
                          const float* bias, float* y, int64_t N) {
  const int64_t kp = QuantPaddedK(K), blocks = QuantBlocks(K);
  std::vector<int8_t> q(static_cast<size_t>(kp));
  std::vector<float> dx(static_cast<size_t>(blocks));
  std::vector<int32_t> unused(static_cast<size_t>(blocks));
  for (int64_t m = 0; m < M; ++m) {
    QuantizeRow(x + m * K, K, kp, 0, q.data(), dx.data(), unused.data());
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t sum = 0;
        for (int64_t k = b * kQuantBlock; k < std::min(K, (b + 1) * kQuantBlock); ++k) sum += int64_t{w[n * K + k]} * q[k];
        acc += static_cast<double>(sum) * dx[b] * (per_block ? scale[n * blocks + b] : 1.0);
      }
      y[m * N + n] = static_cast<float>(acc * (per_block ? 1.0 : scale[n]) + (bias ? bias[n] : 0.0f));
    }
  }
}

}  // namespace qeff::device
