// Thin synchronous wrappers over the qeff.v1 services used by qeffctl's commands.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "clients/qeffctl/progress.h"
#include "qeff/v1/compiler.grpc.pb.h"
#include "qeff/v1/exporter.grpc.pb.h"
#include "qeff/v1/runner.grpc.pb.h"

namespace qeffctl {

// Where each service lives; by default all three are one qeffd at the same address.
struct Endpoints {
  std::string exporter, compiler, runner;
};

// How qeffctl reaches its servers: TLS (--tls-ca; mTLS with --tls-cert/--tls-key), a bearer
// token (--token-file, else $QEFF_TOKEN) and a deadline on every call (--timeout; 0 = each
// RPC's default below).
struct ClientOptions {
  std::string tls_ca, tls_cert, tls_key;
  std::string token;
  double timeout_s = 0;
};

// Default deadlines (seconds) when --timeout is not given: quick calls, calls that run a model
// (Load reads and verifies weights; Embed/Classify may queue), and calls that build or generate.
inline constexpr double kQuickTimeoutS = 30;      // List, Unload
inline constexpr double kModelTimeoutS = 600;     // Load, Embed, Classify
inline constexpr double kLongTimeoutS = 3600;     // Export, Compile, Generate

// Reads the TLS files (INVALID_ARGUMENT naming the flag). Call once, before any RPC.
absl::Status Configure(const ClientOptions& options);
// The first token in a token file (one per line, # comments and blank lines skipped).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// The one channel to `address`, made on first use and reused by every call of the command.
std::shared_ptr<grpc::Channel> Connect(const std::string& address);
// Drops every channel. Call once all calls have finished (before exit).
void CloseChannels();

absl::StatusOr<qeff::v1::ListResponse> List(const std::string& address);
absl::Status Unload(const std::string& address, const std::string& model_id);

absl::StatusOr<qeff::v1::ExportResult> Export(const std::string& address, const qeff::v1::ExportRequest& req,
                                              ProgressPrinter& progress);
absl::StatusOr<qeff::v1::CompileResult> Compile(const std::string& address, const qeff::v1::CompileRequest& req,
                                                ProgressPrinter& progress);
absl::StatusOr<qeff::v1::ModelInfo> Load(const std::string& address, const qeff::v1::LoadRequest& req);

absl::StatusOr<qeff::v1::EmbedResponse> Embed(const std::string& address, const qeff::v1::EmbedRequest& req);
absl::StatusOr<qeff::v1::ClassifyResponse> Classify(const std::string& address, const qeff::v1::ClassifyRequest& req);

// Streams a generation; `on_event` sees every event (token chunks and the final stats event).
absl::StatusOr<qeff::v1::GenerateEvent> Generate(const std::string& address, const qeff::v1::GenerateRequest& req,
                                                 const std::function<void(const qeff::v1::GenerateEvent&)>& on_event);

}  // namespace qeffctl
