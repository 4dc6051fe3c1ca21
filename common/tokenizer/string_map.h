// Hash maps keyed by std::string with lookups by std::string_view. Debian's abseil has its own
// absl::string_view, so absl's built-in heterogeneous string lookup does not accept
// std::string_view; these transparent functors do.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace qeff::tokenizer {

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringViewHash, StringViewEq>;

}  // namespace qeff::tokenizer
