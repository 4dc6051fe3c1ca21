// BertModel (encoder) end to end against HF transformers' outputs for the bert fixture: the
// exported ONNX in onnxruntime and the cpu qpc through the runner's Embed give
// last_hidden_state (real positions), pooler_output, mean / normalized-mean / CLS embeddings
// within 1e-4, on a right-padded batch of 2.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "services/runner/embedder.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kBert = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/bert";

class BertPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() / ("qeff-bert-" + std::to_string(::getpid()));
    fs::remove_all(work_);
    fs::create_directories(work_ / "export");
    std::ifstream in(kBert / "reference.json");
    ref_ = json::parse(in);
    auto o = hf::SafetensorsFile::Open(kBert / "outputs.safetensors");
    ASSERT_TRUE(o.ok()) << o.status();
    outputs_ = std::make_unique<hf::SafetensorsFile>(std::move(*o));
    auto folder = hf::ModelFolder::Open(kBert);
    ASSERT_TRUE(folder.ok()) << folder.status();
    auto e = exporter::ExportModel(*folder, {}, work_ / "export", [](auto&&...) {});
    ASSERT_TRUE(e.ok()) << e.status();
    for (const auto& in : ref_["inputs"]) inputs_.push_back(in["input_ids"].get<std::vector<int32_t>>());
  }
  void TearDown() override { fs::remove_all(work_); }

  const float* Ref(const std::string& name) {
    const hf::TensorView* t = outputs_->Find(name);
    EXPECT_NE(t, nullptr) << name;
    return t ? reinterpret_cast<const float*>(t->data) : nullptr;
  }

  fs::path work_;
  json ref_;
  std::unique_ptr<hf::SafetensorsFile> outputs_;
  std::vector<std::vector<int32_t>> inputs_;
};

TEST_F(BertPipelineTest, OnnxruntimeMatchesTransformers) {
  const int B = 2, S = 17, H = 64;
  json feeds;
  std::vector<int64_t> ids(B * S, 0), mask(B * S, 0);
  for (int b = 0; b < B; ++b)
    for (size_t t = 0; t < inputs_[b].size(); ++t) {
      ids[b * S + t] = inputs_[b][t];
      mask[b * S + t] = 1;
    }
  feeds["input_ids"] = {{"type", "int64"}, {"dims", {B, S}}, {"data", ids}};
  feeds["attention_mask"] = {{"type", "int64"}, {"dims", {B, S}}, {"data", mask}};
  std::ofstream(work_ / "inputs.json") << feeds.dump();
  const std::string cmd = "cd " + (fs::path(QEFF_SOURCE_DIR) / "tests/node").string() + " && node run_model.js " +
                          (work_ / "export/model.onnx").string() + " " + (work_ / "inputs.json").string();
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  json r = json::parse(out);
  const auto got = r["last_hidden_state"]["data"].get<std::vector<float>>();
  const float* want = Ref("last_hidden_state");
  double worst = 0;
  for (int b = 0; b < B; ++b)
    for (size_t t = 0; t < inputs_[b].size(); ++t)
      for (int d = 0; d < H; ++d) {
        const size_t i = (b * S + t) * H + d;
        worst = std::max(worst, static_cast<double>(std::fabs(got[i] - want[i])));
      }
  EXPECT_LE(worst, 1e-4);
  const auto pooled = r["pooler_output"]["data"].get<std::vector<float>>();
  const float* want_pool = Ref("pooler_output");
  for (int i = 0; i < B * H; ++i) EXPECT_NEAR(pooled[i], want_pool[i], 1e-4) << i;
  std::printf("onnxruntime: max |last_hidden_state - HF| (real positions) = %.3g\n", worst);
}

TEST_F(BertPipelineTest, CpuQpcEmbeddingsMatchTransformers) {
  fs::create_directories(work_ / "qpc");
  compiler::CompileOptions opt;
  opt.batch_size = 2;
  opt.prefill_seq_len = 17;
  auto c = compiler::CompileModel(work_ / "export", opt, work_ / "qpc", [](auto&&...) {});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->specializations.size(), 1u);
  EXPECT_EQ(c->specializations[0].name, "Embedding");
  auto session = device::Session::Load(work_ / "qpc", 2);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE(runner::IsEncoder(**session));
  const int H = 64;
  struct Case {
    const char* pooling;
    bool normalize;
    const char* tensor;
  } cases[] = {{"mean", false, "mean_pooled"},
               {"mean", true, "mean_pooled_normalized"},
               {"cls", false, "cls_embedding"},
               {"pooler", false, "pooler_output"}};
  for (const auto& k : cases) {
    runner::EmbedOptions o;
    o.pooling = k.pooling;
    o.normalize = k.normalize;
    auto e = runner::Embed(**session, inputs_, o);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->size(), 2u);
    const float* want = Ref(k.tensor);
    double worst = 0;
    for (int b = 0; b < 2; ++b)
      for (int d = 0; d < H; ++d) worst = std::max(worst, static_cast<double>(std::fabs((*e)[b][d] - want[b * H + d])));
    EXPECT_LE(worst, 1e-4) << k.tensor;
    std::printf("cpu qpc %s: max |diff| = %.3g\n", k.tensor, worst);
  }
  // One sequence at a time (the rest of the batch is padding) gives the same embeddings.
  runner::EmbedOptions mean;
  auto single = runner::Embed(**session, {inputs_[1]}, mean);
  ASSERT_TRUE(single.ok());
  const float* want = Ref("mean_pooled");
  for (int d = 0; d < H; ++d) EXPECT_NEAR((*single)[0][d], want[H + d], 1e-4);
  // Bad input: too long, empty, unknown pooling.
  EXPECT_EQ(runner::Embed(**session, {std::vector<int32_t>(18, 5)}, mean).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner::Embed(**session, {{}}, mean).status().code(), absl::StatusCode::kInvalidArgument);
  runner::EmbedOptions bad;
  bad.pooling = "median";
  EXPECT_EQ(runner::Embed(**session, inputs_, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qeff
