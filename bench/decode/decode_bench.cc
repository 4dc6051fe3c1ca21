// Decode speed of qeff's cpu runtime on an HF folder, as a ratio to the memory-bandwidth
// roofline: every decode step must stream each weight byte once and the KV cache's rows up to
// its position (attention reads no further), so
//   roofline tokens/s = measured read bandwidth / (weight + KV-cache bytes read per token),
// the KV bytes averaged over the run's positions (the prompt's length + steps / 2 of ctx_len rows).
//
//   qeff-decode-bench --model DIR [--ctx 256] [--prompt 32] [--steps 128] [--weight-dtype fp32|bf16|int8|int4]
//                     [--threads 0] [--bandwidth-gbs X] [--work-dir DIR [--reuse-export]]
//                     [--prefill-tokens N ...]
// Prints one JSON object. Decode runs 5 times: `decode_tokens_per_s` is the best run's speed;
// each run's share of the roofline divides by the mean of the bandwidth probes taken just before
// and just after it (`decode_runs`), and `fraction_of_roofline` is the median run's share.
// --bandwidth-gbs X replaces the probes by a fixed bandwidth. The prompt
// is the token ids 100, 101, ...; `generated_token_ids` are the greedy tokens after it (so other
// runtimes can be checked against them). Each --prefill-tokens N reports
// `prefill_tokens_per_s[N]` for one prefill call on N tokens (best of 3): N = --prompt runs on the
// decode qpc, any other N on a qpc compiled with prefill_seq_len N.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/read_bandwidth.h"
#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/session.h"
#include "qeff/v1/program.pb.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "services/runner/generator.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes the decode specialization must read per call: constants (gathers read one row; a
// SparseMoE reads its router and top_k of its experts) and, separately, the retained state (the
// KV cache is read over its whole ctx_len every step). `all_weights` counts every expert.
struct DecodeBytes {
  int64_t weights = 0;
  int64_t all_weights = 0;
  int64_t state = 0;
};

DecodeBytes DecodeReadBytes(const fs::path& qpc) {
  auto bytes = qeff::util::ReadFile(qpc / "program.pb", 1ull << 30);
  qeff::v1::Program program;
  if (!bytes.ok() || !program.ParseFromString(*bytes)) return {};
  const auto* spec = &program.specializations(0);
  for (const auto& s : program.specializations())
    if (s.seq_len() < spec->seq_len()) spec = &s;
  DecodeBytes total;
  for (const auto& st : program.states()) {
    int64_t n = 4;
    for (int64_t d : st.shape()) n *= d;
    total.state += n;
  }
  for (const auto& op : spec->ops()) {
    for (int k = 0; k < op.inputs_size(); ++k) {
      const int i = op.inputs(k);
      if (i < 0 || spec->tensors(i).storage() != qeff::v1::WEIGHT) continue;
      const auto& t = spec->tensors(i);
      int64_t read = t.bytes();
      if ((op.type() == "Gather" || op.type() == "GatherElements") && k == 0) {
        read = t.bytes() / std::max<int64_t>(1, t.shape(0));  // one row per token
      }
      total.all_weights += read;
      if (op.type() == "SparseMoE" && k >= 2) {
        int64_t experts = 1, top_k = 1;
        for (const auto& a : op.attrs()) {
          if (a.name() == "num_experts") experts = a.i();
          if (a.name() == "top_k") top_k = a.i();
        }
        read = read * top_k / std::max<int64_t>(1, experts);  // one token routes to top_k experts
      }
      total.weights += read;
    }
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qeff decode benchmark (roofline ratio)"};
  std::string model, dtype = "fp32";
  int ctx = 256, prompt = 32, steps = 128, threads = 0;
  double bw = 0;
  std::string keep;
  app.add_option("--model", model, "HF model folder")->required();
  app.add_option("--ctx", ctx);
  app.add_option("--prompt", prompt);
  app.add_option("--steps", steps);
  app.add_option("--weight-dtype", dtype);
  app.add_option("--threads", threads, "0 = all cores");
  app.add_option("--bandwidth-gbs", bw, "memory read bandwidth; measured when 0");
  app.add_option("--work-dir", keep, "keep the export and qpc here (default: a temp dir, removed)");
  bool reuse_export = false;
  std::vector<int> prefill_tokens;
  app.add_flag("--reuse-export", reuse_export, "use the export an earlier run left in --work-dir");
  app.add_option("--prefill-tokens", prefill_tokens, "also measure prefill tokens/s on a prompt of N tokens")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const fs::path work =
      keep.empty() ? fs::temp_directory_path() / ("qeff-decode-bench-" + std::to_string(::getpid())) : fs::path(keep);
  fs::create_directories(work / "export");
  fs::create_directories(work / "qpc");
  auto folder = qeff::hf::ModelFolder::Open(model);
  if (!folder.ok()) {
    std::fprintf(stderr, "%s\n", folder.status().ToString().c_str());
    return 1;
  }
  auto t0 = Clock::now();
  // --reuse-export: a benchmark sweeping dtypes and threads exports a multi-GB model once.
  if (!(reuse_export && fs::exists(work / "export" / "model.onnx"))) {
    auto exported = qeff::exporter::ExportModel(*folder, {}, work / "export", [](auto&&...) {});
    if (!exported.ok()) {
      std::fprintf(stderr, "export: %s\n", exported.status().ToString().c_str());
      return 1;
    }
  }
  auto t1 = Clock::now();
  auto compile = [&](int seq_len, int ctx_len, const fs::path& qpc) -> absl::Status {
    qeff::compiler::CompileOptions opt;
    opt.ctx_len = ctx_len;
    opt.prefill_seq_len = seq_len;
    opt.weight_dtype = dtype;
    opt.num_cores = threads;
    fs::remove_all(qpc);
    fs::create_directories(qpc);
    auto compiled = qeff::compiler::CompileModel(work / "export", opt, qpc, [](auto&&...) {});
    return compiled.status();
  };
  if (absl::Status st = compile(prompt, ctx, work / "qpc"); !st.ok()) {
    std::fprintf(stderr, "compile: %s\n", st.ToString().c_str());
    return 1;
  }
  auto t2 = Clock::now();
  auto session = qeff::device::Session::Load(work / "qpc", threads);
  if (!session.ok()) {
    std::fprintf(stderr, "load: %s\n", session.status().ToString().c_str());
    return 1;
  }
  auto prompt_ids = [](int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(100 + i);
    return ids;
  };
  qeff::runner::GenerationRequest req;
  req.prompt = prompt_ids(prompt);
  req.max_new_tokens = 8;
  (void)qeff::runner::Generate(**session, req, [](int32_t) { return true; });  // warm-up
  req.max_new_tokens = steps;
  (void)(*session)->TakeProfile();
  // This VM's bandwidth drifts by tens of percent between seconds: every decode run sits between
  // two bandwidth probes and its share of the roofline uses their mean, so a drift moves both
  // sides of the ratio alike. The reported share is the median run's; the speed, the best run's.
  constexpr int kRuns = 5;
  absl::StatusOr<qeff::runner::GenerationResult> r;
  qeff::bench::HugeBuffer buffer(bw > 0 ? 0 : size_t{1} << 30);
  auto probe = [&] { return bw > 0 ? bw : qeff::bench::MeasureReadBandwidthGBs(buffer, threads, 5); };
  std::vector<double> run_tps, run_bw;
  double before = probe();
  for (int rep = 0; rep < kRuns; ++rep) {
    auto run = qeff::runner::Generate(**session, req, [](int32_t) { return true; });
    if (!run.ok()) {
      std::fprintf(stderr, "generate: %s\n", run.status().ToString().c_str());
      return 1;
    }
    const double after = probe();
    run_tps.push_back(run->stats.decode_tokens_per_s);
    run_bw.push_back((before + after) / 2);
    before = after;
    if (!r.ok() || run->stats.decode_tokens_per_s > r->stats.decode_tokens_per_s) r = std::move(run);
  }
  const std::string profile = (*session)->TakeProfile();

  // Prefill speed: one prefill call of N tokens, best of 3 after a warm-up. A prompt of the
  // decode qpc's prefill_seq_len runs there; any other N gets a qpc with prefill_seq_len N.
  auto prefill_tokens_per_s = [&](qeff::device::Session& s, int n) -> absl::StatusOr<double> {
    qeff::runner::GenerationRequest preq;
    preq.prompt = prompt_ids(n);
    preq.max_new_tokens = 1;
    double best_ms = 0;
    for (int rep = 0; rep < 4; ++rep) {
      auto run = qeff::runner::Generate(s, preq, [](int32_t) { return true; });
      if (!run.ok()) return run.status();
      if (rep > 0 && (best_ms == 0 || run->stats.prefill_ms < best_ms)) best_ms = run->stats.prefill_ms;
    }
    return n / (best_ms / 1e3);
  };
  nlohmann::json prefill = nlohmann::json::object();
  for (int n : prefill_tokens) {
    if (n != prompt) continue;
    auto tps = prefill_tokens_per_s(**session, n);
    if (!tps.ok()) {
      std::fprintf(stderr, "prefill %d: %s\n", n, tps.status().ToString().c_str());
      return 1;
    }
    prefill[std::to_string(n)] = *tps;
  }
  session->reset();  // one model's weights in memory at a time
  for (int n : prefill_tokens) {
    if (n == prompt) continue;
    const fs::path qpc = work / ("qpc-prefill-" + std::to_string(n));
    absl::Status st = compile(n, std::max(ctx, n + 16), qpc);
    auto s = st.ok() ? qeff::device::Session::Load(qpc, threads)
                     : absl::StatusOr<std::unique_ptr<qeff::device::Session>>(st);
    auto tps = s.ok() ? prefill_tokens_per_s(**s, n) : absl::StatusOr<double>(s.status());
    if (!tps.ok()) {
      std::fprintf(stderr, "prefill %d: %s\n", n, tps.status().ToString().c_str());
      return 1;
    }
    prefill[std::to_string(n)] = *tps;
    s->reset();
    fs::remove_all(qpc);
  }
  const DecodeBytes read = DecodeReadBytes(work / "qpc");
  const int64_t wbytes = read.weights;
  // The decode calls after the first token run at positions prompt .. prompt + steps - 2, each
  // reading the cache rows 0 .. its position: prompt + steps / 2 rows on average.
  const double kv_rows = std::min<double>(ctx, prompt + steps / 2.0);
  const double kv_per_token = static_cast<double>(read.state) * kv_rows / ctx;
  const double per_token = static_cast<double>(read.weights) + kv_per_token;
  nlohmann::json runs = nlohmann::json::array();
  std::vector<double> share(kRuns);
  std::vector<int> order(kRuns);
  for (int i = 0; i < kRuns; ++i) {
    share[i] = run_tps[i] * per_token / (run_bw[i] * 1e9);
    order[i] = i;
    runs.push_back({{"tokens_per_s", run_tps[i]}, {"read_bandwidth_gb_per_s", run_bw[i]}, {"fraction_of_roofline", share[i]}});
  }
  std::nth_element(order.begin(), order.begin() + kRuns / 2, order.end(), [&](int a, int b) { return share[a] < share[b]; });
  const int median = order[kRuns / 2];
  bw = run_bw[median];
  const double roofline = bw * 1e9 / per_token;
  nlohmann::json out = {
      {"model", model},
      {"weight_dtype", dtype},
      {"threads", threads},
      {"ctx_len", ctx},
      {"prompt_tokens", prompt},
      {"decode_steps", steps},
      {"export_s", std::chrono::duration<double>(t1 - t0).count()},
      {"compile_s", std::chrono::duration<double>(t2 - t1).count()},
      {"ttft_ms", r->stats.ttft_ms},
      {"decode_tokens_per_s", r->stats.decode_tokens_per_s},
      {"weight_bytes_per_token", wbytes},
      {"weight_bytes_total", read.all_weights},
      {"kv_cache_bytes_per_token", kv_per_token},
      {"kv_cache_bytes", read.state},
      {"effective_gb_per_s", r->stats.decode_tokens_per_s * per_token / 1e9},
      {"read_bandwidth_gb_per_s", bw},
      {"roofline_tokens_per_s", roofline},
      {"fraction_of_roofline", share[median]},
      {"decode_runs", runs},
      {"prefill_tokens_per_s", prefill},
      {"generated_token_ids", r->tokens}};
  std::printf("%s\n", out.dump(2).c_str());
  if (!profile.empty()) std::fprintf(stderr, "per-op time (QEFF_PROFILE=1):\n%s", profile.c_str());
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
