// gRPC Compiler service: keys a compile by (export key, options, compiler version), builds the qpc
// into the artifact store (single-flight), streaming progress.
#pragma once

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "qeff/v1/compiler.grpc.pb.h"
#include "services/compiler/compiler.h"

namespace qeff::compiler {

// The whole Compile call without gRPC: validate the options, key the qpc, build it into the
// store unless it is there (a cache hit), and describe the result. The gRPC handler and start-up
// loading (qeffd --serve) both call it. `progress` gets the events the gRPC stream carries.
absl::StatusOr<qeff::v1::CompileResult> CompileToStore(artifacts::Store& store, const qeff::v1::CompileRequest& request,
                                                       const ProgressFn& progress);

class CompilerService final : public qeff::v1::Compiler::Service {
 public:
  explicit CompilerService(artifacts::Store* store) : store_(store) {}

  grpc::Status Compile(grpc::ServerContext* context, const qeff::v1::CompileRequest* request,
                       grpc::ServerWriter<qeff::v1::CompileEvent>* writer) override;

 private:
  artifacts::Store* store_;
};

}  // namespace qeff::compiler
