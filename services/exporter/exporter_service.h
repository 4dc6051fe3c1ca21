// gRPC Exporter service: resolves the model, keys the export by content, and publishes it into
// the artifact store (single-flight), streaming progress to the caller.
#pragma once

#include "common/artifacts/store.h"
#include "qeff/v1/exporter.grpc.pb.h"

namespace qeff::exporter {

class ExporterService final : public qeff::v1::Exporter::Service {
 public:
  explicit ExporterService(artifacts::Store* store) : store_(store) {}

  grpc::Status Export(grpc::ServerContext* context, const qeff::v1::ExportRequest* request,
                      grpc::ServerWriter<qeff::v1::ExportEvent>* writer) override;

 private:
  artifacts::Store* store_;
};

}  // namespace qeff::exporter
