#include "tests/unit/exporter/export_test_util.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <system_error>

#include <gtest/gtest.h>
#include <onnx/checker.h>

#include "common/hf/model_folder.h"

namespace qeff::exporter::test_util {

const std::set<std::string>& AllowedOps(bool allow_constant) {
  static const std::set<std::string> kContract = {
      "Gather",    "GatherElements", "Add",      "Sub",       "Mul",     "Div",    "Pow",       "Sqrt",
      "Tanh",      "Erf",            "Exp",      "Neg",       "Max",     "Min",    "Where",     "Greater",
      "Less",      "Equal",          "Cast",     "MatMul",    "Softmax", "LayerNormalization", "Transpose",
      "Reshape",   "Unsqueeze",      "Squeeze",  "Concat",    "Split",   "Slice",  "Shape",     "Range",
      "Expand",    "ArgMax",         "ReduceMean", "ReduceMax", "Sin",     "Cos",     "Sigmoid", "Identity", "ConstantOfShape"};
  static const std::set<std::string> kWithConstant = [] {
    std::set<std::string> s = kContract;
    s.insert("Constant");
    return s;
  }();
  return allow_constant ? kWithConstant : kContract;
}

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult Run(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

absl::StatusOr<ExportSummary> Export(const fs::path& model_dir, const fs::path& out, ExportOptions options) {
  auto folder = hf::ModelFolder::Open(model_dir);
  if (!folder.ok()) return folder.status();
  return ExportModel(*folder, options, out, nullptr);
}

::testing::AssertionResult CheckedModel(const fs::path& model_path, onnx::ModelProto* m) {
  try {
    onnx::checker::check_model(model_path.string());
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "checker: " << e.what();
  }
  std::ifstream in(model_path, std::ios::binary);
  if (!m->ParseFromIstream(&in)) return ::testing::AssertionFailure() << "cannot parse " << model_path;
  return ::testing::AssertionSuccess();
}

json ReadJson(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::vector<float> ReadInitializer(const onnx::ModelProto& m, const fs::path& dir, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() != name) continue;
    uint64_t offset = 0, length = 0;
    for (const auto& e : t.external_data()) {
      if (e.key() == "offset") offset = std::stoull(e.value());
      if (e.key() == "length") length = std::stoull(e.value());
    }
    std::ifstream in(dir / "model.onnx.data", std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::vector<float> v(length / 4);
    in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(length));
    return v;
  }
  ADD_FAILURE() << "no initializer " << name;
  return {};
}

std::vector<std::string> Dims(const onnx::ValueInfoProto& v) {
  std::vector<std::string> d;
  for (const auto& x : v.type().tensor_type().shape().dim()) {
    d.push_back(x.has_dim_param() ? x.dim_param() : std::to_string(x.dim_value()));
  }
  return d;
}

fs::path EditedCopy(const fs::path& tmp, const std::string& name, const std::function<void(json&)>& edit) {
  const fs::path out = tmp / name;
  fs::create_directories(out);
  fs::copy_file(kFixtures / name / "model.safetensors", out / "model.safetensors");
  json cfg = ReadJson(kFixtures / name / "config.json");
  edit(cfg);
  std::ofstream(out / "config.json") << cfg.dump(2);
  return out;
}

bool HaveOnnxRuntime() { return fs::exists(kNodeDir / "node_modules/onnxruntime-node"); }

RunResult RunCheckGpt2(const fs::path& export_dir, const fs::path& config, const fs::path& fixture) {
  std::string cmd = "cd " + Quote(kNodeDir.string()) + " && node check_gpt2.js --model " +
                    Quote((export_dir / "model.onnx").string()) + " --config " + Quote(config.string());
  if (!fixture.empty()) cmd += " --fixture " + Quote(fixture.string());
  return Run(cmd);
}

RunResult RunCheckCb(const fs::path& export_dir, const fs::path& fixture, int fbs, const std::string& slots,
                     int chunk) {
  return Run("cd " + Quote(kNodeDir.string()) + " && node check_cb.js --model " +
             Quote((export_dir / "model.onnx").string()) + " --fixture " + Quote(fixture.string()) + " --fbs " +
             std::to_string(fbs) + " --slots " + Quote(slots) + " --chunk " + std::to_string(chunk));
}

std::optional<json> ParseReport(const std::string& out) {
  size_t start = out.rfind("\n{");
  start = start == std::string::npos ? (out.rfind('{', 0) == 0 ? 0 : std::string::npos) : start + 1;
  if (start == std::string::npos) return std::nullopt;
  return json::parse(out.substr(start), nullptr, false);
}

json CheckWithOnnxRuntime(const fs::path& export_dir, const fs::path& fixture, int64_t kv_heads, int64_t head_dim,
                          std::string* log) {
  // check_gpt2.js sizes the zero cache from GPT-2 config keys: give it the KV cache layout
  // (taking the HF key or, for GPT-J style configs, the GPT-2 one).
  const json cfg = ReadJson(fixture / "config.json");
  auto first = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (cfg.contains(k)) return cfg[k];
    return json();
  };
  const json kv_cfg = {{"n_layer", first({"num_hidden_layers", "n_layer", "n_layers"})},
                       {"n_head", kv_heads},
                       {"n_embd", kv_heads * head_dim},
                       {"vocab_size", cfg["vocab_size"]},
                       {"n_positions", first({"max_position_embeddings", "n_positions", "max_seq_len"})}};
  std::ofstream(export_dir / "kv_config.json") << kv_cfg.dump();
  RunResult r = RunCheckGpt2(export_dir, export_dir / "kv_config.json", fixture);
  log->append(r.out);
  return ParseReport(*log).value_or(json(json::value_t::discarded));
}

void ExpectOnnxRuntimeMatchesHf(const std::string& name, int64_t kv_heads, int64_t head_dim,
                                const std::set<std::string>& skip) {
  const fs::path dir = kFixtures / name;
  TempDir tmp;
  ASSERT_TRUE(Export(dir, tmp.path()).ok());
  std::string log;
  json report = CheckWithOnnxRuntime(tmp.path(), dir, kv_heads, head_dim, &log);
  ASSERT_TRUE(report.is_object()) << log;
  if (skip.empty()) {  // else: the checks below, minus skipped ones
    EXPECT_TRUE(report.value("ok", false)) << log;
  }
  double worst = 0;
  for (const char* check : {"prefill_0", "prefill_1", "token_by_token_0", "token_by_token_1", "greedy_0", "greedy_1",
                            "chunked_prefill_0", "chunked_prefill_1", "chunked_greedy_1", "batch_padded"}) {
    if (skip.count(check)) continue;
    ASSERT_TRUE(report["checks"].contains(check)) << check << ": " << log;
    EXPECT_TRUE(report["checks"][check].value("pass", false)) << check << ": " << report["checks"][check];
    if (report["checks"][check].contains("max_abs_diff"))
      worst = std::max(worst, report["checks"][check]["max_abs_diff"].get<double>());
  }
  std::printf("%s: onnxruntime max abs logits diff vs HF: %.3g\n", name.c_str(), worst);
  EXPECT_LE(worst, 1e-4);
}

}  // namespace qeff::exporter::test_util
