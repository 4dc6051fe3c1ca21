// gRPC Compiler service: keys a compile by (export key, options, compiler version), builds the qpc
// into the artifact store (single-flight), streaming progress.
#pragma once

#include "common/artifacts/store.h"
#include "qeff/v1/compiler.grpc.pb.h"

namespace qeff::compiler {

class CompilerService final : public qeff::v1::Compiler::Service {
 public:
  explicit CompilerService(artifacts::Store* store) : store_(store) {}

  grpc::Status Compile(grpc::ServerContext* context, const qeff::v1::CompileRequest* request,
                       grpc::ServerWriter<qeff::v1::CompileEvent>* writer) override;

 private:
  artifacts::Store* store_;
};

}  // namespace qeff::compiler
