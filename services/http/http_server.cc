#include "services/http/http_server.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/http/errors.h"
#include "services/http/openai_handlers.h"
#include "services/runner/metrics.h"

namespace qeff::http {
namespace {

std::string MetricsText(runner::ModelRegistry* registry) {
  std::vector<runner::ModelGauges> gauges;
  if (registry != nullptr) {
    for (const auto& m : registry->List()) {
      if (!m->scheduler) continue;
      const runner::Scheduler::Load load = m->scheduler->load();
      gauges.push_back({m->model_id, load.active, load.queued, load.slots});
    }
  }
  return runner::Metrics::Global().Render(gauges);
}

// Plain HTTP, or TLS 1.2+ with the files LoadTransportSecurity checked; with a client CA every
// client must present a certificate it signed (mTLS).
absl::StatusOr<std::unique_ptr<httplib::Server>> MakeHttplibServer(const rpc::TransportSecurity* sec,
                                                                   const std::string& listen) {
  if (sec == nullptr || !sec->tls()) return std::make_unique<httplib::Server>();
  auto srv = std::make_unique<httplib::SSLServer>([sec](SSL_CTX& ctx) {
    SSL_CTX_set_default_passwd_cb(&ctx, [](char*, int, int, void*) { return -1; });  // never prompt
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, sec->cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(&ctx, sec->key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      return false;
    }
    if (sec->mtls()) {
      if (SSL_CTX_load_verify_locations(&ctx, sec->client_ca_file.c_str(), nullptr) != 1) return false;
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(sec->client_ca_file.c_str()); names != nullptr) {
        SSL_CTX_set_client_CA_list(&ctx, names);
      }
      SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return true;
  });
  if (!srv->is_valid()) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("cannot set up TLS on ", listen, " with --tls-cert ", sec->cert_file,
                                                   " and --tls-key ", sec->key_file));
  }
  return srv;
}

}  // namespace

absl::Status SplitHostPort(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "' must be HOST:PORT (e.g. 127.0.0.1:8000, 0.0.0.0:0, [::1]:8000)"));
  };
  if (colon == std::string::npos || colon == 0) return bad();
  std::string h = listen.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']' || h.size() < 3) return bad();
    h = h.substr(1, h.size() - 2);
  }
  int p = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &p) || p < 0 || p > 65535) return bad();
  *host = h;
  *port = p;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              runner::ModelRegistry* registry,
                                                              std::shared_ptr<const Readiness> readiness) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(options.listen, &host, &port); !s.ok()) return s;
  // A client that vanishes mid-write must not kill the process (httplib writes with plain send).
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<HttpServer> s(new HttpServer());
  s->registry_ = registry;
  s->readiness_ = readiness ? std::move(readiness) : std::make_shared<Readiness>(std::vector<std::string>{});
  auto made = MakeHttplibServer(options.security.get(), options.listen);
  if (!made.ok()) return made.status();
  s->server_ = std::move(*made);
  const int threads = options.threads;
  s->server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s->server_->set_payload_max_length(options.max_body_bytes);
  s->server_->set_tcp_nodelay(true);  // stream tokens as they come
  s->Route(options);

  const int bound = port == 0 ? s->server_->bind_to_any_port(host) : (s->server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid?)"));
  }
  const bool v6 = host.find(':') != std::string::npos;
  s->address_ = v6 ? absl::StrCat("[", host, "]:", bound) : absl::StrCat(host, ":", bound);
  httplib::Server* server = s->server_.get();
  s->thread_ = std::thread([server] { server->listen_after_bind(); });
  return s;
}

void HttpServer::Route(const HttpServerOptions& options) {
  httplib::Server& srv = *server_;
  // Bearer tokens: checked before routing (and before a body is read) on every route but
  // /health (probes); /metrics too. One answer for a missing and a wrong token.
  if (options.security && options.security->tokens) {
    srv.set_pre_routing_handler([tokens = options.security->tokens](const httplib::Request& req,
                                                                    httplib::Response& res) {
      if (req.path == "/health" || tokens->AcceptsAuthorization(req.get_header_value("Authorization"))) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      const HttpError e = MakeHttpError(401, "invalid_request_error", rpc::kUnauthenticatedMessage, "invalid_api_key");
      res.status = e.status;
      res.set_header("WWW-Authenticate", "Bearer");
      res.set_content(e.body, "application/json");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(MetricsText(registry_), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (options.api) {
    api_ = std::make_unique<OpenAiApi>(registry_, readiness_, &stopping_);
    OpenAiApi* api = api_.get();
    srv.Post("/v1/completions", [api](const httplib::Request& q, httplib::Response& r) { api->Completions(q, r); });
    srv.Post("/v1/chat/completions",
             [api](const httplib::Request& q, httplib::Response& r) { api->ChatCompletions(q, r); });
    srv.Post("/v1/embeddings", [api](const httplib::Request& q, httplib::Response& r) { api->Embeddings(q, r); });
    srv.Post("/v1/rerank", [api](const httplib::Request& q, httplib::Response& r) { api->Rerank(q, r); });
    srv.Get("/v1/models", [api](const httplib::Request& q, httplib::Response& r) { api->Models(q, r); });
    srv.Get("/health", [api](const httplib::Request& q, httplib::Response& r) { api->Health(q, r); });
  }
  // httplib's own errors (413 body too large, 404 no such route, 400 unparsable request) in
  // OpenAI's shape; responses our handlers wrote keep their body.
  srv.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    HttpError e;
    if (res.status == 413) {
      e = MakeHttpError(413, "invalid_request_error",
                        "the request body is too large (the server's limit is 8 MiB); send a shorter prompt",
                        "request_too_large");
    } else if (res.status == 404) {
      e = MakeHttpError(404, "invalid_request_error",
                        absl::StrCat("no route ", req.method, " ", req.path,
                                     "; the API has /v1/completions, /v1/chat/completions, /v1/embeddings, "
                                     "/v1/rerank, /v1/models, /health, /metrics"),
                        "not_found");
    } else {
      e = MakeHttpError(res.status, res.status >= 500 ? "server_error" : "invalid_request_error",
                        absl::StrCat("HTTP ", res.status));
    }
    res.set_content(e.body, "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("http handler failed: {}", what);
    SendError(res, absl::InternalError(absl::StrCat("internal error: ", what)));
  });
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  // Open streams see stopping_, cancel their requests and end with an error event and
  // [DONE] within a poll interval; give them that before closing the sockets.
  for (int i = 0; i < 100 && api_ && api_->open_streams() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace qeff::http
