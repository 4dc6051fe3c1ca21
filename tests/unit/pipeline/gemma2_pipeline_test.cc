// Export -> compile (cpu) -> run, in process, against HF transformers' reference outputs for the
// Gemma2 fixture (sqrt(hidden) embedding scale, (1 + w) RMSNorm folded into CustomRMSNorm, pre/post
// norms, attention soft-cap 10, final logit soft-cap 1, sliding window 6 on even layers,
// query_pre_attn_scalar, GeGLU, GQA, tied head): logits of the decode path at every prompt
// position and of chunked prefill at the last position within 1e-4, and the 16 greedy tokens
// exactly. HF generated them with its HybridCache (a rolling W-slot buffer on sliding layers);
// here the cache is QEff's full ctx_len (64, far beyond the window) with a sliding-window mask,
// which must attend to the same keys. Same approach as causal_lm_pipeline_test.cc.
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
#include "services/runner/generator.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";

class Workdir {
 public:
  explicit Workdir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("qeff-gemma2-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~Workdir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::unique_ptr<device::Session> ExportAndCompile(const fs::path& model_dir, const fs::path& work, int prefill,
                                                  int ctx) {
  const fs::path exp = work / "export";
  fs::create_directories(exp);
  auto folder = hf::ModelFolder::Open(model_dir);
  EXPECT_TRUE(folder.ok()) << folder.status();
  if (!folder.ok()) return nullptr;
  auto e = exporter::ExportModel(*folder, {}, exp, [](auto&&...) {});
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  const fs::path qpc = work / "qpc";
  fs::create_directories(qpc);
  compiler::CompileOptions opt;
  opt.prefill_seq_len = prefill;
  opt.ctx_len = ctx;
  auto c = compiler::CompileModel(exp, opt, qpc, [](auto&&...) {});
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  auto s = device::Session::Load(qpc, 2);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

// One call of specialization `spec` with the given ids/positions (right-padded with -1).
std::vector<float> RunStep(device::Session& s, int spec, const std::vector<int64_t>& ids,
                           const std::vector<int64_t>& pos) {
  const int seq = s.specializations()[spec].seq_len;
  std::vector<int64_t> in(seq, 0), p(seq, -1);
  for (size_t i = 0; i < ids.size(); ++i) {
    in[i] = ids[i];
    p[i] = pos[i];
  }
  absl::Status st = s.Run(spec, {{"input_ids", device::HostTensor::I64(in.data(), {1, seq})},
                                 {"position_ids", device::HostTensor::I64(p.data(), {1, seq})}});
  EXPECT_TRUE(st.ok()) << st;
  auto out = s.Output("logits");
  EXPECT_TRUE(out.ok());
  if (!st.ok() || !out.ok()) return std::vector<float>(s.vocab_size(), NAN);
  const float* l = static_cast<const float*>(out->data);
  return std::vector<float>(l, l + s.vocab_size());
}

int SpecIndex(const device::Session& s, int seq_len) {
  for (size_t i = 0; i < s.specializations().size(); ++i)
    if (s.specializations()[i].seq_len == seq_len) return static_cast<int>(i);
  return -1;
}

double MaxDiff(const std::vector<float>& a, const float* b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = std::fabs(static_cast<double>(a[i]) - b[i]);
    d = std::isnan(x) ? INFINITY : std::max(d, x);
  }
  return d;
}

TEST(Gemma2PipelineTest, MatchesTransformersLogitsAndGreedyTokens) {
  const std::string name = "gemma2";
  const fs::path dir = kFixtures / name;
  std::ifstream in(dir / "reference.json");
  ASSERT_TRUE(in) << dir;
  const nlohmann::json ref = nlohmann::json::parse(in);
  auto outputs = hf::SafetensorsFile::Open(dir / "outputs.safetensors");
  ASSERT_TRUE(outputs.ok()) << outputs.status();

  Workdir work(name);
  constexpr int kPrefill = 8;
  auto session = ExportAndCompile(dir, work.path(), kPrefill, /*ctx=*/64);
  ASSERT_TRUE(session);
  const int vocab = session->vocab_size();
  ASSERT_EQ(vocab, static_cast<int>(outputs->Find("logits_0")->shape.back()));
  const int prefill = SpecIndex(*session, kPrefill), decode = SpecIndex(*session, 1);
  ASSERT_GE(prefill, 0);
  ASSERT_GE(decode, 0);

  for (const auto& input : ref["inputs"]) {
    const int idx = input["index"];
    const auto ids = input["input_ids"].get<std::vector<int64_t>>();
    const int L = static_cast<int>(ids.size());
    const hf::TensorView* logits = outputs->Find("logits_" + std::to_string(idx));
    ASSERT_NE(logits, nullptr);
    const float* want = reinterpret_cast<const float*>(logits->data);

    // Decode path, one token per call: logits at every position.
    session->ResetState();
    double worst = 0;
    for (int t = 0; t < L; ++t) {
      auto got = RunStep(*session, decode, {ids[t]}, {t});
      worst = std::max(worst, MaxDiff(got, want + static_cast<size_t>(t) * vocab));
    }
    EXPECT_LE(worst, 1e-4) << name << " prompt " << idx << ": decode-path logits vs HF";

    // Chunked prefill (last chunk right-padded with position -1): last position.
    session->ResetState();
    std::vector<float> last;
    for (int c = 0; c < L; c += kPrefill) {
      std::vector<int64_t> cid, cpos;
      for (int t = c; t < std::min(L, c + kPrefill); ++t) {
        cid.push_back(ids[t]);
        cpos.push_back(t);
      }
      last = RunStep(*session, prefill, cid, cpos);
    }
    const double prefill_diff = MaxDiff(last, want + static_cast<size_t>(L - 1) * vocab);
    EXPECT_LE(prefill_diff, 1e-4) << name << " prompt " << idx << ": chunked prefill";
    std::printf("%s prompt %d (L=%d): max |logit - HF| decode path (all positions) = %.3g, chunked prefill = %.3g\n",
                name.c_str(), idx, L, worst, prefill_diff);

    // Greedy generation through the runner's loop.
    runner::GenerationRequest req;
    for (int64_t id : ids) req.prompt.push_back(static_cast<int32_t>(id));
    req.max_new_tokens = 16;
    auto r = runner::Generate(*session, req, [](int32_t) { return true; });
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<int64_t> got(r->tokens.begin(), r->tokens.end());
    EXPECT_EQ(got, ref["outputs"]["generation"][idx]["new_tokens"].get<std::vector<int64_t>>())
        << name << " prompt " << idx;
  }
}

}  // namespace
}  // namespace qeff
