#include "services/exporter/exporter.h"

#include <exception>
#include <system_error>

#include <onnx/checker.h>

#include "absl/strings/match.h"
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

bool HasInput(const onnx::GraphProto& graph, const std::string& name) {
  for (const auto& v : graph.input()) {
    if (v.name() == name) return true;
  }
  return false;
}

// The graph keeps a KV cache: QEfficient's KVCacheTransform applied.
bool HasRetainedState(const onnx::GraphProto& graph) {
  for (const auto& v : graph.output()) {
    if (absl::EndsWith(v.name(), "_RetainedState")) return true;
  }
  return false;
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
  onnx::ModelProto& model = graph.model();
  const bool kv_cache = HasRetainedState(model.graph());
  if (options.continuous_batching && !HasInput(model.graph(), "batch_index")) {
    return absl::InvalidArgumentError(absl::StrCat("continuous batching applies to causal LMs with a KV cache; ", arch,
                                                   " exports none (export it without continuous_batching)"));
  }

  std::vector<std::string> transforms = {"KVCacheTransform", "CustomOpsTransform"};
  if (options.fp16_clip) transforms.push_back("FP16ClipTransform");
  SetMetadata(model, "qeff_transforms", absl::StrJoin(transforms, ","));
  SetMetadata(model, "architecture", arch);
  SetMetadata(model, "num_layers", std::to_string(summary.num_layers));
  SetMetadata(model, "qeff_export_format_version", std::to_string(kExportFormatVersion));
  for (const auto& [key, value] : summary.manifest_extra.items()) {
    SetMetadata(model, key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  // Only with continuous batching, so the bytes of every other export stay as they were.
  if (options.continuous_batching) SetMetadata(model, "continuous_batching", "true");
  summary.manifest_extra["qeff_transforms"] = transforms;
  // QEfficient's names for what this export applied, split as its qconfig.json does: PyTorch
  // transforms in its CausalLM order (continuous batching is an option of KVCacheTransform's
  // modules, batch_index, not a transform of its own) and ONNX transforms.
  std::vector<std::string> pytorch_transforms = {"CustomOpsTransform"};
  if (kv_cache) pytorch_transforms.push_back("KVCacheTransform");
  std::vector<std::string> onnx_transforms;
  if (options.fp16_clip) onnx_transforms.push_back("FP16ClipTransform");
  summary.manifest_extra["transforms"] = pytorch_transforms;
  summary.manifest_extra["onnx_transforms"] = onnx_transforms;
  summary.manifest_extra["continuous_batching"] = options.continuous_batching;
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
