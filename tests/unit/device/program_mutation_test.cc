// Program::Load against damaged programs: real compiled qpcs (tiny Llama, the same exported for
// continuous batching, tiny Mixtral) each get 300 deterministic random edits of program.pb
// (program_mutator.h). Every edited program must either be rejected at load with DATA_LOSS,
// FAILED_PRECONDITION or INVALID_ARGUMENT, or load and then, run on valid inputs, fail with a
// status or produce finite outputs. A crash fails the test by crashing it; ASan builds
// (-DQEFF_SANITIZE=ON) also catch out-of-bounds accesses that would not crash.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/program.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "tests/unit/device/program_mutator.h"
#include "tests/unit/temp_dir.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";
constexpr int kEdits = 300;

using qeff::testing::TempDir;

// Exports and compiles `model` for cpu into <dir>/qpc.
void Compile(const fs::path& model, const fs::path& dir, int full_batch_size) {
  auto folder = hf::ModelFolder::Open(model);
  ASSERT_TRUE(folder.ok()) << folder.status();
  exporter::ExportOptions eo;
  eo.continuous_batching = full_batch_size > 0;
  fs::create_directories(dir / "export");
  fs::create_directories(dir / "qpc");
  auto e = exporter::ExportModel(*folder, eo, dir / "export", [](auto&&...) {});
  ASSERT_TRUE(e.ok()) << e.status();
  compiler::CompileOptions co;
  co.prefill_seq_len = 8;
  co.ctx_len = 32;
  co.full_batch_size = full_batch_size;
  auto c = compiler::CompileModel(dir / "export", co, dir / "qpc", [](auto&&...) {});
  ASSERT_TRUE(c.ok()) << c.status();
}

struct Outcome {
  std::map<std::string, int> rejected;  // by status code
  int run_failed = 0, finite = 0;
};

void MutateAndRun(const std::string& fixture, int full_batch_size, uint64_t seed) {
  TempDir dir(fixture + std::to_string(full_batch_size));
  ASSERT_NO_FATAL_FAILURE(Compile(kFixtures / fixture, dir.path(), full_batch_size));
  auto program_pb = util::ReadFile(dir.path() / "qpc/program.pb", 1 << 30);
  auto weights_file = util::ReadFile(dir.path() / "qpc/weights.bin", 1 << 30);
  ASSERT_TRUE(program_pb.ok() && weights_file.ok());
  auto weights = std::make_shared<const std::string>(std::move(weights_file).value());

  // The unedited program loads and runs.
  {
    auto p = device::Program::Load(dir.path() / "qpc");
    ASSERT_TRUE(p.ok()) << p.status();
    auto s = device::Session::Create(*p, 1);
    ASSERT_TRUE(s.ok()) << s.status();
    bool finite = false;
    ASSERT_TRUE(testing::RunEverySpecialization(**s, &finite).ok());
    EXPECT_TRUE(finite);
  }

  qeff::v1::Program original;
  ASSERT_TRUE(original.ParseFromString(*program_pb));
  testing::ProgramMutator mutator(seed);
  Outcome out;
  for (int e = 0; e < kEdits; ++e) {
    qeff::v1::Program p = original;
    // One to three edits at a time.
    std::string what = mutator.Mutate(p);
    for (int k = static_cast<int>(seed + e) % 3; k > 0; --k) what += "; " + mutator.Mutate(p);
    std::string bytes;
    ASSERT_TRUE(p.SerializeToString(&bytes));
    auto loaded = device::Program::FromBytes(bytes, weights, "qpc mutated");
    if (std::getenv("QEFF_MUTATION_VERBOSE") != nullptr) {
      std::printf("edit %d (%s): %s\n", e, what.c_str(), loaded.ok() ? "loads" : loaded.status().ToString().c_str());
    }
    if (!loaded.ok()) {
      const absl::StatusCode code = loaded.status().code();
      EXPECT_TRUE(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kFailedPrecondition ||
                  code == absl::StatusCode::kInvalidArgument)
          << "edit " << e << " (" << what << "): " << loaded.status();
      EXPECT_NE(loaded.status().message().find("qpc mutated"), std::string::npos) << loaded.status();
      ++out.rejected[absl::StatusCodeToString(code)];
      continue;
    }
    auto session = device::Session::Create(*loaded, 1);
    ASSERT_TRUE(session.ok()) << session.status();
    bool finite = false;
    absl::Status st = testing::RunEverySpecialization(**session, &finite);
    if (!st.ok()) {
      ++out.run_failed;
      continue;
    }
    EXPECT_TRUE(finite) << "edit " << e << " (" << what << ") loads and runs to non-finite outputs";
    ++out.finite;
  }
  int rejected = 0;
  std::string codes;
  for (const auto& [code, n] : out.rejected) {
    rejected += n;
    absl::StrAppend(&codes, codes.empty() ? "" : ", ", code, " ", n);
  }
  std::printf("%s (full_batch_size %d): %d edits: %d rejected at load (%s), %d loaded and failed to run, %d ran "
              "with finite outputs\n",
              fixture.c_str(), full_batch_size, kEdits, rejected, codes.c_str(), out.run_failed, out.finite);
}

TEST(ProgramMutationTest, Llama) { MutateAndRun("llama", 0, 1); }
TEST(ProgramMutationTest, LlamaContinuousBatching) { MutateAndRun("llama", 3, 2); }
TEST(ProgramMutationTest, Mixtral) { MutateAndRun("mixtral", 0, 3); }
TEST(ProgramMutationTest, Gpt2) { MutateAndRun("gpt2", 0, 4); }

}  // namespace
}  // namespace qeff
