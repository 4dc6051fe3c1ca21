// Fuzzes the cpu compiler with arbitrary model.onnx bytes (seeded with real exports, whose
// external data file sits next to the input): any input must give a status, never a crash,
// a hang on a huge allocation, or a write outside the staging directory.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "services/compiler/compiler.h"

namespace {
namespace fs = std::filesystem;

const fs::path& WorkDir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("qeff-onnx-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d / "export");
    // Real external data, so mutated seeds still find their weights.
    const fs::path data = fs::path(QEFF_FUZZ_SEED_DIR) / "model.onnx.data";
    std::error_code ec;
    fs::copy_file(data, d / "export/model.onnx.data", fs::copy_options::overwrite_existing, ec);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& dir = WorkDir();
  {
    std::ofstream out(dir / "export/model.onnx", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const fs::path staging = dir / "qpc";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  qeff::compiler::CompileOptions options;
  options.prefill_seq_len = 4;
  options.ctx_len = 16;
  (void)qeff::compiler::CompileModel(dir / "export", options, staging, [](auto&&...) {});
  return 0;
}
