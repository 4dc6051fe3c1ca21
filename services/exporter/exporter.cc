#include "services/exporter/exporter.h"

#include <exception>
#include <system_error>

#include <onnx/checker.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/status_macros.h"
#include "services/exporter/graph_builder.h"
#include "services/exporter/model_registry.h"

namespace qeff::exporter {
namespace {

void SetMetadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  auto* p = model.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

}  // namespace

absl::StatusOr<ExportSummary> ExportModel(const hf::ModelFolder& folder, const ExportOptions& options,
                                          const std::filesystem::path& staging, const ProgressFn& progress) {
  const ModelRegistry& registry = ModelRegistry::Get();
  const std::string arch = folder.architecture();
  const std::string supported = absl::StrJoin(registry.Architectures(), ", ");
  if (arch.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(folder.dir().string(), "/config.json has no \"architectures\" ",
                                                   "entry; supported architectures: ", supported));
  }
  const ArchBuilder* builder = registry.Find(arch);
  if (builder == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("architecture ", arch, " is not supported; supported architectures: ", supported));
  }
  if (options.continuous_batching) {
    return absl::UnimplementedError("continuous batching export (batch_index, CtxScatterCB) is not implemented yet");
  }

  std::error_code ec;
  std::filesystem::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging.string(), ": ", ec.message()));
  QEFF_ASSIGN_OR_RETURN(GraphBuilder graph, GraphBuilder::Open(staging / kExternalDataName, options.fp16_clip));
  graph.graph().set_name(arch);

  ProgressFn report = progress ? progress : [](const std::string&, const std::string&, int64_t, int64_t) {};
  BuildContext ctx{folder, options, graph, report};
  ExportSummary summary;
  summary.architecture = arch;
  QEFF_RETURN_IF_ERROR((*builder)(ctx, &summary));
  summary.num_parameters = graph.num_parameters();

  std::vector<std::string> transforms = {"KVCacheTransform", "CustomOpsTransform"};
  if (options.fp16_clip) transforms.push_back("FP16ClipTransform");
  onnx::ModelProto& model = graph.model();
  SetMetadata(model, "qeff_transforms", absl::StrJoin(transforms, ","));
  SetMetadata(model, "architecture", arch);
  SetMetadata(model, "num_layers", std::to_string(summary.num_layers));
  SetMetadata(model, "qeff_export_format_version", std::to_string(kExportFormatVersion));
  for (const auto& [key, value] : summary.manifest_extra.items()) {
    SetMetadata(model, key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  summary.manifest_extra["qeff_transforms"] = transforms;
  summary.manifest_extra["opset"] = kOnnxOpset;
  summary.manifest_extra["ir_version"] = kOnnxIrVersion;
  summary.manifest_extra["external_data_bytes"] = graph.external_bytes();

  report("write", "writing model.onnx", 0, 1);
  const std::filesystem::path model_path = staging / "model.onnx";
  QEFF_RETURN_IF_ERROR(graph.Finish(model_path));
  // Our own graph must pass the checker; a failure here is a bug in a builder, not bad input.
  // (onnx throws; nothing may escape this module as an exception.)
  try {
    onnx::checker::check_model(model_path.string());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("exported graph fails the ONNX checker: ", e.what()));
  }
  report("write", "done", 1, 1);
  return summary;
}

}  // namespace qeff::exporter
