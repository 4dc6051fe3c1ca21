// The tanh-GELU chain: GeluTanhArray (AVX-512 and portable) against the formula in double, and
// the compiler's FuseGeluTanh on real exports: every family whose activation is tanh-GELU
// (gelu_new, gelu_pytorch_tanh) runs one GeluTanh per layer and none of the 8-op chain; an
// exact-GELU or SiLU family keeps its own ops. The fixtures' logits against HF (pipeline tests)
// run through the fused op.
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
std::vector<std::map<std::string, int>> CompiledOpCounts(const std::string& name) {
  qeff::testing::TempDir dir(name + "-gelu");
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

}  // namespace
}  // namespace qeff
