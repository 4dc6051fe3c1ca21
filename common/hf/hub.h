// Resolving a model name to a local folder: a directory, or a hub id found offline in the HF
// cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), laid out as
// models--<org>--<name>/{refs/<branch> -> commit, snapshots/<commit>/...}.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace qeff::hf {

// The hub cache directory the environment selects (it need not exist).
std::filesystem::path HubCacheDir();

// `model` is a local directory, or a hub id "org/name" (or "name") resolved in the hub cache
// without network. `revision` is a branch/tag name (resolved through refs/<revision>) or a commit
// hash; empty means "main". NOT_FOUND says where it looked; INVALID_ARGUMENT for malformed ids.
absl::StatusOr<std::filesystem::path> ResolveModel(const std::string& model, const std::string& revision);

}  // namespace qeff::hf
