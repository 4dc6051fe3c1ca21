// Content-addressed artifact cache shared by the services (see DESIGN.md "Artifacts").
//
//   <root>/exports/<key>/  <root>/qpcs/<key>/  <root>/tmp/  <root>/locks/
//
// An artifact directory is built in tmp/, fsynced, and renamed into place, so a directory that
// exists under exports/ or qpcs/ is always complete. Builds of one key are single-flight across
// threads and processes (flock on locks/<kind>-<key>.lock). Published artifacts are never modified.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qeff::artifacts {

enum class Kind { kExport, kQpc };

// "export" / "qpc".
const char* KindName(Kind kind);

// Keys are 32 lowercase hex digits (XXH3-128); anything else is INVALID_ARGUMENT.
absl::Status ValidateKey(const std::string& key);

struct PublishResult {
  std::filesystem::path path;
  bool cache_hit = false;
  nlohmann::json manifest;
};

struct ArtifactInfo {
  Kind kind;
  std::string key;
  std::filesystem::path path;
  uint64_t bytes = 0;
  nlohmann::json manifest;
};

// Builds the artifact's files into `staging` (an empty directory) and returns the manifest
// fields that describe it (inputs, options, summary). The store adds key, kind, files and timing.
using BuildFn = std::function<absl::StatusOr<nlohmann::json>(const std::filesystem::path& staging)>;
// Called when the build has to wait for another builder of the same key.
using WaitFn = std::function<void()>;

class Store {
 public:
  // Creates the layout under `root` if needed.
  static absl::StatusOr<Store> Open(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }

  // The directory of a published artifact, or NOT_FOUND.
  absl::StatusOr<std::filesystem::path> Find(Kind kind, const std::string& key) const;
  absl::StatusOr<nlohmann::json> ReadManifest(Kind kind, const std::string& key) const;

  // Returns the published artifact, building it first if it does not exist. Concurrent calls for
  // one key (any process) build once; the others wait and get a cache hit.
  absl::StatusOr<PublishResult> GetOrBuild(Kind kind, const std::string& key, const BuildFn& build,
                                           const WaitFn& on_wait = nullptr);

  // Re-checks sizes and checksums of a published artifact against its manifest.
  absl::Status Verify(Kind kind, const std::string& key) const;

  std::vector<ArtifactInfo> List() const;

  // Removes staging leftovers (from crashed builds) that no live builder holds. Returns the count.
  int CollectGarbage();

 private:
  explicit Store(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path Dir(Kind kind) const;

  std::filesystem::path root_;
};

// Default cache root: $QEFF_CACHE, else $XDG_CACHE_HOME/qeff, else ~/.cache/qeff.
std::filesystem::path DefaultCacheRoot();

}  // namespace qeff::artifacts
