#include "common/util/hash.h"

#include <xxhash.h>

#include <cstdio>

#include "common/util/files.h"
#include "common/util/status_macros.h"

namespace qeff::util {

Hasher::Hasher() : state_(XXH3_createState()) { XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_)); }
Hasher::~Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Hasher::Update(const void* data, size_t size) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}

void Hasher::Field(std::string_view s) {
  uint64_t n = s.size();
  Update(&n, sizeof(n));
  Update(s);
}

absl::Status Hasher::File(const std::filesystem::path& path) {
  QEFF_ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  uint64_t n = m.size();
  Update(&n, sizeof(n));
  Update(m.data(), m.size());
  return absl::OkStatus();
}

std::string Hasher::Hex() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(buf, 32);
}

std::string HashHex(std::string_view data) {
  Hasher h;
  h.Update(data);
  return h.Hex();
}

}  // namespace qeff::util
