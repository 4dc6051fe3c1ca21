// Content hashing for artifact keys: XXH3-128, printed as 32 lowercase hex digits.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace qeff::util {

// Incremental XXH3-128 hasher. Feed it bytes; Hex() gives the digest.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Hashes a length-prefixed field so that ("ab","c") and ("a","bc") differ.
  void Field(std::string_view s);
  // Streams a whole file through the hash (mmap, no full copy).
  absl::Status File(const std::filesystem::path& path);
  std::string Hex() const;

 private:
  void* state_;
};

std::string HashHex(std::string_view data);

}  // namespace qeff::util
