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

std::shared_ptr<grpc::Channel> Connect(const std::string& address);

absl::StatusOr<qeff::v1::ExportResult> Export(const std::string& address, const qeff::v1::ExportRequest& req,
                                              ProgressPrinter& progress);
absl::StatusOr<qeff::v1::CompileResult> Compile(const std::string& address, const qeff::v1::CompileRequest& req,
                                                ProgressPrinter& progress);
absl::StatusOr<qeff::v1::ModelInfo> Load(const std::string& address, const qeff::v1::LoadRequest& req);

absl::StatusOr<qeff::v1::EmbedResponse> Embed(const std::string& address, const qeff::v1::EmbedRequest& req);

// Streams a generation; `on_event` sees every event (token chunks and the final stats event).
absl::StatusOr<qeff::v1::GenerateEvent> Generate(const std::string& address, const qeff::v1::GenerateRequest& req,
                                                 const std::function<void(const qeff::v1::GenerateEvent&)>& on_event);

}  // namespace qeffctl
