// The cpu kernels for continuous batching (CtxScatterCB / CtxGatherCB) and the fused
// CachedAttention against plain reference implementations, on odd shapes: head_dim not a
// multiple of 16, ctx 1..70, seq 1..9, 1..4 query heads per kv head, with and without
// batch_index, causal / sliding-window / holed masks, padding rows, score ops incl. soft-cap.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "device/cpu/kernels.h"
#include "device/cpu/thread_pool.h"

namespace qeff::device {
namespace {

using qeff::v1::Op;

TensorRef Ref(std::vector<float>& v, Shape s) { return {v.data(), qeff::v1::F32, std::move(s)}; }
TensorRef Ref(std::vector<int64_t>& v, Shape s) { return {v.data(), qeff::v1::I64, std::move(s)}; }
TensorRef Ref(std::vector<uint8_t>& v, Shape s) { return {v.data(), qeff::v1::BOOL, std::move(s)}; }

std::vector<float> Random(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Op MakeOp(const std::string& type) {
  Op op;
  op.set_type(type);
  return op;
}

// ---- CtxScatterCB / CtxGatherCB --------------------------------------------------------------

TEST(CtxCBKernels, ScatterAndGatherMatchReference) {
  std::mt19937 rng(1);
  const int64_t FBS = 4, H = 3, C = 11, D = 5, B = 3, S = 4;
  auto data = Random(rng, FBS * H * C * D);
  auto upd = Random(rng, B * H * S * D);
  std::vector<int64_t> bidx = {2, 0, 3};
  std::vector<int64_t> pos = {0, 1, 2, 3, 7, 8, -1, -1, 10, 4, 5, -1};
  std::vector<float> out(data.size());
  ASSERT_TRUE(RunKernel(MakeOp("CtxScatterCB"),
                        {Ref(data, {FBS, H, C, D}), Ref(bidx, {B, 1}), Ref(pos, {B, S}), Ref(upd, {B, H, S, D})},
                        {Ref(out, {FBS, H, C, D})}, nullptr)
                  .ok());
  std::vector<float> want = data;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t p = pos[b * S + s];
      if (p < 0) continue;  // padding: dropped
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < D; ++d)
          want[((bidx[b] * H + h) * C + p) * D + d] = upd[((b * H + h) * S + s) * D + d];
    }
  EXPECT_EQ(out, want);

  // In place (the retained-state case): same result.
  std::vector<float> inplace = data;
  ASSERT_TRUE(RunKernel(MakeOp("CtxScatterCB"),
                        {Ref(inplace, {FBS, H, C, D}), Ref(bidx, {B, 1}), Ref(pos, {B, S}), Ref(upd, {B, H, S, D})},
                        {Ref(inplace, {FBS, H, C, D})}, nullptr)
                  .ok());
  EXPECT_EQ(inplace, want);

  // Gather rows batch_index[b] at arbitrary slots.
  std::vector<int64_t> idx = {10, 0, 3, 3, 9};
  const int64_t L = static_cast<int64_t>(idx.size());
  std::vector<float> g(B * H * L * D);
  ASSERT_TRUE(RunKernel(MakeOp("CtxGatherCB"), {Ref(want, {FBS, H, C, D}), Ref(bidx, {B, 1}), Ref(idx, {1, 1, L})},
                        {Ref(g, {B, H, L, D})}, nullptr)
                  .ok());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < D; ++d)
          ASSERT_EQ(g[((b * H + h) * L + l) * D + d], want[((bidx[b] * H + h) * C + idx[l]) * D + d]);
}

TEST(CtxCBKernels, OutOfRangeBatchIndexIsInvalidArgumentAndWritesNothing) {
  std::mt19937 rng(2);
  const int64_t FBS = 2, H = 2, C = 4, D = 3;
  auto data = Random(rng, FBS * H * C * D);
  auto upd = Random(rng, 2 * H * 1 * D);
  std::vector<int64_t> pos = {1, 2};
  for (int64_t bad : {int64_t{2}, int64_t{-1}, int64_t{1} << 40}) {
    std::vector<int64_t> bidx = {0, bad};
    std::vector<float> state = data;
    absl::Status st = RunKernel(MakeOp("CtxScatterCB"),
                                {Ref(state, {FBS, H, C, D}), Ref(bidx, {2, 1}), Ref(pos, {2, 1}),
                                 Ref(upd, {2, H, 1, D})},
                                {Ref(state, {FBS, H, C, D})}, nullptr);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(state, data) << "row 0 must not be written when row 1 is invalid";
    std::vector<int64_t> idx = {0, 1, 2, 3};
    std::vector<float> g(2 * H * C * D);
    st = RunKernel(MakeOp("CtxGatherCB"), {Ref(data, {FBS, H, C, D}), Ref(bidx, {2, 1}), Ref(idx, {1, 1, C})},
                   {Ref(g, {2, H, C, D})}, nullptr);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // Gather index outside the cache.
  std::vector<int64_t> bidx = {0};
  std::vector<int64_t> idx = {4};
  std::vector<float> g(H * D);
  EXPECT_EQ(RunKernel(MakeOp("CtxGatherCB"), {Ref(data, {FBS, H, C, D}), Ref(bidx, {1, 1}), Ref(idx, {1, 1, 1})},
                      {Ref(g, {1, H, 1, D})}, nullptr)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- CachedAttention ---------------------------------------------------------------------------

struct Case {
  int64_t B, Hkv, G, S, D, C;
  bool cb;          // batch_index input, cache with extra rows
  bool mask_batch;  // mask [B,1,S,C] (else [1,1,S,C])
  int mask_kind;    // 0 causal, 1 sliding window, 2 random holes
  int score_kind;   // 0 none, 1 Div, 2 Div Div, 3 Mul + soft-cap, 4 Div + soft-cap
};

std::vector<std::pair<ScoreOp, float>> ScoreSteps(int kind, int64_t D) {
  const float sq = std::sqrt(static_cast<float>(D));
  switch (kind) {
    case 1: return {{ScoreOp::kDiv, sq}};
    case 2: return {{ScoreOp::kDiv, sq}, {ScoreOp::kDiv, 3.0f}};
    case 3: return {{ScoreOp::kMul, 0.25f}, {ScoreOp::kDiv, 5.0f}, {ScoreOp::kTanh, 0}, {ScoreOp::kMul, 5.0f}};
    case 4: return {{ScoreOp::kDiv, sq}, {ScoreOp::kDiv, 2.0f}, {ScoreOp::kTanh, 0}, {ScoreOp::kMul, 2.0f}};
    default: return {};
  }
}

Op AttentionOp(int64_t G, const std::vector<std::pair<ScoreOp, float>>& steps) {
  Op op = MakeOp("CachedAttention");
  SetAttrInt(op, "groups", G);
  std::vector<int64_t> codes, args;
  for (const auto& [o, c] : steps) {
    codes.push_back(static_cast<int64_t>(o));
    args.push_back(ScoreArgBits(c));
  }
  SetAttrInts(op, "score_ops", codes);
  SetAttrInts(op, "score_args", args);
  SetAttrFloat(op, "mask_value", std::numeric_limits<float>::lowest());
  return op;
}

// The unfused graph: q·kᵀ, score ops, Where(mask, lowest), softmax over all C, ·v; in double
// except the score ops (float, as the graph computes them).
std::vector<float> Reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                             const std::vector<float>& v, const std::vector<uint8_t>& mask,
                             const std::vector<int64_t>& rows, const std::vector<std::pair<ScoreOp, float>>& steps,
                             std::vector<bool>* empty_rows) {
  const int64_t Hq = c.Hkv * c.G;
  std::vector<float> out(c.B * Hq * c.S * c.D);
  empty_rows->assign(c.B * Hq * c.S, false);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t s = 0; s < c.S; ++s) {
        const uint8_t* m = mask.data() + ((c.mask_batch ? b : 0) * c.S + s) * c.C;
        const float* qr = q.data() + ((b * Hq + h) * c.S + s) * c.D;
        const int64_t base = (rows[b] * c.Hkv + h / c.G) * c.C;
        std::vector<double> sc(c.C);
        double mx = -INFINITY;
        bool any = false;
        for (int64_t j = 0; j < c.C; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d) dot += static_cast<double>(qr[d]) * k[(base + j) * c.D + d];
          float f = static_cast<float>(dot);
          for (const auto& [o, a] : steps) f = o == ScoreOp::kDiv ? f / a : o == ScoreOp::kMul ? f * a : std::tanh(f);
          sc[j] = m[j] ? std::numeric_limits<float>::lowest() : f;
          any |= !m[j];
          mx = std::max(mx, sc[j]);
        }
        (*empty_rows)[(b * Hq + h) * c.S + s] = !any;
        double sum = 0;
        for (int64_t j = 0; j < c.C; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
        float* o = out.data() + ((b * Hq + h) * c.S + s) * c.D;
        for (int64_t d = 0; d < c.D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < c.C; ++j) acc += sc[j] / sum * v[(base + j) * c.D + d];
          o[d] = static_cast<float>(acc);
        }
      }
  return out;
}

struct Inputs {
  std::vector<float> q, k, v;
  std::vector<uint8_t> mask;
  std::vector<int64_t> bidx, rows;
  std::vector<int64_t> pos;  // [B,S]
  int64_t Bc;
};

Inputs MakeInputs(const Case& c, std::mt19937& rng) {
  Inputs in;
  const int64_t Hq = c.Hkv * c.G;
  in.Bc = c.cb ? c.B + 2 : c.B;
  in.q = Random(rng, c.B * Hq * c.S * c.D);
  in.k = Random(rng, in.Bc * c.Hkv * c.C * c.D);
  in.v = Random(rng, in.Bc * c.Hkv * c.C * c.D);
  in.rows.resize(c.B);
  std::vector<int64_t> perm(in.Bc);
  for (int64_t i = 0; i < in.Bc; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t b = 0; b < c.B; ++b) in.rows[b] = c.cb ? perm[b] : b;
  if (c.cb) in.bidx = in.rows;
  // Positions: a start per row, consecutive, the last few may be padding (-1).
  in.pos.resize(c.B * c.S);
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t start = std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(0, c.C - c.S))(rng);
    const int64_t pads = std::uniform_int_distribution<int64_t>(0, c.S)(rng) == 0 ? c.S : (rng() % 3 == 0 ? 1 : 0);
    for (int64_t s = 0; s < c.S; ++s) in.pos[b * c.S + s] = s >= c.S - pads ? -1 : std::min(start + s, c.C - 1);
  }
  const int64_t Bm = c.mask_batch ? c.B : 1;
  in.mask.assign(Bm * c.S * c.C, 1);
  const int64_t window = 1 + static_cast<int64_t>(rng() % 6);
  for (int64_t b = 0; b < Bm; ++b)
    for (int64_t s = 0; s < c.S; ++s)
      for (int64_t j = 0; j < c.C; ++j) {
        const int64_t p = in.pos[b * c.S + s];
        bool masked = j > p;  // p = -1: every key
        if (c.mask_kind == 1) masked |= p - j >= window;
        if (c.mask_kind == 2 && !masked && p >= 0 && j != p) masked = rng() % 3 == 0;
        in.mask[(b * c.S + s) * c.C + j] = masked;
      }
  return in;
}

absl::Status RunCase(const Case& c, Inputs& in, const Op& op, std::vector<float>& out, ThreadPool* pool) {
  const int64_t Hq = c.Hkv * c.G;
  out.assign(c.B * Hq * c.S * c.D, std::numeric_limits<float>::quiet_NaN());
  std::vector<TensorRef> ins = {Ref(in.q, {c.B, Hq, c.S, c.D}), Ref(in.k, {in.Bc, c.Hkv, c.C, c.D}),
                                Ref(in.v, {in.Bc, c.Hkv, c.C, c.D}),
                                Ref(in.mask, {c.mask_batch ? c.B : 1, 1, c.S, c.C}),
                                c.cb ? Ref(in.bidx, {c.B, 1}) : TensorRef{}};
  return RunKernel(op, ins, {Ref(out, {c.B, Hq, c.S, c.D})}, pool);
}

class CachedAttentionKernel : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { SetCachedAttentionPortableForTesting(GetParam()); }
  void TearDown() override { SetCachedAttentionPortableForTesting(false); }
};

TEST_P(CachedAttentionKernel, MatchesReferenceOnOddShapes) {
  std::mt19937 rng(42);
  ThreadPool pool(3);
  const int64_t dims[] = {1, 5, 16, 23, 40, 64, 72, 130};
  int checked = 0, empty = 0;
  for (int iter = 0; iter < 400; ++iter) {
    Case c;
    c.B = 1 + rng() % 3;
    c.Hkv = 1 + rng() % 3;
    c.G = 1 + rng() % 4;
    c.S = 1 + rng() % 9;
    c.D = dims[rng() % 8];
    c.C = 1 + rng() % 70;
    c.cb = rng() % 2;
    c.mask_batch = rng() % 4 != 0;
    c.mask_kind = rng() % 3;
    c.score_kind = rng() % 5;
    Inputs in = MakeInputs(c, rng);
    const auto steps = ScoreSteps(c.score_kind, c.D);
    const Op op = AttentionOp(c.G, steps);
    std::vector<float> got, got_pool;
    ASSERT_TRUE(RunCase(c, in, op, got, nullptr).ok());
    ASSERT_TRUE(RunCase(c, in, op, got_pool, &pool).ok());
    ASSERT_EQ(0, std::memcmp(got.data(), got_pool.data(), got.size() * sizeof(float)))
        << "threads changed the result";
    std::vector<bool> empty_rows;
    const auto want = Reference(c, in.q, in.k, in.v, in.mask, in.rows, steps, &empty_rows);
    for (size_t r = 0; r < empty_rows.size(); ++r) {
      for (int64_t d = 0; d < c.D; ++d) {
        const float g = got[r * c.D + d];
        if (empty_rows[r]) {
          ASSERT_EQ(g, 0.0f) << "fully masked rows give zeros";
          continue;
        }
        ASSERT_NEAR(g, want[r * c.D + d], 2e-5 + 2e-5 * std::fabs(want[r * c.D + d]))
            << "iter " << iter << " B=" << c.B << " Hkv=" << c.Hkv << " G=" << c.G << " S=" << c.S << " D=" << c.D
            << " C=" << c.C << " cb=" << c.cb << " mask=" << c.mask_kind << " ops=" << c.score_kind << " row " << r;
      }
      ++(empty_rows[r] ? empty : checked);
    }
  }
  EXPECT_GT(checked, 1000);
  EXPECT_GT(empty, 10);
}

// A row's bits depend only on its own q, mask row and cache rows: not on the batch, the other
// rows, ctx_len or which cache slot holds it (continuous batching = running alone).
TEST_P(CachedAttentionKernel, RowResultIndependentOfBatchAndContextLength) {
  std::mt19937 rng(7);
  ThreadPool pool(2);
  for (int iter = 0; iter < 40; ++iter) {
    Case c{3, 2, 1 + static_cast<int64_t>(rng() % 4), 1 + static_cast<int64_t>(rng() % 5), 23 + static_cast<int64_t>(rng() % 50),
           20 + static_cast<int64_t>(rng() % 40), true, true, static_cast<int>(rng() % 3), static_cast<int>(rng() % 5)};
    Inputs in = MakeInputs(c, rng);
    const Op op = AttentionOp(c.G, ScoreSteps(c.score_kind, c.D));
    std::vector<float> all;
    ASSERT_TRUE(RunCase(c, in, op, all, &pool).ok());
    // Row 1 alone, its slot moved to row 0 of a cache with 7 more (masked) slots.
    Case a = c;
    a.B = 1;
    a.C = c.C + 7;
    Inputs one;
    one.Bc = 1;
    one.rows = {0};
    one.bidx = {0};
    const int64_t Hq = c.Hkv * c.G;
    const int64_t qrow = Hq * c.S * c.D;
    one.q.assign(in.q.begin() + qrow, in.q.begin() + 2 * qrow);
    one.k.assign(c.Hkv * a.C * c.D, 100.0f);  // garbage in the extra slots: masked, never read
    one.v.assign(c.Hkv * a.C * c.D, -100.0f);
    for (int64_t h = 0; h < c.Hkv; ++h)
      for (int64_t j = 0; j < c.C; ++j)
        for (int64_t d = 0; d < c.D; ++d) {
          one.k[(h * a.C + j) * c.D + d] = in.k[((in.rows[1] * c.Hkv + h) * c.C + j) * c.D + d];
          one.v[(h * a.C + j) * c.D + d] = in.v[((in.rows[1] * c.Hkv + h) * c.C + j) * c.D + d];
        }
    one.mask.assign(c.S * a.C, 1);
    for (int64_t s = 0; s < c.S; ++s)
      for (int64_t j = 0; j < c.C; ++j) one.mask[s * a.C + j] = in.mask[(1 * c.S + s) * c.C + j];
    std::vector<float> alone;
    ASSERT_TRUE(RunCase(a, one, op, alone, nullptr).ok());
    ASSERT_EQ(0, std::memcmp(alone.data(), all.data() + qrow, qrow * sizeof(float))) << "iter " << iter;
  }
}

// Calls big enough to go to the pool (a long decode, a prefill chunk): same bits as one thread.
TEST_P(CachedAttentionKernel, PoolGivesTheSameBitsOnLargeCalls) {
  std::mt19937 rng(11);
  ThreadPool pool(3);
  for (const Case& c : {Case{2, 4, 2, 1, 64, 2048, true, true, 0, 1}, Case{1, 3, 3, 24, 80, 600, false, true, 1, 3}}) {
    Inputs in = MakeInputs(c, rng);
    // Rows start late in the context so the unmasked spans are long.
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = 0; s < c.S; ++s)
        for (int64_t j = 0; j < c.C; ++j) in.mask[(b * c.S + s) * c.C + j] = j > c.C - c.S + s;
    const auto steps = ScoreSteps(c.score_kind, c.D);
    const Op op = AttentionOp(c.G, steps);
    std::vector<float> one, many;
    ASSERT_TRUE(RunCase(c, in, op, one, nullptr).ok());
    ASSERT_TRUE(RunCase(c, in, op, many, &pool).ok());
    ASSERT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float)));
    std::vector<bool> empty_rows;
    const auto want = Reference(c, in.q, in.k, in.v, in.mask, in.rows, steps, &empty_rows);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(many[i], want[i], 2e-5 + 2e-5 * std::fabs(want[i])) << i;
  }
}

// Long prefill calls (more query positions than one task block, more rows than one vector,
// every mask kind, head_dim above 64) match the reference; and a row's bits do not depend on
// the other positions of its call: a chunk of positions run alone gives the same bits as in the
// whole prompt (chunked prefill = one-shot prefill).
TEST_P(CachedAttentionKernel, LongPrefillMatchesReferenceAndChunksGiveTheSameBits) {
  std::mt19937 rng(13);
  ThreadPool pool(2);
  for (const Case& c : {Case{1, 2, 3, 70, 40, 90, false, false, 0, 1}, Case{2, 1, 1, 45, 64, 60, true, true, 1, 4},
                        Case{1, 3, 2, 37, 72, 50, true, true, 2, 3}, Case{1, 1, 8, 33, 130, 40, false, true, 0, 0}}) {
    Inputs in = MakeInputs(c, rng);
    const auto steps = ScoreSteps(c.score_kind, c.D);
    const Op op = AttentionOp(c.G, steps);
    std::vector<float> got;
    ASSERT_TRUE(RunCase(c, in, op, got, &pool).ok());
    std::vector<bool> empty_rows;
    const auto want = Reference(c, in.q, in.k, in.v, in.mask, in.rows, steps, &empty_rows);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], empty_rows[i / c.D] ? 0.0f : want[i], 2e-5 + 2e-5 * std::fabs(want[i]))
          << "S=" << c.S << " G=" << c.G << " D=" << c.D << " at " << i;
    }
    // Positions [s0, s0 + n) alone, as a chunked prefill would send them.
    const int64_t s0 = 5 + static_cast<int64_t>(rng() % 20), n = 2 + static_cast<int64_t>(rng() % 9);
    Case part = c;
    part.S = n;
    Inputs sub = in;
    const int64_t Hq = c.Hkv * c.G;
    sub.q.assign(c.B * Hq * n * c.D, 0.0f);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        std::copy_n(in.q.begin() + ((b * Hq + h) * c.S + s0) * c.D, n * c.D, sub.q.begin() + ((b * Hq + h) * n) * c.D);
    const int64_t Bm = c.mask_batch ? c.B : 1;
    sub.mask.assign(Bm * n * c.C, 1);
    for (int64_t b = 0; b < Bm; ++b)
      std::copy_n(in.mask.begin() + (b * c.S + s0) * c.C, n * c.C, sub.mask.begin() + b * n * c.C);
    std::vector<float> chunk;
    ASSERT_TRUE(RunCase(part, sub, op, chunk, nullptr).ok());
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        ASSERT_EQ(0, std::memcmp(chunk.data() + ((b * Hq + h) * n) * c.D, got.data() + ((b * Hq + h) * c.S + s0) * c.D,
                                 sizeof(float) * n * c.D))
            << "S=" << c.S << " chunk [" << s0 << ", " << s0 + n << ") b " << b << " head " << h;
  }
}

// A bf16 cache (--kv-cache-dtype bf16): CtxScatterCB rounds float rows into it, CtxGatherCB
// and CachedAttention widen them exactly, so attention over the bf16 cache gives the same bits
// as over an fp32 cache holding the rounded values.
TEST_P(CachedAttentionKernel, Bf16CacheEqualsFp32CacheOfRoundedValues) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (const Case& c : {Case{2, 2, 2, 1, 72, 40, true, true, 0, 1}, Case{1, 3, 1, 5, 23, 17, true, false, 2, 3},
                        Case{3, 1, 4, 1, 64, 600, true, true, 0, 0}}) {
    Inputs in = MakeInputs(c, rng);
    const int64_t n = in.Bc * c.Hkv * c.C * c.D;
    // Write every cache row through CtxScatterCB into bf16 caches.
    std::vector<uint16_t> kb(n), vb(n);
    std::vector<int64_t> slots(in.Bc), all(in.Bc * c.C);
    for (int64_t b = 0; b < in.Bc; ++b) slots[b] = b;
    for (int64_t b = 0; b < in.Bc; ++b)
      for (int64_t j = 0; j < c.C; ++j) all[b * c.C + j] = j;
    for (auto [src, dst] : {std::pair{&in.k, &kb}, std::pair{&in.v, &vb}}) {
      TensorRef cache{dst->data(), qeff::v1::BF16, {in.Bc, c.Hkv, c.C, c.D}};
      ASSERT_TRUE(RunKernel(MakeOp("CtxScatterCB"),
                            {cache, Ref(slots, {in.Bc, 1}), Ref(all, {in.Bc, c.C}), Ref(*src, {in.Bc, c.Hkv, c.C, c.D})},
                            {cache}, nullptr)
                      .ok());
      // Rounded to nearest even, and read back exactly by CtxGatherCB.
      std::vector<float> back(n);
      std::vector<int64_t> idx(c.C);
      for (int64_t j = 0; j < c.C; ++j) idx[j] = j;
      ASSERT_TRUE(RunKernel(MakeOp("CtxGatherCB"), {cache, Ref(slots, {in.Bc, 1}), Ref(idx, {1, c.C})},
                            {Ref(back, {in.Bc, c.Hkv, c.C, c.D})}, nullptr)
                      .ok());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(back[i], Bf16ToFloat(FloatToBf16((*src)[i]))) << i;
        ASSERT_LE(std::fabs(back[i] - (*src)[i]), std::ldexp(std::fabs((*src)[i]), -8)) << i;
      }
      *src = back;  // the fp32 cache of rounded values
    }
    const auto steps = ScoreSteps(c.score_kind, c.D);
    const Op op = AttentionOp(c.G, steps);
    std::vector<float> want, got;
    ASSERT_TRUE(RunCase(c, in, op, want, &pool).ok());
    const int64_t Hq = c.Hkv * c.G;
    got.assign(c.B * Hq * c.S * c.D, std::numeric_limits<float>::quiet_NaN());
    std::vector<TensorRef> ins = {Ref(in.q, {c.B, Hq, c.S, c.D}), {kb.data(), qeff::v1::BF16, {in.Bc, c.Hkv, c.C, c.D}},
                                  {vb.data(), qeff::v1::BF16, {in.Bc, c.Hkv, c.C, c.D}},
                                  Ref(in.mask, {c.mask_batch ? c.B : 1, 1, c.S, c.C}),
                                  c.cb ? Ref(in.bidx, {c.B, 1}) : TensorRef{}};
    ASSERT_TRUE(RunKernel(op, ins, {Ref(got, {c.B, Hq, c.S, c.D})}, &pool).ok());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float))) << "C=" << c.C << " D=" << c.D;
  }
}

TEST_P(CachedAttentionKernel, RejectsBadBatchIndexAndShapes) {
  std::mt19937 rng(3);
  Case c{2, 1, 2, 1, 8, 6, true, true, 0, 0};
  Inputs in = MakeInputs(c, rng);
  const Op op = AttentionOp(c.G, {});
  std::vector<float> out;
  for (int64_t bad : {in.Bc, int64_t{-1}}) {
    in.bidx[1] = bad;
    EXPECT_EQ(RunCase(c, in, op, out, nullptr).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  in.bidx[1] = 0;
  // Without batch_index the cache must have one row per batch row.
  Case nc = c;
  nc.cb = false;
  EXPECT_EQ(RunCase(nc, in, op, out, nullptr).code(), absl::StatusCode::kInvalidArgument);
  // Head count not groups x kv heads.
  EXPECT_EQ(RunCase(c, in, AttentionOp(3, {}), out, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

// AVX-512 where the cpu has it (dispatched at run time), and the portable loops.
INSTANTIATE_TEST_SUITE_P(Isa, CachedAttentionKernel, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Portable" : "Native"; });

}  // namespace
}  // namespace qeff::device
