// File helpers: whole-file reads with a size bound, read-only mmap, and path confinement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace qeff::util {

// Reads a whole file; fails if it is larger than `max_bytes` (inputs from outside are bounded).
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path, uint64_t max_bytes);

// Writes `data` to `path` and fsyncs it (callers publish by renaming the parent directory).
absl::Status WriteFileSynced(const std::filesystem::path& path, const std::string& data);

// fsyncs a directory so a rename inside it is durable.
absl::Status SyncDirectory(const std::filesystem::path& dir);

// A read-only memory mapping of a whole file. Movable, not copyable; unmaps on destruction.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::filesystem::path& path);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Resolves `child` (relative or absolute) and checks that it stays inside `root` after
// symlinks and `..` are resolved. Returns the canonical path or PERMISSION_DENIED.
absl::StatusOr<std::filesystem::path> ConfinePath(const std::filesystem::path& root,
                                                  const std::filesystem::path& child);

}  // namespace qeff::util
