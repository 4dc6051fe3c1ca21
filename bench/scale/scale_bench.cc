// One pipeline stage of a large model in its own process, reporting wall time and peak resident
// memory, so export, compile and load are measured apart (bench/run_scale_bench.sh runs them):
//
//   qeff-scale-bench export  --model DIR --out EXPORT_DIR
//   qeff-scale-bench compile --export EXPORT_DIR --out QPC_DIR [--weight-dtype fp32|bf16|int8|int4]
//                            [--ctx 256] [--prefill 32]
//   qeff-scale-bench load    --qpc QPC_DIR [--decode-steps 8]
//
// Prints one JSON object: stage, seconds, peak_rss_bytes (getrusage), and for load the weights
// kept (weights.bin bytes), peak RSS over them, and decode tokens/s over a few greedy steps.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "services/runner/generator.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

int64_t PeakRssBytes() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int Fail(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qeff scale benchmark: one stage, its time and peak RSS"};
  app.require_subcommand(1);
  std::string model, out, export_dir, qpc, dtype = "fp32";
  int ctx = 256, prefill = 32, steps = 8;
  auto* ex = app.add_subcommand("export", "export an HF folder");
  ex->add_option("--model", model)->required();
  ex->add_option("--out", out)->required();
  auto* co = app.add_subcommand("compile", "compile an export for cpu");
  co->add_option("--export", export_dir)->required();
  co->add_option("--out", out)->required();
  co->add_option("--weight-dtype", dtype);
  co->add_option("--ctx", ctx);
  co->add_option("--prefill", prefill);
  auto* lo = app.add_subcommand("load", "load a qpc and decode a few tokens");
  lo->add_option("--qpc", qpc)->required();
  lo->add_option("--decode-steps", steps);
  CLI11_PARSE(app, argc, argv);

  nlohmann::json r;
  const auto t0 = Clock::now();
  if (ex->parsed()) {
    auto folder = qeff::hf::ModelFolder::Open(model);
    if (!folder.ok()) return Fail("open", folder.status());
    auto s = qeff::exporter::ExportModel(*folder, {}, out, [](auto&&...) {});
    if (!s.ok()) return Fail("export", s.status());
    r["stage"] = "export";
  } else if (co->parsed()) {
    qeff::compiler::CompileOptions opt;
    opt.ctx_len = ctx;
    opt.prefill_seq_len = prefill;
    opt.weight_dtype = dtype;
    std::error_code ec;
    fs::create_directories(out, ec);
    auto s = qeff::compiler::CompileModel(export_dir, opt, out, [](auto&&...) {});
    if (!s.ok()) return Fail("compile", s.status());
    r["stage"] = "compile";
    r["weight_dtype"] = dtype;
  } else {
    auto session = qeff::device::Session::Load(qpc, 0);
    if (!session.ok()) return Fail("load", session.status());
    const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t load_peak = PeakRssBytes();
    qeff::runner::GenerationRequest req;
    req.prompt = {1, 2, 3, 4};
    req.max_new_tokens = steps;
    auto g = qeff::runner::Generate(**session, req, [](int32_t) { return true; });
    if (!g.ok()) return Fail("generate", g.status());
    const auto weights = static_cast<int64_t>(fs::file_size(fs::path(qpc) / "weights.bin"));
    r = {{"stage", "load"},
         {"seconds", load_s},
         {"peak_rss_bytes", load_peak},
         {"weights_bytes", weights},
         {"peak_rss_over_weights", static_cast<double>(load_peak) / static_cast<double>(weights)},
         {"decode_tokens_per_s", g->stats.decode_tokens_per_s}};
    std::printf("%s\n", r.dump().c_str());
    return 0;
  }
  r["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  r["peak_rss_bytes"] = PeakRssBytes();
  std::printf("%s\n", r.dump().c_str());
  return 0;
}
