#include "tests/unit/pipeline/pipeline_util.h"

#include <unistd.h>

#include <cmath>

#include <gtest/gtest.h>

#include "common/hf/model_folder.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"

namespace qeff::testing {
namespace fs = std::filesystem;

std::unique_ptr<device::Session> ExportAndCompile(const fs::path& model_dir, const fs::path& work, int prefill,
                                                  int ctx, const std::string& weight_dtype, int full_batch_size,
                                                  const std::string& kv_cache_dtype) {
  const bool cb = full_batch_size > 0;
  const fs::path exp = work / (cb ? "export-cb" : "export");
  if (!fs::exists(exp / "model.onnx")) {
    fs::create_directories(exp);
    auto folder = hf::ModelFolder::Open(model_dir);
    EXPECT_TRUE(folder.ok()) << folder.status();
    if (!folder.ok()) return nullptr;
    exporter::ExportOptions eo;
    eo.continuous_batching = cb;
    auto e = exporter::ExportModel(*folder, eo, exp, [](auto&&...) {});
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok()) return nullptr;
  }
  const fs::path qpc = work / ("qpc-" + std::to_string(prefill) + "-" + std::to_string(ctx) + "-" + weight_dtype +
                               "-fbs" + std::to_string(full_batch_size) + "-kv" + kv_cache_dtype);
  fs::create_directories(qpc);
  compiler::CompileOptions opt;
  opt.full_batch_size = full_batch_size;
  opt.prefill_seq_len = prefill;
  opt.ctx_len = ctx;
  opt.weight_dtype = weight_dtype;
  opt.kv_cache_dtype = kv_cache_dtype;
  auto c = compiler::CompileModel(exp, opt, qpc, [](auto&&...) {});
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  auto s = device::Session::Load(qpc, 2);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

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

double Cosine(const std::vector<float>& a, const float* b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  const double c = ab / std::sqrt(aa * bb);
  return std::isfinite(c) ? c : 0.0;
}

}  // namespace qeff::testing
