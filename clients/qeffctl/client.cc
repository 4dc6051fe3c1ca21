#include "clients/qeffctl/client.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/files.h"

namespace qeffctl {
namespace {

std::mutex g_mu;
ClientOptions g_options;
std::shared_ptr<grpc::ChannelCredentials> g_creds;
std::map<std::string, std::shared_ptr<grpc::Channel>> g_channels;

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  auto text = qeff::util::ReadFile(path, 1 << 20);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path, " (", text.status().message(), ")"));
  }
  return text;
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto text = ReadFile(flag, path);
  if (text.ok() && text->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return text;
}

// One RPC: its context (deadline, token) and what its errors should say.
class RpcCall {
 public:
  RpcCall(const std::string& address, const char* service, double default_timeout_s)
      : address_(address), service_(service) {
    {
      std::lock_guard<std::mutex> l(g_mu);
      timeout_s_ = g_options.timeout_s > 0 ? g_options.timeout_s : default_timeout_s;
      explicit_timeout_ = g_options.timeout_s > 0;
      tls_ = !g_options.tls_ca.empty();
      token_ = !g_options.token.empty();
      if (token_) ctx_.AddMetadata("authorization", "Bearer " + g_options.token);
    }
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(timeout_s_ * 1e6)));
  }
  grpc::ClientContext* ctx() { return &ctx_; }

  absl::Status Error(const grpc::Status& s) const {
    const std::string& m = s.error_message();
    const std::string detail = m.size() > 300 ? m.substr(0, 300) + "..." : m;
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        // The server's own UNAVAILABLE (e.g. a model still loading) comes over a working channel.
        if (Connect(address_)->GetState(false) == GRPC_CHANNEL_READY) break;
        return absl::UnavailableError(absl::StrCat(
            "cannot reach ", address_, ": is the server running? TLS mismatch? (qeffctl ",
            tls_ ? "speaks TLS (--tls-ca): does the server have --tls-cert, a certificate the CA signed and "
                   "naming this host, and (with --tls-client-ca) does it accept --tls-cert/--tls-key?"
                 : "speaks plaintext: a server with --tls-cert needs --tls-ca",
            ") [", detail, "]"));
      case grpc::StatusCode::UNIMPLEMENTED:
        if (!s.error_message().empty()) break;  // the service's own "not supported" message
        return absl::UnimplementedError(absl::StrCat(address_, " does not serve ", service_,
                                                     ": wrong address? (--server, --exporter, --compiler, --runner)"));
      case grpc::StatusCode::UNAUTHENTICATED:
        return absl::UnauthenticatedError(absl::StrCat(
            address_, token_ ? ": the server did not accept the token (--token-file or QEFF_TOKEN)"
                             : ": the server wants a token: --token-file or QEFF_TOKEN"));
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return absl::DeadlineExceededError(absl::StrFormat(
            "%s at %s did not finish within %g s (%s; --timeout SECONDS sets another deadline)", service_, address_,
            timeout_s_, explicit_timeout_ ? "--timeout" : "the default for this call"));
      default:
        break;
    }
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }

 private:
  grpc::ClientContext ctx_;
  std::string address_;
  const char* service_;
  double timeout_s_ = 0;
  bool explicit_timeout_ = false, tls_ = false, token_ = false;
};

}  // namespace

absl::Status Configure(const ClientOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (the client certificate for mTLS and its key)");
  }
  if (!options.tls_cert.empty() && options.tls_ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert/--tls-key need --tls-ca (the CA that signed the server's certificate)");
  }
  if (!options.tls_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadPem("--tls-ca", options.tls_ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!options.tls_cert.empty()) {
      auto cert = ReadPem("--tls-cert", options.tls_cert);
      if (!cert.ok()) return cert.status();
      auto key = ReadPem("--tls-key", options.tls_key);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  if (options.timeout_s < 0) return absl::InvalidArgumentError("--timeout must be > 0 seconds");
  std::lock_guard<std::mutex> l(g_mu);
  g_options = options;
  g_creds = std::move(creds);
  g_channels.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  auto text = ReadFile("--token-file", path);
  if (!text.ok()) return text.status();
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    return line.substr(b, line.find_last_not_of(" \t\r") - b + 1);
  }
  return absl::InvalidArgumentError(absl::StrCat("--token-file ", path, ": no token in the file"));
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  std::lock_guard<std::mutex> l(g_mu);
  auto& channel = g_channels[address];
  if (!channel) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    channel = grpc::CreateCustomChannel(address, g_creds ? g_creds : grpc::InsecureChannelCredentials(), args);
  }
  return channel;
}

void CloseChannels() {
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
  {
    std::lock_guard<std::mutex> l(g_mu);
    channels.swap(g_channels);
    g_creds.reset();
  }
}

namespace {

// Drains a progress-then-result stream (Export and Compile share the shape).
template <typename Event, typename Result>
absl::StatusOr<Result> DrainResultStream(grpc::ClientReader<Event>& reader, ProgressPrinter& progress,
                                         const RpcCall& call, const char* service) {
  Event ev;
  Result result;
  bool have_result = false;
  while (reader.Read(&ev)) {
    if (ev.has_progress()) progress.Update(ev.progress());
    if (ev.has_result()) {
      result = ev.result();
      have_result = true;
    }
  }
  grpc::Status s = reader.Finish();
  if (!s.ok()) return call.Error(s);
  if (!have_result) return absl::InternalError(std::string("the ") + service + " ended the stream without a result");
  return result;
}

}  // namespace

absl::StatusOr<qeff::v1::ExportResult> Export(const std::string& address, const qeff::v1::ExportRequest& req,
                                              ProgressPrinter& progress) {
  auto stub = qeff::v1::Exporter::NewStub(Connect(address));
  RpcCall call(address, "qeff.v1.Exporter", kLongTimeoutS);
  auto reader = stub->Export(call.ctx(), req);
  return DrainResultStream<qeff::v1::ExportEvent, qeff::v1::ExportResult>(*reader, progress, call, "exporter");
}

absl::StatusOr<qeff::v1::CompileResult> Compile(const std::string& address, const qeff::v1::CompileRequest& req,
                                                ProgressPrinter& progress) {
  auto stub = qeff::v1::Compiler::NewStub(Connect(address));
  RpcCall call(address, "qeff.v1.Compiler", kLongTimeoutS);
  auto reader = stub->Compile(call.ctx(), req);
  return DrainResultStream<qeff::v1::CompileEvent, qeff::v1::CompileResult>(*reader, progress, call, "compiler");
}

namespace {

// One unary Runner call: Call(stub, ctx, req, resp).
template <typename Response, typename Request, typename Call>
absl::StatusOr<Response> RunnerCall(const std::string& address, const Request& req, Call call) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  RpcCall c(address, "qeff.v1.Runner", kModelTimeoutS);
  Response resp;
  grpc::Status s = call(*stub, c.ctx(), req, &resp);
  if (!s.ok()) return c.Error(s);
  return resp;
}

}  // namespace

absl::StatusOr<qeff::v1::ModelInfo> Load(const std::string& address, const qeff::v1::LoadRequest& req) {
  auto r = RunnerCall<qeff::v1::LoadResponse>(
      address, req, [](auto& stub, auto* ctx, const auto& q, auto* resp) { return stub.Load(ctx, q, resp); });
  if (!r.ok()) return r.status();
  return r->model();
}

absl::StatusOr<qeff::v1::EmbedResponse> Embed(const std::string& address, const qeff::v1::EmbedRequest& req) {
  return RunnerCall<qeff::v1::EmbedResponse>(
      address, req, [](auto& stub, auto* ctx, const auto& q, auto* resp) { return stub.Embed(ctx, q, resp); });
}

absl::StatusOr<qeff::v1::ClassifyResponse> Classify(const std::string& address, const qeff::v1::ClassifyRequest& req) {
  return RunnerCall<qeff::v1::ClassifyResponse>(
      address, req, [](auto& stub, auto* ctx, const auto& q, auto* resp) { return stub.Classify(ctx, q, resp); });
}

absl::StatusOr<qeff::v1::GenerateEvent> Generate(const std::string& address, const qeff::v1::GenerateRequest& req,
                                                 const std::function<void(const qeff::v1::GenerateEvent&)>& on_event) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  RpcCall call(address, "qeff.v1.Runner", kLongTimeoutS);
  auto reader = stub->Generate(call.ctx(), req);
  qeff::v1::GenerateEvent ev, last;
  while (reader->Read(&ev)) {
    on_event(ev);
    if (ev.done()) last = ev;
  }
  // Read returned false: the stream is over; Finish collects its status (no call outlives this).
  grpc::Status s = reader->Finish();
  if (!s.ok()) return call.Error(s);
  if (!last.done()) return absl::InternalError("the runner ended the stream without a final event");
  return last;
}

absl::StatusOr<qeff::v1::ListResponse> List(const std::string& address) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  RpcCall call(address, "qeff.v1.Runner", kQuickTimeoutS);
  qeff::v1::ListResponse resp;
  grpc::Status s = stub->List(call.ctx(), qeff::v1::ListRequest(), &resp);
  if (!s.ok()) return call.Error(s);
  return resp;
}

absl::Status Unload(const std::string& address, const std::string& model_id) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  RpcCall call(address, "qeff.v1.Runner", kQuickTimeoutS);
  qeff::v1::UnloadRequest req;
  req.set_model_id(model_id);
  qeff::v1::UnloadResponse resp;
  grpc::Status s = stub->Unload(call.ctx(), req, &resp);
  if (!s.ok()) return call.Error(s);
  return absl::OkStatus();
}

}  // namespace qeffctl
