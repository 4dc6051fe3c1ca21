// gRPC Exporter service: resolves the model, keys the export by content, and publishes it into
// the artifact store (single-flight), streaming progress to the caller.
#pragma once

#include "absl/status/statusor.h"
#include "common/artifacts/store.h"
#include "common/hf/model_roots.h"
#include "qeff/v1/exporter.grpc.pb.h"
#include "services/exporter/exporter.h"

namespace qeff::exporter {

// The whole Export call without gRPC: resolve `request.model`, key the export by content and
// options, build it into the store unless it is there (a cache hit), and describe the result.
// The gRPC handler and start-up loading (qeffd --serve) both call it. `progress` gets the events
// the gRPC stream carries (stage "wait" while another caller builds the same key). `roots`
// confines which folders may be read (hf/model_roots.h; default: any).
absl::StatusOr<qeff::v1::ExportResult> ExportToStore(artifacts::Store& store, const qeff::v1::ExportRequest& request,
                                                     const ProgressFn& progress, const hf::ModelRoots& roots = {});

class ExporterService final : public qeff::v1::Exporter::Service {
 public:
  ExporterService(artifacts::Store* store, hf::ModelRoots roots) : store_(store), roots_(std::move(roots)) {}

  grpc::Status Export(grpc::ServerContext* context, const qeff::v1::ExportRequest* request,
                      grpc::ServerWriter<qeff::v1::ExportEvent>* writer) override;

 private:
  artifacts::Store* store_;
  const hf::ModelRoots roots_;
};

}  // namespace qeff::exporter
