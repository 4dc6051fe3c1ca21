// Export -> compile (cpu) -> run, in process, against HF transformers' reference outputs for
// the GPT-2 fixture: prefill logits at every position (1e-4), decode path == full forward, and
// the 16 greedy tokens exactly. A random GPT-2 of other shapes (not in the repo) must compile
// from the same code and give the same logits through prefill and decode.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "services/runner/generator.h"
#include "tests/unit/pipeline/pipeline_util.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

// QEFF_GPT2_FIXTURE points the same checks at another HF GPT-2 fixture folder (e.g. a held-out one).
const fs::path kGpt2 = std::getenv("QEFF_GPT2_FIXTURE") != nullptr
                           ? fs::path(std::getenv("QEFF_GPT2_FIXTURE"))
                           : fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

using testing::MaxDiff;
using testing::RunStep;
using testing::SpecIndex;

// One temp dir per test; every qpc built from one export.
class Pipeline {
 public:
  explicit Pipeline(const std::string& tag) : work_(tag) {}
  std::unique_ptr<device::Session> Build(const fs::path& model_dir, int prefill, int ctx,
                                         const std::string& dtype = "fp32") {
    return testing::ExportAndCompile(model_dir, work_.path(), prefill, ctx, dtype);
  }
  const fs::path& work() const { return work_.path(); }

 private:
  testing::TempDir work_;
};

struct Fixture {
  nlohmann::json ref;
  std::unique_ptr<hf::SafetensorsFile> outputs;
};

Fixture LoadFixture() {
  Fixture f;
  std::ifstream in(kGpt2 / "reference.json");
  f.ref = nlohmann::json::parse(in);
  auto o = hf::SafetensorsFile::Open(kGpt2 / "outputs.safetensors");
  EXPECT_TRUE(o.ok()) << o.status();
  if (o.ok()) f.outputs = std::make_unique<hf::SafetensorsFile>(std::move(*o));
  return f;
}

TEST(Gpt2PipelineTest, MatchesTransformersLogitsAndGreedyTokens) {
  Fixture fx = LoadFixture();
  ASSERT_TRUE(fx.outputs);
  Pipeline p("gpt2");
  auto session = p.Build(kGpt2, /*prefill=*/8, /*ctx=*/64);
  ASSERT_TRUE(session);
  const int vocab = session->vocab_size();
  ASSERT_EQ(vocab, static_cast<int>(fx.outputs->Find("logits_0")->shape.back()));
  const int prefill = SpecIndex(*session, 8), decode = SpecIndex(*session, 1);
  ASSERT_GE(prefill, 0);
  ASSERT_GE(decode, 0);
  for (const auto& input : fx.ref["inputs"]) {
    const int idx = input["index"];
    const auto ids = input["input_ids"].get<std::vector<int64_t>>();
    const int L = static_cast<int>(ids.size());
    const hf::TensorView* logits = fx.outputs->Find("logits_" + std::to_string(idx));
    ASSERT_NE(logits, nullptr);
    const float* want = reinterpret_cast<const float*>(logits->data);

    // Decode path, one token per call: logits at every position.
    session->ResetState();
    double worst = 0;
    for (int t = 0; t < L; ++t) {
      auto got = RunStep(*session, decode, {ids[t]}, {t});
      worst = std::max(worst, MaxDiff(got, want + static_cast<size_t>(t) * vocab));
    }
    EXPECT_LE(worst, 1e-4) << "prompt " << idx << ": decode-path logits vs HF";
    std::printf("prompt %d: max |logit - HF| over %d positions (decode path) = %.3g\n", idx, L, worst);

    // Chunked prefill (chunks of 8, last one padded with position -1): last position.
    session->ResetState();
    std::vector<float> last;
    for (int c = 0; c < L; c += 8) {
      std::vector<int64_t> cid, cpos;
      for (int t = c; t < std::min(L, c + 8); ++t) {
        cid.push_back(ids[t]);
        cpos.push_back(t);
      }
      last = RunStep(*session, prefill, cid, cpos);
    }
    EXPECT_LE(MaxDiff(last, want + static_cast<size_t>(L - 1) * vocab), 1e-4) << "prompt " << idx << ": prefill";

    // Greedy generation through the runner's loop.
    runner::GenerationRequest req;
    for (int64_t id : ids) req.prompt.push_back(static_cast<int32_t>(id));
    req.max_new_tokens = 16;
    auto r = runner::Generate(*session, req, [](int32_t) { return true; });
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<int64_t> got(r->tokens.begin(), r->tokens.end());
    EXPECT_EQ(got, fx.ref["outputs"]["generation"][idx]["new_tokens"].get<std::vector<int64_t>>()) << "prompt " << idx;
  }
}

TEST(Gpt2PipelineTest, PromptLongerThanContextIsRejected) {
  Pipeline p("ctx");
  auto session = p.Build(kGpt2, 4, 8);
  ASSERT_TRUE(session);
  runner::GenerationRequest req;
  req.prompt.assign(8, 15496);
  auto r = runner::Generate(*session, req, [](int32_t) { return true; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  req.prompt = {1, 2, 3, 60000};
  r = runner::Generate(*session, req, [](int32_t) { return true; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "token id beyond the vocabulary";
}

TEST(Gpt2PipelineTest, OtherShapesCompileAndDecodeMatchesPrefill) {
  Pipeline p("random");
  const fs::path model = p.work() / "model";
  const std::string gen = std::string(QEFF_BINARY_DIR) + "/bench/qeff-make-random-model";
  const std::string cmd = gen + " --out " + model.string() +
                          " --n-layer 3 --n-embd 48 --n-head 3 --vocab 777 --n-positions 96 --seed 7 >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto session = p.Build(model, /*prefill=*/5, /*ctx=*/40);
  ASSERT_TRUE(session);
  ASSERT_EQ(session->vocab_size(), 777);
  const int prefill = SpecIndex(*session, 5), decode = SpecIndex(*session, 1);
  std::vector<int64_t> ids = {3, 141, 59, 265, 358, 97, 93, 238, 462, 643, 383, 279};
  // Full prompt through chunked prefill vs token by token: the last logits agree.
  session->ResetState();
  std::vector<float> a;
  for (size_t c = 0; c < ids.size(); c += 5) {
    std::vector<int64_t> cid, cpos;
    for (size_t t = c; t < std::min(ids.size(), c + 5); ++t) {
      cid.push_back(ids[t]);
      cpos.push_back(static_cast<int64_t>(t));
    }
    a = RunStep(*session, prefill, cid, cpos);
  }
  session->ResetState();
  std::vector<float> b;
  for (size_t t = 0; t < ids.size(); ++t) b = RunStep(*session, decode, {ids[t]}, {static_cast<int64_t>(t)});
  EXPECT_LE(MaxDiff(a, b.data()), 1e-4);
  // bf16 weights stay close to fp32 on the same model.
  auto bf16 = p.Build(model, 5, 40, "bf16");
  ASSERT_TRUE(bf16);
  bf16->ResetState();
  std::vector<float> c;
  for (size_t t = 0; t < ids.size(); ++t) c = RunStep(*bf16, decode, {ids[t]}, {static_cast<int64_t>(t)});
  double scale = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  EXPECT_LE(MaxDiff(c, b.data()), 0.05 * scale);
  // bf16 prefill with more than 8 rows takes the widen-then-sgemm path.
  auto bf16_wide = p.Build(model, 12, 40, "bf16");
  ASSERT_TRUE(bf16_wide);
  bf16_wide->ResetState();
  auto d = RunStep(*bf16_wide, SpecIndex(*bf16_wide, 12), ids,
                   {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  EXPECT_LE(MaxDiff(d, c.data()), 1e-3 * scale) << "bf16 prefill vs bf16 decode path";
  std::printf("random GPT-2: max |logit| %.3g, bf16 error %.3g\n", scale, MaxDiff(c, b.data()));
  // int8 (per-row scales) and int4 (per-block scales) weights with activations quantized per
  // block: logits' cosine similarity to fp32 above the bound the README states, and prefill
  // (same integer kernel, 12 rows) agrees with the decode path.
  for (const auto& [dtype, min_cosine] : {std::pair<const char*, double>{"int8", 0.998}, {"int4", 0.93}}) {
    auto qs = p.Build(model, 12, 40, dtype);
    ASSERT_TRUE(qs);
    qs->ResetState();
    std::vector<float> q;
    for (size_t t = 0; t < ids.size(); ++t) q = RunStep(*qs, SpecIndex(*qs, 1), {ids[t]}, {static_cast<int64_t>(t)});
    const double cosine = testing::Cosine(q, b);
    EXPECT_GE(cosine, min_cosine) << dtype << " vs fp32";
    qs->ResetState();
    auto qp = RunStep(*qs, SpecIndex(*qs, 12), ids, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    EXPECT_LE(MaxDiff(qp, q.data()), 1e-3 * scale) << dtype << " prefill vs decode path";
    std::printf("random GPT-2 %s: cosine to fp32 %.6f, max |logit error| %.3g\n", dtype, cosine, MaxDiff(q, b.data()));
  }
}

}  // namespace
}  // namespace qeff
