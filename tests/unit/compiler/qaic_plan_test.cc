// The qaic target writes QEfficient's files and invokes qaic-compile exactly as QEfficient does;
// a stand-in compiler script records its argv and working directory.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "services/compiler/compiler.h"
#include "services/compiler/qaic_plan.h"
#include "services/exporter/exporter.h"

namespace qeff::compiler {
namespace {
namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(QaicPlanTest, WritesSpecializationsCustomIoAndRunsQaicCompile) {
  const fs::path work = fs::temp_directory_path() / ("qeff-qaic-" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work / "export");
  fs::create_directories(work / "qpc");
  auto folder = hf::ModelFolder::Open(fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2");
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_TRUE(exporter::ExportModel(*folder, {}, work / "export", [](auto&&...) {}).ok());

  CompileOptions opt;
  opt.target = "qaic";
  opt.prefill_seq_len = 32;
  opt.ctx_len = 128;
  opt.num_cores = 14;
  // Without the SDK: a clear FAILED_PRECONDITION naming the command.
  ::setenv("QEFF_QAIC_COMPILE", (work / "missing-qaic-compile").c_str(), 1);
  auto missing = CompileModel(work / "export", opt, work / "qpc", [](auto&&...) {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("-retained-state"), std::string::npos);

  // With a stand-in SDK compiler.
  const fs::path fake = work / "qaic-compile";
  std::ofstream(fake) << "#!/bin/sh\necho \"$@\" > args.txt\npwd > cwd.txt\nmkdir -p qpc && touch qpc/programqpc.bin\n";
  fs::permissions(fake, fs::perms::owner_all);
  ::setenv("QEFF_QAIC_COMPILE", fake.c_str(), 1);
  fs::remove_all(work / "qpc");
  fs::create_directories(work / "qpc");
  auto r = CompileModel(work / "export", opt, work / "qpc", [](auto&&...) {});
  ::unsetenv("QEFF_QAIC_COMPILE");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(fs::exists(work / "qpc/qpc/programqpc.bin"));
  const std::string args = Slurp(work / "qpc/args.txt");
  EXPECT_EQ(args, "-aic-hw -aic-hw-version=ai100 -m=" + (work / "export/model.onnx").string() +
                      " -retained-state -convert-to-fp16 -aic-num-cores=14"
                      " -network-specialization-config=specializations.json"
                      " -custom-IO-list-file=custom_io.yaml -aic-binary-dir=qpc\n");
  EXPECT_EQ(Slurp(work / "qpc/specializations.json").find("\"Prefill\"") != std::string::npos, true);
  const std::string spec = Slurp(work / "qpc/specializations.json");
  EXPECT_NE(spec.find("\"seq_len\": \"32\""), std::string::npos) << spec;
  EXPECT_NE(spec.find("\"seq_len\": \"1\""), std::string::npos) << spec;
  EXPECT_NE(spec.find("\"ctx_len\": \"128\""), std::string::npos) << spec;
  const std::string io = Slurp(work / "qpc/custom_io.yaml");
  EXPECT_EQ(io.rfind(" - IOName: past_key.0\n   Precision: float16\n\n - IOName: past_key.0_RetainedState\n"
                     "   Precision: float16\n\n - IOName: past_value.0\n", 0), 0u) << io;
  EXPECT_NE(io.find("past_value.1_RetainedState"), std::string::npos);
  fs::remove_all(work);
}

// int8/int4 weights ask the SDK for QEfficient's mxfp6_matmul compression, in its argv position.
TEST(QaicPlanTest, QuantizedWeightsAddMxfp6Matmul) {
  CompileOptions opt;
  opt.num_cores = 16;
  for (const char* dtype : {"fp32", "bf16", "int8", "int4"}) {
    opt.weight_dtype = dtype;
    const auto argv = QaicCompileCommand("m.onnx", opt, /*causal=*/true);
    const auto at = std::find(argv.begin(), argv.end(), "-convert-to-fp16");
    ASSERT_NE(at, argv.end());
    const bool quantized = std::string(dtype) == "int8" || std::string(dtype) == "int4";
    EXPECT_EQ(*(at + 1) == "-mxfp6-matmul", quantized) << dtype;
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-mxfp6-matmul"), quantized ? 1 : 0) << dtype;
  }
}

// Continuous batching: QEfficient's CB specializations in the qaic plan, the cpu ladder of decode
// batches, qconfig.json in both, and clear errors when export and options disagree.
TEST(QaicPlanTest, ContinuousBatchingSpecializationsAndQconfig) {
  const fs::path work = fs::temp_directory_path() / ("qeff-qaic-cb-" + std::to_string(::getpid()));
  fs::remove_all(work);
  for (const char* d : {"export", "export-cb", "qaic", "cpu", "bad"}) fs::create_directories(work / d);
  auto folder = hf::ModelFolder::Open(fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2");
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_TRUE(exporter::ExportModel(*folder, {}, work / "export", [](auto&&...) {}).ok());
  exporter::ExportOptions cb;
  cb.continuous_batching = true;
  ASSERT_TRUE(exporter::ExportModel(*folder, cb, work / "export-cb", [](auto&&...) {}).ok());
  // The export service carries config.json; do the same here for qconfig.json.
  fs::copy_file(fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2/config.json", work / "export-cb/config.json");

  CompileOptions opt;
  opt.target = "qaic";
  opt.prefill_seq_len = 16;
  opt.ctx_len = 64;
  opt.full_batch_size = 4;
  ::setenv("QEFF_QAIC_COMPILE", (work / "missing").c_str(), 1);
  auto q = CompileModel(work / "export-cb", opt, work / "qaic", [](auto&&...) {});
  ::unsetenv("QEFF_QAIC_COMPILE");
  EXPECT_EQ(q.status().code(), absl::StatusCode::kFailedPrecondition);  // no SDK, files written
  const auto spec = nlohmann::json::parse(Slurp(work / "qaic/specializations.json"));
  const nlohmann::json want = {
      {"specializations",
       {{{"name", "Prefill"}, {"symbols", {{"batch_size", "1"}, {"seq_len", "16"}, {"ctx_len", "64"}, {"full_batch_size", "4"}}}},
        {{"name", "Decode"}, {"symbols", {{"batch_size", "4"}, {"seq_len", "1"}, {"ctx_len", "64"}, {"full_batch_size", "4"}}}}}}};
  EXPECT_EQ(spec, want) << spec.dump(2);
  const auto qconfig = nlohmann::json::parse(Slurp(work / "qaic/qconfig.json"));
  EXPECT_EQ(qconfig["huggingface_config"]["model_type"], "gpt2");
  EXPECT_EQ(qconfig["qpc_config"]["aic_compiler_config"]["specializations"], want["specializations"]);
  EXPECT_EQ(qconfig["qpc_config"]["aic_compiler_config"]["full_batch_size"], 4);
  EXPECT_TRUE(qconfig["qpc_config"]["QEff_config"].contains("pytorch_transforms"));

  opt.target = "cpu";
  auto c = CompileModel(work / "export-cb", opt, work / "cpu", [](auto&&...) {});
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<std::pair<std::string, int>> got;
  for (const auto& s : c->specializations) got.emplace_back(s.name, s.batch_size);
  const std::vector<std::pair<std::string, int>> ladder = {{"Prefill", 1}, {"Decode", 4}, {"Decode_bs1", 1}, {"Decode_bs2", 2}};
  EXPECT_EQ(got, ladder);
  EXPECT_TRUE(fs::exists(work / "cpu/qconfig.json"));

  // Export and options must agree.
  opt.full_batch_size = 0;
  EXPECT_EQ(CompileModel(work / "export-cb", opt, work / "bad", [](auto&&...) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  opt.full_batch_size = 4;
  auto mismatch = CompileModel(work / "export", opt, work / "bad", [](auto&&...) {});
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("--continuous-batching"), std::string::npos);
  opt.batch_size = 2;
  EXPECT_EQ(ValidateOptions(opt).code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(work);
}

}  // namespace
}  // namespace qeff::compiler
