#include "services/http/frontend.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"

namespace qeff::http {

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Start(artifacts::Store* store, runner::ModelRegistry* registry,
                                                          const std::string& http_listen,
                                                          const std::string& metrics_listen,
                                                          const std::vector<std::string>& serve,
                                                          std::function<void(absl::Status)> on_failure,
                                                          std::shared_ptr<const rpc::TransportSecurity> security,
                                                          std::function<void()> on_ready) {
  std::vector<ServeSpec> specs;
  std::set<std::string> ids;
  for (const auto& text : serve) {
    auto spec = ParseServeSpec(text);
    if (!spec.ok()) return spec.status();
    if (!ids.insert(spec->id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--serve '", text, "': the id '", spec->id, "' is already taken by another --serve; add ,id=NAME"));
    }
    specs.push_back(std::move(*spec));
  }
  std::unique_ptr<Frontend> f(new Frontend());
  f->readiness_ = std::make_shared<Readiness>(std::vector<std::string>(ids.begin(), ids.end()));
  if (!http_listen.empty()) {
    auto s = HttpServer::Start({http_listen, /*api=*/true, 8u << 20, 128, security}, registry, f->readiness_);
    if (!s.ok()) return s.status();
    f->http_ = std::move(*s);
    std::printf("http listening on %s\n", f->http_->address().c_str());
  }
  if (!metrics_listen.empty()) {
    auto s = HttpServer::Start({metrics_listen, /*api=*/false, 1u << 20, /*threads=*/4, security}, registry, f->readiness_);
    if (!s.ok()) return s.status();
    f->metrics_ = std::move(*s);
    std::printf("metrics listening on %s\n", f->metrics_->address().c_str());
  }
  std::fflush(stdout);
  if (!specs.empty()) {
    Frontend* self = f.get();
    f->loader_ = std::thread([self, store, registry, specs = std::move(specs), on_failure = std::move(on_failure),
                              on_ready = std::move(on_ready)] {
      for (const auto& spec : specs) {
        if (self->stop_.load()) return;
        spdlog::info("--serve {}: export, compile and load as '{}'", spec.model, spec.id);
        absl::Status s = ServeModel(*store, *registry, spec, self->stop_);
        if (self->stop_.load()) return;
        if (!s.ok()) {
          spdlog::error("{}", std::string(s.message()));
          if (on_failure) on_failure(s);
          return;
        }
        self->readiness_->MarkLoaded(spec.id);
      }
      spdlog::info("all {} --serve model(s) loaded: ready", specs.size());
      if (on_ready) on_ready();
    });
  }
  return f;
}

void Frontend::Stop() {
  stop_.store(true);
  if (http_) http_->Stop();
  if (metrics_) metrics_->Stop();
  if (loader_.joinable()) loader_.join();
}

Frontend::~Frontend() { Stop(); }

absl::Status AddFrontend(const rpc::ServerContextArgs& args, runner::ModelRegistry* registry,
                         std::vector<std::shared_ptr<void>>& owned) {
  if (args.http_listen.empty() && args.metrics_listen.empty() && args.serve.empty()) return absl::OkStatus();
  auto f = Frontend::Start(args.store, registry, args.http_listen, args.metrics_listen, args.serve, args.fail,
                           args.security, args.runner_ready);
  if (!f.ok()) return f.status();
  std::shared_ptr<Frontend> shared(std::move(*f));
  owned.push_back(shared);
  args.on_stop->push_back([shared] { shared->Stop(); });
  return absl::OkStatus();
}

}  // namespace qeff::http
