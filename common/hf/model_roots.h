// Where a server's Export may read models from (--model-root, repeatable). A client names a
// model by path or hub id; with roots configured, only folders inside a root are served:
// absolute paths must lie inside one, relative paths and "org/name" are looked up under each root
// in order, then in the HF hub cache (whose snapshot must itself lie inside a root). Paths are
// canonicalized first, so "..", symlinked folders and NUL bytes cannot escape. A refused path is
// PERMISSION_DENIED with the same message whether or not it exists, and no error echoes more
// than a bounded prefix of the client's input or names a path outside the roots.
// Without roots any local folder or hub id resolves (local use).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qeff::hf {

class ModelRoots {
 public:
  // Every root must be an existing directory (INVALID_ARGUMENT naming it otherwise).
  static absl::StatusOr<ModelRoots> Create(const std::vector<std::string>& roots);
  ModelRoots() = default;

  bool restricted() const { return !roots_.empty(); }
  const std::vector<std::filesystem::path>& roots() const { return roots_; }

  // The model folder `model` (a path or hub id at `revision`) names.
  absl::StatusOr<std::filesystem::path> Resolve(const std::string& model, const std::string& revision) const;

 private:
  bool Inside(const std::filesystem::path& canonical) const;
  std::vector<std::filesystem::path> roots_;  // canonical
};

// At most `max` bytes of client input for an error message, with "..." when cut.
std::string ClipForMessage(const std::string& s, size_t max = 120);

}  // namespace qeff::hf
