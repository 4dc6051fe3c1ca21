#include "services/exporter/exporter_service.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/hf/model_folder.h"
#include "common/rpc/progress.h"
#include "common/rpc/server.h"
#include "common/util/hash.h"

namespace qeff::exporter {

absl::StatusOr<qeff::v1::ExportResult> ExportToStore(artifacts::Store& store, const qeff::v1::ExportRequest& request,
                                                     const ProgressFn& progress, const hf::ModelRoots& roots) {
  if (request.model().empty()) {
    return absl::InvalidArgumentError("ExportRequest.model is empty: pass a HF model folder or an org/name hub id");
  }
  std::string revision = request.revision().empty() ? "main" : request.revision();
  auto dir = roots.Resolve(request.model(), revision);
  if (!dir.ok()) return dir.status();
  auto folder = hf::ModelFolder::Open(*dir);
  if (!folder.ok()) return folder.status();

  ExportOptions options;
  options.continuous_batching = request.options().continuous_batching();
  options.fp16_clip = request.options().fp16_clip();
  nlohmann::json options_json = {{"continuous_batching", options.continuous_batching},
                                 {"fp16_clip", options.fp16_clip}};

  progress("hash-inputs", "hashing config, weights and tokenizer files", 0, 0);
  util::Hasher hasher;
  hasher.Field("qeff-export");
  hasher.Field(std::to_string(kExportFormatVersion));
  hasher.Field(options_json.dump());
  absl::Status hashed = folder->HashInputs(hasher);
  if (!hashed.ok()) return hashed;
  const std::string key = hasher.Hex();

  auto published = store.GetOrBuild(
      artifacts::Kind::kExport, key,
      [&](const std::filesystem::path& staging) -> absl::StatusOr<nlohmann::json> {
        spdlog::info("export {} from {}", key, dir->string());
        auto s = ExportModel(*folder, options, staging, progress);
        if (!s.ok()) return s.status();
        // The config travels with the export (and on into the qpc) so later stages need only the cache.
        // Only files the folder checked on opening (symlinks stay inside it or the hub's blobs).
        std::vector<std::filesystem::path> carried = folder->TokenizerFiles();
        carried.push_back(*dir / "config.json");
        for (const std::filesystem::path& from : carried) {
          const std::filesystem::path to = staging / from.filename();
          std::error_code ec;
          if (!std::filesystem::exists(to, ec)) {
            std::filesystem::copy_file(from, to, ec);
            if (ec) return absl::InternalError(absl::StrCat("cannot copy ", from.filename().string(), ": ", ec.message()));
          }
        }
        nlohmann::json m = {{"producer", "qeff-exporter"},
                            {"format_version", kExportFormatVersion},
                            {"source", dir->string()},
                            {"options", options_json},
                            {"architecture", s->architecture},
                            {"num_layers", s->num_layers},
                            {"num_parameters", s->num_parameters},
                            {"details", s->manifest_extra}};
        return m;
      },
      [&] { progress("wait", "another request is exporting this model; waiting", 0, 0); });
  if (!published.ok()) return published.status();

  qeff::v1::ExportResult r;
  r.mutable_artifact()->set_kind("export");
  r.mutable_artifact()->set_key(key);
  r.mutable_artifact()->set_path(published->path.string());
  r.set_cache_hit(published->cache_hit);
  r.set_architecture(published->manifest.value("architecture", ""));
  r.set_num_layers(published->manifest.value("num_layers", 0));
  r.set_num_parameters(published->manifest.value("num_parameters", int64_t{0}));
  return r;
}

grpc::Status ExporterService::Export(grpc::ServerContext* context, const qeff::v1::ExportRequest* request,
                                     grpc::ServerWriter<qeff::v1::ExportEvent>* writer) {
  auto result = ExportToStore(
      *store_, *request,
      [&](const std::string& stage, const std::string& message, int64_t done, int64_t total) {
        rpc::WriteProgress(writer, stage, message, done, total);
      },
      roots_);
  if (!result.ok()) return rpc::ToGrpc(result.status());
  if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "export cancelled");
  qeff::v1::ExportEvent ev;
  *ev.mutable_result() = std::move(*result);
  writer->Write(ev);
  return grpc::Status::OK;
}

}  // namespace qeff::exporter
