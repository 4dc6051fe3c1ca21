// Normalizers of tokenizer.json ("normalizer"): NFC, NFD, NFKC, NFKD, Lowercase, StripAccents,
// BertNormalizer, Replace, Prepend, Strip, ByteLevel, Precompiled (precompiled_normalizer.h) and
// Sequence, with the Rust library's semantics.
// They run on each text segment between added tokens (so Prepend applies per segment).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace qeff::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8 in and out).
  virtual void Normalize(std::string* text) const = 0;
};

// Builds a normalizer from its JSON object; unknown or malformed types are INVALID_ARGUMENT errors
// that name the component.
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& j);

}  // namespace qeff::tokenizer
