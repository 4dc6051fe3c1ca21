// The compiler's fusions on real exports, and their kernels:
// - tanh-GELU: GeluTanhArray (AVX-512 and portable) against the formula in double; every family
//   whose activation is tanh-GELU (gelu_new, gelu_pytorch_tanh) runs one GeluTanh per layer and
//   none of the 8-op chain; an exact-GELU or SiLU family keeps its own ops.
// - rotate_half rotary: the RotaryHalf kernel gives the unfused chain's bits; every rotate_half
//   family runs two per layer (q and k) and no Neg; the interleaved style (GPT-J) keeps its ops.
// - a Transpose that moves only size-1 axes (decode's heads <-> positions) is a view.
// - Linears reading one input (q, k, v; gate, up) run as one Linear and a Split (views in decode).
// - SwiGLU's (x · sigmoid(x)) · up: SiluMul gives the three ops' bits; every SiLU family runs
//   one per layer and no Sigmoid.
// The fixtures' logits against HF (pipeline tests) run through the fused ops.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/cpu/kernels.h"
#include "device/cpu/thread_pool.h"
#include "device/cpu/vector_math.h"
#include "qeff/v1/program.pb.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "tests/unit/temp_dir.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";

TEST(GeluTanhArray, MatchesTheFormulaInDouble) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 3.0f);
  // Every tail length of the vector loop, large magnitudes (tanh saturates) and zeros.
  std::vector<float> x(1000);
  for (auto& v : x) v = d(rng);
  x[0] = 0.0f;
  x[1] = -20.0f;
  x[2] = 20.0f;
  for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{1000}}) {
    std::vector<float> y(static_cast<size_t>(n));
    device::GeluTanhArray(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double v = x[i];
      const double want = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
      ASSERT_NEAR(y[i], want, 1e-6 + 1e-6 * std::fabs(want)) << "x = " << v << " n = " << n;
    }
  }
}

int NumLayers(const fs::path& model) {
  std::ifstream in(model / "config.json");
  const auto c = nlohmann::json::parse(in);
  for (const char* key : {"num_hidden_layers", "n_layer", "num_layers"})
    if (c.contains(key)) return c[key].get<int>();
  return -1;
}

// Op counts of every specialization of the fixture's cpu qpc.
// The fixture's program as compiled with prefill 8 and ctx 64 (causal: prefill, then decode).
qeff::v1::Program CompiledProgram(const std::string& name) {
  qeff::testing::TempDir dir(name + "-fusion");
  auto folder = hf::ModelFolder::Open(kFixtures / name);
  EXPECT_TRUE(folder.ok()) << folder.status();
  if (!folder.ok()) return {};
  fs::create_directories(dir.path() / "export");
  fs::create_directories(dir.path() / "qpc");
  auto e = exporter::ExportModel(*folder, {}, dir.path() / "export", [](auto&&...) {});
  EXPECT_TRUE(e.ok()) << e.status();
  compiler::CompileOptions co;
  co.prefill_seq_len = 8;
  co.ctx_len = 64;
  auto c = compiler::CompileModel(dir.path() / "export", co, dir.path() / "qpc", [](auto&&...) {});
  EXPECT_TRUE(c.ok()) << c.status();
  auto bytes = util::ReadFile(dir.path() / "qpc" / "program.pb", 1ull << 30);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  qeff::v1::Program p;
  if (!bytes.ok() || !p.ParseFromString(*bytes)) return {};
  return p;
}

std::vector<std::map<std::string, int>> CompiledOpCounts(const std::string& name) {
  const qeff::v1::Program p = CompiledProgram(name);
  std::vector<std::map<std::string, int>> counts;
  for (const auto& sp : p.specializations()) {
    counts.emplace_back();
    for (const auto& op : sp.ops()) ++counts.back()[op.type()];
  }
  return counts;
}

class GeluFusionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GeluFusionTest, TanhGeluChainBecomesOneOpPerLayer) {
  const auto counts = CompiledOpCounts(GetParam());
  ASSERT_FALSE(counts.empty());
  for (const auto& c : counts) {
    EXPECT_EQ(c.count("GeluTanh") ? c.at("GeluTanh") : 0, NumLayers(kFixtures / GetParam())) << GetParam();
    for (const char* gone : {"Tanh", "Pow"}) EXPECT_EQ(c.count(gone), 0u) << GetParam() << ": " << gone << " left";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GeluFusionTest,
                         ::testing::Values("gpt2", "gptj", "phi", "codegen", "gpt_bigcode", "starcoder2", "gemma"),
                         [](const auto& info) { return info.param; });

TEST(GeluFusion, OtherActivationsKeepTheirOps) {
  for (const char* name : {"falcon", "llama"}) {
    const auto counts = CompiledOpCounts(name);
    ASSERT_FALSE(counts.empty()) << name;
    for (const auto& c : counts) EXPECT_EQ(c.count("GeluTanh"), 0u) << name;
  }
}

// SiluMul against the ops it replaces, run by their own kernels: Sigmoid, x · s, then · up.
TEST(SiluMulKernel, GivesTheUnfusedChainsBits) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 4.0f);
  device::ThreadPool pool(2);
  // Tails of the vector loop and of the 1024-value blocks; the last one runs on the pool.
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{1023}, int64_t{1025}, int64_t{70001}}) {
    std::vector<float> x(static_cast<size_t>(n)), up(x.size()), s(x.size()), silu(x.size()), want(x.size()), got(x.size());
    for (auto& v : x) v = d(rng);
    for (auto& v : up) v = d(rng);
    x[0] = n > 1 ? -90.0f : 0.0f;  // sigmoid underflows to 0
    const device::Shape shape = {1, n};
    auto run = [&](const char* type, std::vector<device::TensorRef> in, float* out) {
      qeff::v1::Op op;
      op.set_type(type);
      auto st = device::RunKernel(op, in, {{out, qeff::v1::F32, shape}}, &pool);
      ASSERT_TRUE(st.ok()) << type << ": " << st;
    };
    run("Sigmoid", {{x.data(), qeff::v1::F32, shape}}, s.data());
    run("Mul", {{x.data(), qeff::v1::F32, shape}, {s.data(), qeff::v1::F32, shape}}, silu.data());
    run("Mul", {{silu.data(), qeff::v1::F32, shape}, {up.data(), qeff::v1::F32, shape}}, want.data());
    run("SiluMul", {{x.data(), qeff::v1::F32, shape}, {up.data(), qeff::v1::F32, shape}}, got.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "n = " << n << " i = " << i << " x = " << x[i];
  }
  // Operands of different shapes are refused, not broadcast.
  std::vector<float> a(8), b(4), y(8);
  qeff::v1::Op op;
  op.set_type("SiluMul");
  EXPECT_FALSE(device::RunKernel(op, {{a.data(), qeff::v1::F32, {8}}, {b.data(), qeff::v1::F32, {4}}},
                                 {{y.data(), qeff::v1::F32, {8}}}, nullptr)
                   .ok());
}

TEST(SiluMulFusion, SwiGluRunsOneOpPerLayer) {
  for (const char* name : {"llama", "mistral", "qwen2", "phi3"}) {
    const auto counts = CompiledOpCounts(name);
    ASSERT_EQ(counts.size(), 2u) << name;
    for (const auto& c : counts) {
      EXPECT_EQ(c.count("SiluMul") ? c.at("SiluMul") : 0, NumLayers(kFixtures / name)) << name;
      EXPECT_EQ(c.count("Sigmoid"), 0u) << name;
    }
  }
  for (const char* name : {"gpt2", "falcon"}) {
    for (const auto& c : CompiledOpCounts(name)) EXPECT_EQ(c.count("SiluMul"), 0u) << name;
  }
}

// rotate_half in the chain's order: x·cos and rot·sin rounded, then added.
TEST(RotaryHalfKernel, GivesTheUnfusedChainsBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 2.0f);
  const int64_t B = 2, H = 3, S = 5, D = 10, h = D / 2;
  std::vector<float> x(B * H * S * D), y(x.size());
  for (auto& v : x) v = d(rng);
  // cos [B, 1, S, D] (per row and position) and sin [1, 1, S, D] (shared by the batch).
  std::vector<float> cos(B * S * D), sin(S * D);
  for (auto& v : cos) v = d(rng);
  for (auto& v : sin) v = d(rng);
  qeff::v1::Op op;
  op.set_type("RotaryHalf");
  auto st = device::RunKernel(op,
                              {{x.data(), qeff::v1::F32, {B, H, S, D}},
                               {cos.data(), qeff::v1::F32, {B, 1, S, D}},
                               {sin.data(), qeff::v1::F32, {1, 1, S, D}}},
                              {{y.data(), qeff::v1::F32, {B, H, S, D}}}, nullptr);
  ASSERT_TRUE(st.ok()) << st;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hd = 0; hd < H; ++hd) {
      for (int64_t s = 0; s < S; ++s) {
        const float* xr = &x[((b * H + hd) * S + s) * D];
        const float* c = &cos[(b * S + s) * D];
        const float* sn = &sin[s * D];
        for (int64_t i = 0; i < D; ++i) {
          const float rot = i < h ? -xr[i + h] : xr[i - h];
          volatile float a = xr[i] * c[i], r = rot * sn[i];  // rounded apart, as two Mul ops
          ASSERT_EQ(y[((b * H + hd) * S + s) * D + i], a + r) << b << " " << hd << " " << s << " " << i;
        }
      }
    }
  }
  // A table that does not broadcast is refused.
  st = device::RunKernel(op,
                         {{x.data(), qeff::v1::F32, {B, H, S, D}},
                          {cos.data(), qeff::v1::F32, {B, 1, S, 5}},
                          {sin.data(), qeff::v1::F32, {1, 1, S, D}}},
                         {{y.data(), qeff::v1::F32, {B, H, S, D}}}, nullptr);
  EXPECT_FALSE(st.ok());
}

class RotaryFusionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RotaryFusionTest, RotateHalfChainBecomesOneOpForQAndK) {
  const auto counts = CompiledOpCounts(GetParam());
  ASSERT_EQ(counts.size(), 2u) << "prefill and decode";
  for (const auto& c : counts) {
    EXPECT_EQ(c.count("RotaryHalf") ? c.at("RotaryHalf") : 0, 2 * NumLayers(kFixtures / GetParam())) << GetParam();
    EXPECT_EQ(c.count("Neg"), 0u) << GetParam() << ": rotate_half's Neg left";
  }
  // Decode (one position): moving heads and positions is a relabeling, no Transpose runs;
  // prefill (8 positions) still moves data.
  EXPECT_GT(counts[0].count("Transpose"), 0u) << GetParam();
  EXPECT_EQ(counts[1].count("Transpose"), 0u) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RotaryFusionTest,
                         ::testing::Values("llama", "mistral", "qwen2", "phi3", "phi", "gemma", "falcon", "starcoder2"),
                         [](const auto& info) { return info.param; });

TEST(RotaryFusion, InterleavedRotaryKeepsItsOps) {
  const auto counts = CompiledOpCounts("gptj");
  ASSERT_FALSE(counts.empty());
  for (const auto& c : counts) {
    EXPECT_EQ(c.count("RotaryHalf"), 0u);
    EXPECT_GT(c.count("Neg"), 0u);
  }
}

// Arena tensors that lie inside another one's bytes, past its start: slice views.
int SliceViews(const qeff::v1::ProgramSpecialization& sp) {
  int slices = 0;
  for (const auto& t : sp.tensors()) {
    if (t.storage() != qeff::v1::ARENA) continue;
    for (const auto& whole : sp.tensors()) {
      if (whole.storage() == qeff::v1::ARENA && whole.offset() < t.offset() &&
          t.offset() + t.bytes() <= whole.offset() + whole.bytes()) {
        ++slices;
        break;
      }
    }
  }
  return slices;
}

// Linears reading one input become one over their joined weights, then a Split. Parts keep
// whole panels: every part but the last has a multiple of 64 outputs. With hidden 64 and
// 2 kv heads of 16: llama joins q (64) + k (32) and leaves v (32) alone, joins gate + up;
// BERT joins q, k, v with their biases; GPT-2's c_attn is one weight already. Prefill's Split
// copies the parts out of each row; decode's one row holds them side by side, so its Splits
// are views at offsets into the Linear's output and run nothing.
TEST(SiblingLinearFusion, LinearsOfOneInputRunAsOne) {
  struct Want {
    const char* name;
    int linears_per_layer, splits_per_layer, other_linears;
  };
  for (const Want& w : {Want{"llama", 5, 2, 1}, Want{"qwen2", 5, 2, 1}, Want{"bert", 4, 1, 1}, Want{"gpt2", 4, 1, 1}}) {
    const int layers = NumLayers(kFixtures / w.name);
    const qeff::v1::Program p = CompiledProgram(w.name);
    ASSERT_GT(p.specializations_size(), 0) << w.name;
    for (int si = 0; si < p.specializations_size(); ++si) {
      const auto& sp = p.specializations(si);
      std::map<std::string, int> c;
      for (const auto& op : sp.ops()) ++c[op.type()];
      const bool decode = sp.seq_len() == 1;
      EXPECT_EQ(c.count("Linear") ? c.at("Linear") : 0, w.linears_per_layer * layers + w.other_linears) << w.name;
      EXPECT_EQ(c.count("Split") ? c.at("Split") : 0, decode ? 0 : w.splits_per_layer * layers) << w.name << " " << sp.name();
      if (decode) {
        EXPECT_GE(SliceViews(sp), w.splits_per_layer * layers) << w.name;
      }
      EXPECT_EQ(c.count("MatMul") ? c.at("MatMul") : 0, w.name == std::string("bert") ? 2 * layers : 0) << w.name;
    }
  }
}

}  // namespace
}  // namespace qeff
