// Content-addressed artifact cache shared by the services (see DESIGN.md "Artifacts").
//
//   <root>/exports/<key>/  <root>/qpcs/<key>/  <root>/tmp/  <root>/locks/
//
//   <root>/quarantine/   damaged artifacts moved aside (with reason.txt), never read again
//
// An artifact directory is built in tmp/, fsynced, and renamed into place, so a directory that
// exists under exports/ or qpcs/ with its manifest.json is complete. Builds of one key are
// single-flight across threads and processes (flock on locks/<kind>-<key>.lock). Published
// artifacts are never modified; a damaged one (checksum mismatch, a folder without its manifest)
// is moved to quarantine/ and the next request for its key builds it again.
//
// Users of an artifact (a runner that loaded a qpc, a compile reading an export) hold a shared
// flock on locks/<kind>-<key>.use for as long as they read it; eviction and removal take it
// exclusively and so never remove an artifact in use by any process sharing the cache. Each use
// touches locks/<kind>-<key>.use, whose mtime orders least-recently-used eviction.
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

// A shared hold on an artifact (see above); released on destruction.
class ArtifactUse {
 public:
  ArtifactUse() = default;
  explicit ArtifactUse(int fd) : fd_(fd) {}
  ArtifactUse(ArtifactUse&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ArtifactUse& operator=(ArtifactUse&& o) noexcept;
  ArtifactUse(const ArtifactUse&) = delete;
  ArtifactUse& operator=(const ArtifactUse&) = delete;
  ~ArtifactUse();

 private:
  int fd_ = -1;
};

class Store {
 public:
  // Creates the layout under `root` if needed.
  static absl::StatusOr<Store> Open(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }
  // With a limit, every publish is followed by Evict(max_bytes) (0 = no limit).
  void set_max_bytes(uint64_t max_bytes) { max_bytes_ = max_bytes; }

  // The directory of a published artifact, or NOT_FOUND.
  absl::StatusOr<std::filesystem::path> Find(Kind kind, const std::string& key) const;
  absl::StatusOr<nlohmann::json> ReadManifest(Kind kind, const std::string& key) const;

  // Returns the published artifact, building it first if it does not exist. Concurrent calls for
  // one key (any process) build once; the others wait and get a cache hit.
  absl::StatusOr<PublishResult> GetOrBuild(Kind kind, const std::string& key, const BuildFn& build,
                                           const WaitFn& on_wait = nullptr);

  // Re-checks sizes and checksums (XXH3) of a published artifact against its manifest:
  // DATA_LOSS naming the artifact and the file. A file whose identity (device, inode, size,
  // mtime) was verified before by this process is not hashed again, so reloads stay fast.
  absl::Status Verify(Kind kind, const std::string& key) const;

  // Moves a published (or half-present) artifact to quarantine/ with `reason`; the next
  // GetOrBuild of its key builds it again. OK when there is nothing to move.
  absl::Status Quarantine(Kind kind, const std::string& key, const std::string& reason) const;

  // Marks the artifact in use (shared lock, see above) and records the use for LRU order.
  absl::StatusOr<ArtifactUse> Use(Kind kind, const std::string& key) const;

  // Removes one artifact; FAILED_PRECONDITION while any process uses it, NOT_FOUND if absent.
  absl::Status Remove(Kind kind, const std::string& key) const;

  // Removes least-recently-used artifacts not in use until the published artifacts take at most
  // `max_bytes`. Returns how many were removed.
  int Evict(uint64_t max_bytes) const;

  std::vector<ArtifactInfo> List() const;

  // Removes staging leftovers (from crashed builds) that no live builder holds. Returns the count.
  int CollectGarbage();

 private:
  explicit Store(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path Dir(Kind kind) const;

  std::filesystem::path root_;
  uint64_t max_bytes_ = 0;
};

// Default cache root: $QEFF_CACHE, else $XDG_CACHE_HOME/qeff, else ~/.cache/qeff.
std::filesystem::path DefaultCacheRoot();

}  // namespace qeff::artifacts
