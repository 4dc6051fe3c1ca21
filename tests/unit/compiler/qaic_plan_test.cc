// The qaic target writes QEfficient's files and invokes qaic-compile exactly as QEfficient does;
// a stand-in compiler script records its argv and working directory.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/hf/model_folder.h"
#include "services/compiler/compiler.h"
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

}  // namespace
}  // namespace qeff::compiler
