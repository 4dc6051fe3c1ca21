// Fuzzes the program loader and the kernels it admits: input = one seed-selector byte + program.pb
// bytes. At start the fuzzer compiles three tiny qpcs in-process (tests/fixtures/hf llama, llama
// for continuous batching with 2 KV slots, mixtral) and keeps their weights.bin; the selector picks
// whose weights a program runs with. Every input must be rejected by Program::FromBytes with a
// status, or load and then run every specialization on valid inputs (program_mutator.h) without
// a crash, a sanitizer report or an out-of-bounds access. The custom mutator mostly applies
// structured edits (the mutation test's) to a parsed program and otherwise libFuzzer's byte
// mutations; an input that does not parse starts again from a seed program.
//
//   mkdir -p CORPUS && build-fuzz/tests/fuzz/program_fuzz -max_total_time=600 -max_len=1000000 CORPUS
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/program.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "tests/unit/device/program_mutator.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {
namespace fs = std::filesystem;

struct Seed {
  std::string program;  // program.pb bytes
  std::shared_ptr<const std::string> weights;  // weights.bin
};

Seed Compile(const std::string& fixture, int full_batch_size) {
  const fs::path dir =
      fs::temp_directory_path() / ("qeff-program-fuzz-" + fixture + std::to_string(full_batch_size) + "-" +
                                   std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "export");
  fs::create_directories(dir / "qpc");
  auto folder = qeff::hf::ModelFolder::Open(fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf" / fixture);
  if (!folder.ok()) std::abort();
  qeff::exporter::ExportOptions eo;
  eo.continuous_batching = full_batch_size > 0;
  if (!qeff::exporter::ExportModel(*folder, eo, dir / "export", [](auto&&...) {}).ok()) std::abort();
  qeff::compiler::CompileOptions co;
  co.prefill_seq_len = 4;
  co.ctx_len = 16;
  co.full_batch_size = full_batch_size;
  if (!qeff::compiler::CompileModel(dir / "export", co, dir / "qpc", [](auto&&...) {}).ok()) std::abort();
  Seed s;
  s.program = *qeff::util::ReadFile(dir / "qpc/program.pb", 1 << 30);
  s.weights = std::make_shared<const std::string>(*qeff::util::ReadFile(dir / "qpc/weights.bin", 1 << 30));
  fs::remove_all(dir);
  return s;
}

const std::vector<Seed>& Seeds() {
  static const std::vector<Seed> seeds = [] {
    google::protobuf::SetLogHandler(nullptr);  // parse errors of fuzzed bytes are expected
    // Keep a fuzzed program from asking for gigabytes of arena or KV cache.
    qeff::device::Program::SetMemoryLimitForTesting(uint64_t{256} << 20);
    return std::vector<Seed>{Compile("llama", 0), Compile("llama", 2), Compile("mixtral", 0)};
  }();
  return seeds;
}

}  // namespace

// Writes the seed programs into the corpus directory (the first non-flag argument) when it is
// empty, so libFuzzer starts from them and sizes -max_len for them.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const auto& seeds = Seeds();
  for (int i = 1; i < *argc; ++i) {
    const char* arg = (*argv)[i];
    if (arg[0] == '-') continue;
    std::error_code ec;
    if (!fs::is_directory(arg, ec) || !fs::is_empty(arg, ec)) break;
    for (size_t k = 0; k < seeds.size(); ++k) {
      std::string bytes(1, static_cast<char>(k));
      bytes += seeds[k].program;
      (void)qeff::util::WriteFileSynced(fs::path(arg) / ("seed" + std::to_string(k)), bytes);
    }
    break;
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  const auto& seeds = Seeds();
  qeff::testing::ProgramMutator mutator(seed);
  qeff::v1::Program p;
  const uint8_t which = size > 0 ? data[0] % seeds.size() : seed % seeds.size();
  const bool parsed = size > 1 && p.ParseFromArray(data + 1, static_cast<int>(size - 1));
  if (parsed && seed % 4 == 0) {
    // Byte-level mutation of the program (varints, lengths, strings).
    const size_t n = LLVMFuzzerMutate(data + 1, size - 1, max_size - 1);
    return n + 1;
  }
  if (!parsed && !p.ParseFromString(seeds[which].program)) return 0;
  for (unsigned k = 0; k <= seed % 3; ++k) mutator.Mutate(p);
  std::string bytes;
  if (!p.SerializeToString(&bytes) || bytes.size() + 1 > max_size) {
    bytes = seeds[which].program;
    if (bytes.size() + 1 > max_size) return 0;
  }
  data[0] = which;
  std::memcpy(data + 1, bytes.data(), bytes.size());
  return bytes.size() + 1;
}

// QEFF_FUZZ_STATS=1: how many inputs loaded and ran, printed at exit.
struct Stats {
  long inputs = 0, loaded = 0, ran = 0;
  ~Stats() {
    if (std::getenv("QEFF_FUZZ_STATS") != nullptr) {
      std::fprintf(stderr, "program_fuzz: %ld inputs, %ld loaded, %ld ran every specialization\n", inputs, loaded, ran);
    }
  }
} stats;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ++stats.inputs;
  const auto& seeds = Seeds();
  const Seed& seed = seeds[data[0] % seeds.size()];
  auto program = qeff::device::Program::FromBytes(
      std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), seed.weights, "qpc fuzz");
  if (!program.ok()) {
    const auto code = program.status().code();
    if (code != absl::StatusCode::kDataLoss && code != absl::StatusCode::kFailedPrecondition &&
        code != absl::StatusCode::kResourceExhausted) {
      std::fprintf(stderr, "unexpected status: %s\n", program.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  ++stats.loaded;
  auto session = qeff::device::Session::Create(*program, 1);
  if (!session.ok()) return 0;
  bool finite = false;
  if (qeff::testing::RunEverySpecialization(**session, &finite).ok()) ++stats.ran;
  return 0;
}
