#include "clients/qeffctl/client.h"

#include "absl/strings/str_cat.h"

namespace qeffctl {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const std::string& address) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat("cannot reach a qeff server at ", address, " (", s.error_message(),
                                               "); start one with `qeffd --listen ", address, "`"));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

namespace {

// Drains a progress-then-result stream (Export and Compile share the shape).
template <typename Event, typename Result>
absl::StatusOr<Result> DrainResultStream(grpc::ClientReader<Event>& reader, ProgressPrinter& progress,
                                         const std::string& address, const char* service) {
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
  if (!s.ok()) return FromGrpc(s, address);
  if (!have_result) return absl::InternalError(std::string("the ") + service + " ended the stream without a result");
  return result;
}

}  // namespace

absl::StatusOr<qeff::v1::ExportResult> Export(const std::string& address, const qeff::v1::ExportRequest& req,
                                              ProgressPrinter& progress) {
  auto stub = qeff::v1::Exporter::NewStub(Connect(address));
  grpc::ClientContext ctx;
  auto reader = stub->Export(&ctx, req);
  return DrainResultStream<qeff::v1::ExportEvent, qeff::v1::ExportResult>(*reader, progress, address, "exporter");
}

absl::StatusOr<qeff::v1::CompileResult> Compile(const std::string& address, const qeff::v1::CompileRequest& req,
                                                ProgressPrinter& progress) {
  auto stub = qeff::v1::Compiler::NewStub(Connect(address));
  grpc::ClientContext ctx;
  auto reader = stub->Compile(&ctx, req);
  return DrainResultStream<qeff::v1::CompileEvent, qeff::v1::CompileResult>(*reader, progress, address, "compiler");
}

absl::StatusOr<qeff::v1::ModelInfo> Load(const std::string& address, const qeff::v1::LoadRequest& req) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  grpc::ClientContext ctx;
  qeff::v1::LoadResponse resp;
  grpc::Status s = stub->Load(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, address);
  return resp.model();
}

absl::StatusOr<qeff::v1::EmbedResponse> Embed(const std::string& address, const qeff::v1::EmbedRequest& req) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  grpc::ClientContext ctx;
  qeff::v1::EmbedResponse resp;
  grpc::Status s = stub->Embed(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, address);
  return resp;
}

absl::StatusOr<qeff::v1::GenerateEvent> Generate(const std::string& address, const qeff::v1::GenerateRequest& req,
                                                 const std::function<void(const qeff::v1::GenerateEvent&)>& on_event) {
  auto stub = qeff::v1::Runner::NewStub(Connect(address));
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  qeff::v1::GenerateEvent ev, last;
  while (reader->Read(&ev)) {
    on_event(ev);
    if (ev.done()) last = ev;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s, address);
  if (!last.done()) return absl::InternalError("the runner ended the stream without a final event");
  return last;
}

}  // namespace qeffctl
