// The Precompiled normalizer of tokenizer.json: SentencePiece's own normalization rules
// ("nmt_nfkc", "nfkc_cf", ...), stored in the SentencePiece model as `precompiled_charsmap` and
// copied into tokenizer.json base64-encoded (XLM-RoBERTa, T5, ALBERT, mBART, bge-m3, e5, ...).
//
// Written by hand for this project (no Debian package offers a reader); it follows SentencePiece's
// normalizer and the Rust `tokenizers` library (spm_precompiled), whose results it must match.
//
// The blob is: a 4-byte little-endian trie size in bytes, that many bytes of darts-clone double
// array units (little-endian uint32), then the normalized strings, each ended by a NUL. A key
// (a UTF-8 byte string) maps to the offset of its replacement in that string blob.
//
// Normalization, as the Rust library does it: the text is cut into extended grapheme clusters.
// A cluster shorter than 6 bytes whose *shortest* prefix in the trie has a replacement becomes
// that replacement as a whole; otherwise each character is replaced by its own entry when it has
// one and kept when not. (SentencePiece itself takes the longest match at every position; the
// Rust library, which transformers' fast tokenizers use, does the above, and it is the reference.)
// A NUL byte ends a trie lookup.
//
// Malformed blobs (short header, size not a multiple of 4 or past the end, strings that are not
// UTF-8) are INVALID_ARGUMENT on load; lookups never read outside the arrays, and an entry whose
// offset or string is out of range is treated as no entry.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "common/tokenizer/normalizers.h"

namespace qeff::tokenizer {

class PrecompiledCharsMap {
 public:
  // From the decoded (binary) precompiled_charsmap.
  static absl::StatusOr<PrecompiledCharsMap> FromBlob(std::string_view blob);

  // The replacement of the shortest prefix of `chunk` that has an entry, or nullopt.
  std::optional<std::string_view> Transform(std::string_view chunk) const;
  // Normalizes valid UTF-8 `text` as described above (the result is valid UTF-8).
  void Normalize(std::string* text) const;

 private:
  std::vector<uint32_t> units_;
  std::string normalized_;
};

// {"type": "Precompiled", "precompiled_charsmap": "<base64>"}. An empty charsmap is rejected, as
// the Rust library rejects it.
absl::StatusOr<std::unique_ptr<Normalizer>> PrecompiledNormalizerFromJson(const nlohmann::json& j);

}  // namespace qeff::tokenizer
