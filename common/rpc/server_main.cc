#include "common/rpc/server_main.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace qeff::rpc {
namespace {

// HOST:PORT or [V6]:PORT with a port in 0..65535 (gRPC would silently take 99999 mod 65536).
bool ValidListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size() || colon + 6 < listen.size()) return false;
  const std::string host = listen.substr(0, colon);
  if (host.front() == '[' && (host.back() != ']' || host.size() < 3)) return false;
  if (host.front() != '[' && host.find(':') != std::string::npos) return false;
  int port = 0;
  for (char ch : listen.substr(colon + 1)) {
    if (ch < '0' || ch > '9') return false;
    port = port * 10 + (ch - '0');
  }
  return port <= 65535;
}

}  // namespace

int ServerMain(int argc, char** argv, const std::string& program_name, const ServiceFactory& make_services,
               bool runner, bool exporter) {
  CLI::App app{program_name + ": qeff gRPC server"};
  ServerConfig config;
  config.cache_dir = artifacts::DefaultCacheRoot().string();
  int threads = 0;
  std::string log_level = "info";
  app.add_option("--listen", config.listen, "host:port to listen on (port 0 = pick a free port)")
      ->capture_default_str();
  app.add_option("--cache-dir", config.cache_dir, "artifact cache directory (shared by all services)")
      ->capture_default_str();
  app.add_option("--threads", threads, "device worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--max-message-mb", config.max_message_mb, "largest gRPC message in MiB")
      ->check(CLI::Range(1, 2047))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string tls_cert, tls_key, tls_client_ca, token_file, health_listen;
  bool no_reflection = false;
  app.add_option("--tls-cert", tls_cert,
                 "PEM certificate chain: serve TLS on every listener (gRPC, --http-listen, --metrics-listen); "
                 "needs --tls-key");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert (unencrypted)");
  app.add_option("--tls-client-ca", tls_client_ca,
                 "PEM CA certificate(s): mutual TLS, every client must present a certificate signed by them");
  app.add_option("--auth-token-file", token_file,
                 "accepted bearer tokens, one per line (# comments, blank lines skipped): every RPC and HTTP route "
                 "needs 'authorization: Bearer <token>' except grpc.health.v1 and HTTP /health");
  app.add_flag("--no-reflection", no_reflection, "do not serve gRPC server reflection");
  app.add_option("--health-listen", health_listen,
                 "host:port of a plaintext listener serving only grpc.health.v1 (no TLS, no token) for probes; "
                 "port 0 = pick a free port, printed as 'health listening on HOST:PORT'");
  int max_queued = 64, max_slots = 0, max_models = 64;
  double max_weight_gb = 0, cache_max_gb = 0;
  std::string http_listen, metrics_listen;
  std::vector<std::string> serve;
  app.add_option("--cache-max-gb", cache_max_gb,
                 "evict least-recently-used artifacts not in use (by any process) once the cache holds more "
                 "than this many GB after a build; 0 = no limit")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  if (runner) {
    app.add_option("--max-loaded-models", max_models, "model ids loaded at once; more get RESOURCE_EXHAUSTED")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--max-weight-gb", max_weight_gb,
                   "weights of the loaded qpcs, in GB (a qpc loaded under several ids counts once); more get "
                   "RESOURCE_EXHAUSTED; default 0 = 80% of this machine's memory")
        ->check(CLI::Range(0.0, 1e6));
    app.add_option("--max-queued-requests", max_queued,
                   "generation requests per model that may wait for a KV slot; more get RESOURCE_EXHAUSTED")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--max-active-slots", max_slots,
                   "KV slots each model uses at most (0 = all of its qpc's full_batch_size)")
        ->check(CLI::Range(0, 4096))
        ->capture_default_str();
    app.add_option("--http-listen", http_listen,
                   "host:port of the OpenAI-compatible HTTP API (/v1/..., /health, /metrics); off by default; "
                   "port 0 = pick a free port, printed as 'http listening on HOST:PORT'");
    app.add_option("--metrics-listen", metrics_listen,
                   "host:port serving only Prometheus /metrics (for gRPC-only deployments); off by default");
    app.add_option("--serve", serve,
                   "export, compile and load a model at start-up (repeatable): "
                   "'MODEL[,id=NAME][,ctx_len=N][,prefill_seq_len=N][,full_batch_size=N][,weight_dtype=T][,kv_cache_dtype=T]'")
        ->take_all()
        ->allow_extra_args(false);
  }
  std::vector<std::string> model_roots;
  if (exporter) {
    app.add_option("--model-root", model_roots,
                   "a folder Export may read models from (repeatable; relative paths and org/name ids are looked up "
                   "under each); without it any local folder or HF cache model can be exported")
        ->allow_extra_args(false);
  }
  CLI11_PARSE(app, argc, argv);
  auto roots = hf::ModelRoots::Create(model_roots);
  if (!roots.ok()) {
    std::fprintf(stderr, "%s\n", std::string(roots.status().message()).c_str());
    return 2;
  }
  auto security = LoadTransportSecurity(tls_cert, tls_key, tls_client_ca, token_file);
  if (!security.ok()) {
    std::fprintf(stderr, "%s: %s\n", program_name.c_str(), std::string(security.status().message()).c_str());
    return 2;
  }
  config.security = *security;
  for (const auto& [flag, listen] : {std::pair<const char*, const std::string&>{"--listen", config.listen},
                                     {"--health-listen", health_listen}}) {
    if (!listen.empty() && !ValidListen(listen)) {
      std::fprintf(stderr, "%s: %s '%s' must be HOST:PORT with a port in 0..65535 (e.g. 127.0.0.1:50051, [::1]:0)\n",
                   program_name.c_str(), flag, listen.c_str());
      return 2;
    }
  }
  for (const auto& [flag, listen] : {std::pair<const char*, const std::string&>{"--listen", config.listen},
                                     {"--http-listen", http_listen}, {"--metrics-listen", metrics_listen}}) {
    if (absl::Status s = CheckListenAddress(**security, flag, listen); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", program_name.c_str(), std::string(s.message()).c_str());
      return 2;
    }
  }
  config.reflection = !no_reflection;

  // Logs go to stderr; stdout carries only the "listening on" lines that scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt(program_name));
  spdlog::set_level(spdlog::level::from_str(log_level));
  auto store = artifacts::Store::Open(config.cache_dir);
  if (!store.ok()) {
    spdlog::error("{}", store.status().ToString());
    return 2;
  }
  int removed = store->CollectGarbage();
  if (removed > 0) spdlog::info("removed {} staging leftover(s) from {}/tmp", removed, config.cache_dir);

  // Health first: probes get answers (qeff.v1.Runner NOT_SERVING) while --serve models load.
  if (!InstallTerminationHandler()) {
    spdlog::error("cannot install the SIGTERM handler");
    return 2;
  }
  auto health = std::make_shared<HealthBoard>();
  config.health = health;
  const bool loading = runner && !serve.empty();
  if (loading) health->Set("qeff.v1.Runner", false);
  std::unique_ptr<HealthServer> health_server;
  if (!health_listen.empty()) {
    auto h = HealthServer::Start(health_listen, health);
    if (!h.ok()) {
      spdlog::error("{}", std::string(h.status().message()));
      return 2;
    }
    health_server = std::move(*h);
    std::printf("health listening on %s\n", health_server->address().c_str());
    std::fflush(stdout);
  }
  auto runner_ready = [health, loading] {
    if (!loading) return;
    health->Set("qeff.v1.Runner", true);
    spdlog::info("qeff.v1.Runner health: SERVING");
  };

  std::vector<std::function<void()>> on_stop;
  auto stop_all = [&on_stop] {
    for (auto& f : on_stop) f();
    on_stop.clear();
  };
  std::atomic<bool> failed{false};
  auto fail = [&failed](absl::Status) {
    failed.store(true);
    RequestShutdown();
  };
  std::vector<std::shared_ptr<void>> owned;
  store->set_max_bytes(static_cast<uint64_t>(cache_max_gb * 1e9));
  if (max_weight_gb <= 0) {
    max_weight_gb = 0.8 * static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1e9;
  }
  ServerContextArgs args{&*store, threads, max_queued, max_slots, http_listen, metrics_listen, serve, *roots,
                         &on_stop, fail, config.security, runner_ready, max_models,
                         static_cast<uint64_t>(max_weight_gb * 1e9)};
  auto services = make_services(args, owned);
  if (!services.ok()) {
    spdlog::error("{}", std::string(services.status().message()));
    stop_all();
    return 2;
  }
  config.on_stop = stop_all;
  const int rc = RunServer(config, *services);
  // Also when the gRPC port could not be bound: nothing may run while `owned` goes away.
  stop_all();
  return rc == 0 && failed.load() ? 1 : rc;
}

}  // namespace qeff::rpc
