// Typed access to tokenizer.json fields. Every accessor returns INVALID_ARGUMENT naming the
// component and the key when a field has the wrong type; a missing or null field takes the
// default (the Rust library treats these fields as Option / serde defaults).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer::internal {

using Json = nlohmann::json;

absl::Status ComponentError(std::string_view component, std::string_view message);

// True when j is an object holding `key` with a non-null value.
bool Has(const Json& j, std::string_view key);
absl::StatusOr<bool> GetBool(const Json& j, std::string_view key, bool def,
                             std::string_view component);
absl::StatusOr<std::string> GetString(const Json& j, std::string_view key, std::string_view def,
                                      std::string_view component);
absl::StatusOr<int64_t> GetInt(const Json& j, std::string_view key, int64_t def,
                               std::string_view component);
// A one-character string field (Metaspace replacement, Strip content).
absl::StatusOr<char32_t> GetChar(const Json& j, std::string_view key, char32_t def,
                                 std::string_view component);
// The "type" of a component object; an error when absent.
absl::StatusOr<std::string> GetType(const Json& j, std::string_view component);
// A {"String": s} / {"Regex": r} pattern under `key`.
absl::StatusOr<unicode::Pattern> GetPattern(const Json& j, std::string_view key,
                                            std::string_view component);

}  // namespace qeff::tokenizer::internal
