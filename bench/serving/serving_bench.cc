// qeff-serving-bench: load generator for a running qeffd / qeff-runner. N streams (one thread and
// one gRPC channel with its own connection each, i.e. N separate clients) start together and send
// Runner.Generate with seeded random prompt ids, greedy, a fixed number of new tokens; every
// received token is timestamped with a steady clock. Prints one JSON line: aggregate tokens/s,
// TTFT / inter-token latency / end-to-end percentiles, and the errors seen (never fatal).
//
//   qeff-serving-bench --server HOST:PORT --model-id ID --streams N --prompt-tokens P --new-tokens T
//       [--requests-per-stream R=1] [--vocab V] [--seed S=0] [--timeout-s X=1800] [--tag KEY=VALUE]...
//   qeff-serving-bench --report ROWS.jsonl [--out ALL.json]
//
// TTFT runs from sending the request (so it includes queueing for a KV slot) to the first token;
// inter-token latency is the gap between consecutive tokens of one request, where an event
// carrying k tokens spreads its gap evenly over them (see RequestResult); aggregate tokens/s is
// all tokens over the time from the common start to the last token.
// Without --vocab the vocabulary size comes from Runner.List (prompt ids are drawn below it).
// --tag adds KEY: VALUE to the output line (VALUE is parsed as JSON when it is, else a string);
// run_serving_bench.sh uses it to label rows with model / ctx / cb. --report reads such lines
// and prints the markdown table (with the speed-up over 1 stream and the long-context ratio).
// Exit status: 0 all requests succeeded, 1 some failed (the JSON line is still printed),
// 2 bad flags.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "qeff/v1/runner.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

constexpr char kUsage[] =
    "usage: qeff-serving-bench --server HOST:PORT --model-id ID --streams N --prompt-tokens P --new-tokens T\n"
    "           [--requests-per-stream R] [--vocab V] [--seed S] [--timeout-s X] [--tag KEY=VALUE]...\n"
    "       qeff-serving-bench --report ROWS.jsonl [--out ALL.json]\n";

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

int64_t ParseInt(const std::string& flag, const std::string& v, int64_t min, int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == v.c_str() || *end != '\0' || errno != 0 || x < min || x > max) {
    Usage(flag + " needs an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" + v + "'");
  }
  return x;
}

// splitmix64: the prompt of (seed, stream, request) is the same on every run and platform.
uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const char* CodeName(grpc::StatusCode c) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // gRPC shares one TCP connection between channels with equal arguments in a process; a local
  // subchannel pool gives every stream its own connection, like separate client processes.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

struct Options {
  std::string server, model_id;
  int64_t streams = 0, prompt_tokens = 0, new_tokens = 0, requests_per_stream = 1, vocab = 0, timeout_s = 1800;
  uint64_t seed = 0;
  Json tags = Json::object();
};

struct RequestResult {
  Clock::time_point send;
  // One entry per received token. Events carrying k > 1 tokens: the gap since the previous token
  // is spread evenly over the k tokens (k equal gaps), so batching k tokens into one message does
  // not show up as one long gap and k-1 zero gaps. The first event has no previous token (the gap
  // before it is TTFT), so its extra tokens all get its arrival time: zero gaps.
  std::vector<Clock::time_point> tokens;
  grpc::Status status;
  bool has_stats = false;
  qeff::v1::GenerationStats stats;
};

// Starts all streams at once: each stream connects, then waits here; the caller releases them.
class StartGate {
 public:
  explicit StartGate(int64_t n) : waiting_for_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> l(mu_);
    if (--waiting_for_ == 0) cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
  }
  Clock::time_point WaitAllThenOpen() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return waiting_for_ == 0; });
    open_ = true;
    const Clock::time_point t0 = Clock::now();
    cv_.notify_all();
    return t0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t waiting_for_;
  bool open_ = false;
};

void RunStream(const Options& o, int64_t stream, StartGate& gate, std::vector<RequestResult>& results) {
  auto channel = Connect(o.server);
  // Connect before the gate so TCP/HTTP2 setup is not part of the first TTFT; a failure shows up
  // as the requests' UNAVAILABLE status below.
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stub = qeff::v1::Runner::NewStub(channel);
  gate.ArriveAndWait();
  for (int64_t r = 0; r < o.requests_per_stream; ++r) {
    qeff::v1::GenerateRequest req;
    req.set_model_id(o.model_id);
    uint64_t state = o.seed ^ (0x51ED270B27A3C1F5ull * static_cast<uint64_t>(stream + 1)) ^
                     (0x2545F4914F6CDD1Dull * static_cast<uint64_t>(r + 1));
    for (int64_t i = 0; i < o.prompt_tokens; ++i) {
      req.add_input_ids(static_cast<int64_t>(SplitMix(state) % static_cast<uint64_t>(o.vocab)));
    }
    req.set_max_new_tokens(static_cast<int32_t>(o.new_tokens));
    req.set_stop_at_eos(false);  // greedy: SamplingParams left at its defaults

    RequestResult& res = results[static_cast<size_t>(r)];
    res.tokens.reserve(static_cast<size_t>(o.new_tokens));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o.timeout_s));
    res.send = Clock::now();
    auto reader = stub->Generate(&ctx, req);
    qeff::v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
      const Clock::time_point t = Clock::now();
      const int k = ev.token_ids_size();
      if (k > 0) {
        if (res.tokens.empty()) {
          res.tokens.insert(res.tokens.end(), static_cast<size_t>(k), t);
        } else {
          const Clock::time_point prev = res.tokens.back();
          for (int j = 1; j <= k; ++j) res.tokens.push_back(prev + (t - prev) * j / k);
        }
      }
      if (ev.done() && ev.has_stats()) {
        res.has_stats = true;
        res.stats = ev.stats();
      }
    }
    res.status = reader->Finish();
  }
}

// Linear interpolation between closest ranks (numpy's default); null when there is no sample.
Json Percentile(std::vector<double> v, double p) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

Json Mean(const std::vector<double>& v) {
  if (v.empty()) return nullptr;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Vocabulary size of the loaded model, from Runner.List; 0 if unknown.
int64_t VocabFromServer(const Options& o, std::string* why) {
  auto stub = qeff::v1::Runner::NewStub(Connect(o.server));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  qeff::v1::ListResponse resp;
  grpc::Status s = stub->List(&ctx, qeff::v1::ListRequest(), &resp);
  if (!s.ok()) {
    *why = std::string("Runner.List failed: ") + CodeName(s.error_code()) + ": " + s.error_message();
    return 0;
  }
  for (const auto& m : resp.models()) {
    if (m.model_id() == o.model_id && m.vocab_size() > 0) return m.vocab_size();
  }
  *why = "model '" + o.model_id + "' is not listed by the server (or has no vocab_size)";
  return 0;
}

int RunBench(Options o) {
  if (o.vocab == 0) {
    std::string why;
    o.vocab = VocabFromServer(o, &why);
    if (o.vocab == 0) {
      // Still run: the requests will report the real error (e.g. NOT_FOUND) in the JSON line.
      o.vocab = 256;
      std::fprintf(stderr, "warning: %s; drawing prompt ids below 256 (pass --vocab)\n", why.c_str());
    }
  }
  std::vector<std::vector<RequestResult>> results(static_cast<size_t>(o.streams));
  for (auto& r : results) r.resize(static_cast<size_t>(o.requests_per_stream));
  StartGate gate(o.streams);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(o.streams));
  for (int64_t s = 0; s < o.streams; ++s) {
    threads.emplace_back(RunStream, std::cref(o), s, std::ref(gate), std::ref(results[static_cast<size_t>(s)]));
  }
  const Clock::time_point t0 = gate.WaitAllThenOpen();
  for (auto& t : threads) t.join();

  std::vector<double> ttft, itl, e2e, decode, server_decode, server_ttft;
  int64_t total_tokens = 0, ok_requests = 0, short_requests = 0;
  Clock::time_point last = t0;
  std::map<std::pair<int, std::string>, int64_t> errors;  // (code, message) -> count
  for (const auto& stream : results) {
    for (const auto& r : stream) {
      total_tokens += static_cast<int64_t>(r.tokens.size());
      if (!r.tokens.empty()) {
        last = std::max(last, r.tokens.back());
        ttft.push_back(Ms(r.tokens.front() - r.send));
        for (size_t i = 1; i < r.tokens.size(); ++i) itl.push_back(Ms(r.tokens[i] - r.tokens[i - 1]));
        if (r.tokens.size() > 1 && r.tokens.back() > r.tokens.front()) {
          decode.push_back(static_cast<double>(r.tokens.size() - 1) * 1000.0 / Ms(r.tokens.back() - r.tokens.front()));
        }
      }
      if (!r.status.ok()) {
        ++errors[{static_cast<int>(r.status.error_code()), r.status.error_message()}];
        continue;
      }
      ++ok_requests;
      if (static_cast<int64_t>(r.tokens.size()) != o.new_tokens) ++short_requests;
      if (!r.tokens.empty()) e2e.push_back(Ms(r.tokens.back() - r.send));
      if (r.has_stats) {
        server_decode.push_back(r.stats.decode_tokens_per_s());
        server_ttft.push_back(r.stats.ttft_ms());
      }
    }
  }
  const double wall_s = std::chrono::duration<double>(last - t0).count();
  Json out = o.tags;
  out["streams"] = o.streams;
  out["requests_per_stream"] = o.requests_per_stream;
  out["requests"] = o.streams * o.requests_per_stream;
  out["ok_requests"] = ok_requests;
  out["prompt_tokens"] = o.prompt_tokens;
  out["new_tokens"] = o.new_tokens;
  out["total_generated_tokens"] = total_tokens;
  out["wall_s"] = wall_s;
  out["aggregate_tok_s"] = wall_s > 0 ? Json(static_cast<double>(total_tokens) / wall_s) : Json(nullptr);
  out["ttft_ms_p50"] = Percentile(ttft, 50);
  out["ttft_ms_p99"] = Percentile(ttft, 99);
  out["itl_ms_p50"] = Percentile(itl, 50);
  out["itl_ms_p99"] = Percentile(itl, 99);
  out["e2e_ms_p50"] = Percentile(e2e, 50);
  out["e2e_ms_p99"] = Percentile(e2e, 99);
  // Per request: (tokens - 1) / (last token - first token), i.e. decode without prefill.
  out["decode_tok_s_mean"] = Mean(decode);
  out["server_decode_tok_s_mean"] = Mean(server_decode);
  out["server_ttft_ms_mean"] = Mean(server_ttft);
  out["short_requests"] = short_requests;  // succeeded with fewer than --new-tokens tokens
  out["errors"] = Json::array();
  for (const auto& [key, count] : errors) {
    out["errors"].push_back({{"code", key.first},
                             {"status", CodeName(static_cast<grpc::StatusCode>(key.first))},
                             {"message", key.second},
                             {"count", count}});
  }
  std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
  return errors.empty() ? 0 : 1;
}

// ---- --report: the markdown table over the lines written by run_serving_bench.sh ----

std::string Num(const Json& v, int decimals) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v.get<double>());
  return buf;
}

std::string Str(const Json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

int RunReport(const std::string& rows_path, const std::string& out_path) {
  std::ifstream in(rows_path);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", rows_path.c_str());
    return 1;
  }
  std::vector<Json> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      std::fprintf(stderr, "warning: %s:%d is not a JSON object; skipped\n", rows_path.c_str(), line_no);
      continue;
    }
    rows.push_back(std::move(j));
  }
  auto kind = [](const Json& r) { return r.value("kind", std::string("streams")); };

  std::printf("| model | ctx | cb | streams | aggregate tok/s | speed-up vs 1 stream | TTFT p50 / p99 (ms) "
              "| ITL p50 / p99 (ms) | errors |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const Json& r : rows) {
    if (kind(r) != "streams") continue;
    Json base = nullptr;
    for (const Json& b : rows) {
      if (kind(b) == "streams" && b.value("streams", 0) == 1 && Str(b, "model") == Str(r, "model") &&
          Str(b, "ctx") == Str(r, "ctx") && Str(b, "cb") == Str(r, "cb")) {
        base = b.value("aggregate_tok_s", Json(nullptr));
      }
    }
    const Json agg = r.value("aggregate_tok_s", Json(nullptr));
    Json speedup = nullptr;
    if (agg.is_number() && base.is_number() && base.get<double>() > 0) speedup = agg.get<double>() / base.get<double>();
    int64_t nerr = 0;
    for (const Json& e : r.value("errors", Json::array())) nerr += e.value("count", int64_t{0});
    std::string err = std::to_string(nerr);
    if (nerr > 0) err += " (" + r["errors"][0].value("status", std::string()) + ")";
    std::printf("| %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", Str(r, "model").c_str(),
                Str(r, "ctx").c_str(), Str(r, "cb").c_str(), Str(r, "streams").c_str(), Num(agg, 1).c_str(),
                speedup.is_null() ? "-" : (Num(speedup, 2) + "x").c_str(), Num(r.value("ttft_ms_p50", Json()), 1).c_str(),
                Num(r.value("ttft_ms_p99", Json()), 1).c_str(), Num(r.value("itl_ms_p50", Json()), 2).c_str(),
                Num(r.value("itl_ms_p99", Json()), 2).c_str(), err.c_str());
  }

  // Long context: the same prompt at the largest vs the smallest ctx. Decode reads the whole KV
  // cache when attention is not limited to the filled part, so this ratio shows that cost.
  Json summary = Json::array();
  std::map<std::string, std::vector<const Json*>> by_model;
  for (const Json& r : rows) {
    if (kind(r) == "long_context") by_model[Str(r, "model")].push_back(&r);
  }
  for (auto& [model, lc] : by_model) {
    std::sort(lc.begin(), lc.end(), [](const Json* a, const Json* b) { return a->value("ctx", 0) < b->value("ctx", 0); });
    const Json& small = *lc.front();
    const Json& large = *lc.back();
    // Client-side decode tokens/s (token arrival times) and the server's own stats: the client's
    // is what a caller sees, the server's is immune to tokens arriving coalesced in one message.
    auto ratio = [&](const char* key) -> Json {
      const Json s = small.value(key, Json()), l = large.value(key, Json());
      if (lc.size() < 2 || !s.is_number() || !l.is_number() || s.get<double>() <= 0) return nullptr;
      return l.get<double>() / s.get<double>();
    };
    const Json ratio_client = ratio("decode_tok_s_mean"), ratio_server = ratio("server_decode_tok_s_mean");
    std::printf("\nlong context, %s: 1 stream, %s-token prompt, %s new tokens: decode %s tok/s at ctx %s vs %s tok/s "
                "at ctx %s: ratio %s (server stats: %s vs %s tok/s, ratio %s)\n",
                model.c_str(), Str(large, "prompt_tokens").c_str(), Str(large, "new_tokens").c_str(),
                Num(large.value("decode_tok_s_mean", Json()), 1).c_str(), Str(large, "ctx").c_str(),
                Num(small.value("decode_tok_s_mean", Json()), 1).c_str(), Str(small, "ctx").c_str(),
                Num(ratio_client, 3).c_str(), Num(large.value("server_decode_tok_s_mean", Json()), 1).c_str(),
                Num(small.value("server_decode_tok_s_mean", Json()), 1).c_str(), Num(ratio_server, 3).c_str());
    summary.push_back({{"model", model},
                       {"prompt_tokens", large.value("prompt_tokens", Json())},
                       {"ctx_large", large.value("ctx", Json())},
                       {"ctx_small", small.value("ctx", Json())},
                       {"decode_tok_s_ctx_large", large.value("decode_tok_s_mean", Json())},
                       {"decode_tok_s_ctx_small", small.value("decode_tok_s_mean", Json())},
                       {"ratio", ratio_client},
                       {"server_decode_tok_s_ctx_large", large.value("server_decode_tok_s_mean", Json())},
                       {"server_decode_tok_s_ctx_small", small.value("server_decode_tok_s_mean", Json())},
                       {"server_ratio", ratio_server}});
  }
  if (!out_path.empty()) {
    Json all = {{"rows", rows}, {"long_context", summary}};
    std::ofstream out(out_path);
    out << all.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    if (!out) {
      std::fprintf(stderr, "error: cannot write %s\n", out_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string report, out;
  bool have_streams = false, have_prompt = false, have_new = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--server") o.server = value();
    else if (a == "--model-id") o.model_id = value();
    else if (a == "--streams") o.streams = ParseInt(a, value(), 1, 4096), have_streams = true;
    else if (a == "--prompt-tokens") o.prompt_tokens = ParseInt(a, value(), 1, 1 << 20), have_prompt = true;
    else if (a == "--new-tokens") o.new_tokens = ParseInt(a, value(), 1, 1 << 20), have_new = true;
    else if (a == "--requests-per-stream") o.requests_per_stream = ParseInt(a, value(), 1, 1 << 20);
    else if (a == "--vocab") o.vocab = ParseInt(a, value(), 1, int64_t{1} << 31);
    else if (a == "--seed") o.seed = static_cast<uint64_t>(ParseInt(a, value(), 0, INT64_MAX));
    else if (a == "--timeout-s") o.timeout_s = ParseInt(a, value(), 1, 7 * 24 * 3600);
    else if (a == "--tag") {
      const std::string kv = value();
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) Usage("--tag needs KEY=VALUE, got '" + kv + "'");
      Json v = Json::parse(kv.substr(eq + 1), nullptr, /*allow_exceptions=*/false);
      o.tags[kv.substr(0, eq)] = v.is_discarded() ? Json(kv.substr(eq + 1)) : v;
    } else if (a == "--report") report = value();
    else if (a == "--out") out = value();
    else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    else Usage("unknown flag " + a);
  }
  if (!report.empty()) return RunReport(report, out);
  if (!out.empty()) Usage("--out goes with --report");
  if (o.server.empty()) Usage("--server HOST:PORT is required");
  if (o.model_id.empty()) Usage("--model-id is required");
  if (!have_streams) Usage("--streams is required");
  if (!have_prompt) Usage("--prompt-tokens is required");
  if (!have_new) Usage("--new-tokens is required");
  return RunBench(std::move(o));
}
