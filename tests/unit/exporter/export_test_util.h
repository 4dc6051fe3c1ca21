// Helpers shared by the exporter tests (exporter_test, llama_export_test,
// more_models_export_test, continuous_batching_export_test): temp dirs, running commands and
// the exporter, reading exports back, editing fixtures, and running tests/node/check_gpt2.js /
// check_cb.js under onnxruntime.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "tests/unit/temp_dir.h"

#include "absl/status/statusor.h"
#include "services/exporter/exporter.h"

namespace qeff::exporter::test_util {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Inline so that other namespace-scope paths built from them in a test file are initialized after.
inline const fs::path kSource = QEFF_SOURCE_DIR;
inline const fs::path kFixtures = kSource / "tests/fixtures/hf";
inline const fs::path kNodeDir = kSource / "tests/node";

// The ops the compiler implements (the contract): nothing else may appear in the main graph.
// `allow_constant` adds "Constant" (the GPT-2 graph uses it).
const std::set<std::string>& AllowedOps(bool allow_constant);

using qeff::testing::TempDir;

// Single-quotes `s` for /bin/sh.
std::string Quote(const std::string& s);

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr
};

// Runs `cmd` with /bin/sh, capturing stdout and stderr.
RunResult Run(const std::string& cmd);

// Exports the HF folder `model_dir` into `out`.
absl::StatusOr<ExportSummary> Export(const fs::path& model_dir, const fs::path& out, ExportOptions options = {});

json ReadJson(const fs::path& p);

// Runs onnx's checker on `model_path` and parses it into `m`; the failure says which step failed.
::testing::AssertionResult CheckedModel(const fs::path& model_path, onnx::ModelProto* m);

// The float32 values of the external initializer `name` of `m`, read from dir/model.onnx.data.
std::vector<float> ReadInitializer(const onnx::ModelProto& m, const fs::path& dir, const std::string& name);

// A value's shape: dim_param names or dim_value numbers.
std::vector<std::string> Dims(const onnx::ValueInfoProto& v);

// A copy of fixture `name` (kFixtures / name) in tmp / name, with config.json edited by `edit`.
fs::path EditedCopy(const fs::path& tmp, const std::string& name, const std::function<void(json&)>& edit);

bool HaveOnnxRuntime();

// Runs tests/node/check_gpt2.js on export_dir/model.onnx with the GPT-2 style `config`, checking
// against the references of `fixture` unless it is empty.
RunResult RunCheckGpt2(const fs::path& export_dir, const fs::path& config, const fs::path& fixture);

// Runs tests/node/check_cb.js on the continuous-batching export export_dir/model.onnx against
// the references of `fixture`: `fbs` KV slots, the fixture's two prompts prefilled into
// `slots` ("a,b") in chunks of `chunk` tokens, then decoded together.
RunResult RunCheckCb(const fs::path& export_dir, const fs::path& fixture, int fbs, const std::string& slots,
                     int chunk);

// check_gpt2.js's JSON report is the last line of its output that starts with '{'. Returns it
// parsed (discarded if it is not JSON), or nullopt if there is no such line.
std::optional<json> ParseReport(const std::string& out);

// Runs check_gpt2.js on an export against a fixture's references, telling it the KV cache
// layout (kv_heads x head_dim); appends the output to *log and returns the report (discarded if
// there is none).
json CheckWithOnnxRuntime(const fs::path& export_dir, const fs::path& fixture, int64_t kv_heads, int64_t head_dim,
                          std::string* log);

// Exports fixture `name` and checks it with onnxruntime against HF's outputs: prefill, token by
// token, greedy, chunked prefill (+ greedy) and a padded batch, logits within 1e-4 (gtest
// assertions), except the checks named in `skip`.
void ExpectOnnxRuntimeMatchesHf(const std::string& name, int64_t kv_heads, int64_t head_dim,
                                const std::set<std::string>& skip = {});

}  // namespace qeff::exporter::test_util
