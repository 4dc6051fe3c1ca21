// Architecture builders by HF architecture name (config.json architectures[0]). Each file in
// models/ provides a Register<Family>() function listed in model_registry.cc.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/hf/model_folder.h"
#include "services/exporter/exporter.h"
#include "services/exporter/graph_builder.h"

namespace qeff::exporter {

struct BuildContext {
  const hf::ModelFolder& folder;
  const ExportOptions& options;
  GraphBuilder& graph;
  ProgressFn progress;  // never empty
};

// Adds the whole graph (inputs, nodes, weights, outputs) and fills num_layers, manifest_extra
// (and any metadata worth recording; architecture and num_parameters are set by the caller).
using ArchBuilder = std::function<absl::Status(BuildContext& ctx, ExportSummary* summary)>;

class ModelRegistry {
 public:
  static const ModelRegistry& Get();

  void Register(const std::string& architecture, ArchBuilder builder);
  const ArchBuilder* Find(const std::string& architecture) const;
  std::vector<std::string> Architectures() const;

 private:
  std::map<std::string, ArchBuilder> builders_;
};

}  // namespace qeff::exporter
