#include "common/rpc/server_main.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace qeff::rpc {

int ServerMain(int argc, char** argv, const std::string& program_name, const ServiceFactory& make_services,
               bool runner) {
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
  int max_queued = 64, max_slots = 0;
  if (runner) {
    app.add_option("--max-queued-requests", max_queued,
                   "generation requests per model that may wait for a KV slot; more get RESOURCE_EXHAUSTED")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--max-active-slots", max_slots,
                   "KV slots each model uses at most (0 = all of its qpc's full_batch_size)")
        ->check(CLI::Range(0, 4096))
        ->capture_default_str();
  }
  CLI11_PARSE(app, argc, argv);

  // Logs go to stderr; stdout carries only the "listening on" line that scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt(program_name));
  spdlog::set_level(spdlog::level::from_str(log_level));
  auto store = artifacts::Store::Open(config.cache_dir);
  if (!store.ok()) {
    spdlog::error("{}", store.status().ToString());
    return 2;
  }
  int removed = store->CollectGarbage();
  if (removed > 0) spdlog::info("removed {} staging leftover(s) from {}/tmp", removed, config.cache_dir);

  std::vector<std::shared_ptr<void>> owned;
  std::vector<ServiceEntry> services = make_services(ServerContextArgs{&*store, threads, max_queued, max_slots}, owned);
  return RunServer(config, services);
}

}  // namespace qeff::rpc
