#include "common/tokenizer/precompiled_normalizer.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

constexpr std::string_view kComponent = "normalizer Precompiled";

// darts-clone unit fields.
inline bool HasLeaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
inline uint32_t Value(uint32_t unit) { return unit & ((1u << 31) - 1); }
inline uint32_t Label(uint32_t unit) { return unit & ((1u << 31) | 0xFF); }
inline size_t Offset(uint32_t unit) { return static_cast<size_t>((unit >> 10) << ((unit & (1u << 9)) >> 6)); }

uint32_t ReadLe32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

class PrecompiledNormalizer : public Normalizer {
 public:
  explicit PrecompiledNormalizer(PrecompiledCharsMap map) : map_(std::move(map)) {}
  void Normalize(std::string* text) const override { map_.Normalize(text); }

 private:
  PrecompiledCharsMap map_;
};

}  // namespace

absl::StatusOr<PrecompiledCharsMap> PrecompiledCharsMap::FromBlob(std::string_view blob) {
  if (blob.size() < 4) return internal::ComponentError(kComponent, "precompiled_charsmap is shorter than its 4-byte header");
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  uint32_t trie_size = ReadLe32(p);
  // The reference reads trie_size / 4 units; a size that is not a multiple of 4 would leave bytes
  // of the trie in the string blob, which no writer produces.
  if (trie_size % 4 != 0) {
    return internal::ComponentError(kComponent, absl::StrCat("precompiled_charsmap trie size ", trie_size, " is not a multiple of 4"));
  }
  if (trie_size > blob.size() - 4) {
    return internal::ComponentError(kComponent, absl::StrCat("precompiled_charsmap trie size ", trie_size, " exceeds the ",
                                                             blob.size() - 4, " bytes after the header"));
  }
  PrecompiledCharsMap m;
  m.units_.resize(trie_size / 4);
  for (size_t i = 0; i < m.units_.size(); ++i) m.units_[i] = ReadLe32(p + 4 + 4 * i);
  m.normalized_ = std::string(blob.substr(4 + trie_size));
  if (!unicode::IsValidUtf8(m.normalized_)) {
    return internal::ComponentError(kComponent, "precompiled_charsmap normalized strings are not valid UTF-8");
  }
  return m;
}

std::optional<std::string_view> PrecompiledCharsMap::Transform(std::string_view chunk) const {
  const size_t n = units_.size();
  if (n == 0) return std::nullopt;
  size_t node = Offset(units_[0]);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    node ^= c;
    if (node >= n) return std::nullopt;
    uint32_t unit = units_[node];
    if (Label(unit) != c) return std::nullopt;
    node ^= Offset(unit);
    if (HasLeaf(unit)) {
      if (node >= n) return std::nullopt;
      size_t begin = Value(units_[node]);
      if (begin > normalized_.size()) return std::nullopt;
      size_t end = normalized_.find('\0', begin);
      if (end == std::string::npos) end = normalized_.size();
      std::string_view out(normalized_.data() + begin, end - begin);
      // The blob is valid UTF-8 and `end` is at a NUL or the end, so `out` is valid unless it
      // starts inside a character (the reference would fail there): treat that as no entry.
      if (begin < normalized_.size() && (static_cast<unsigned char>(normalized_[begin]) & 0xC0) == 0x80) {
        return std::nullopt;
      }
      return out;  // the shortest match, as the reference takes results[0]
    }
  }
  return std::nullopt;
}

void PrecompiledCharsMap::Normalize(std::string* text) const {
  const std::string& s = *text;
  std::string out;
  out.reserve(s.size() + 8);
  bool modified = false;
  for (size_t g = 0; g < s.size();) {
    size_t g_end = unicode::GraphemeEnd(s, g);
    std::string_view grapheme(s.data() + g, g_end - g);
    std::optional<std::string_view> whole;
    if (grapheme.size() < 6) whole = Transform(grapheme);
    if (whole) {
      out.append(whole->data(), whole->size());
      modified = true;
    } else {
      for (size_t i = g; i < g_end;) {
        size_t len = unicode::Utf8Len(static_cast<unsigned char>(s[i]));
        std::string_view ch(s.data() + i, len);
        if (auto r = Transform(ch)) {
          out.append(r->data(), r->size());
          modified = true;
        } else {
          out.append(ch.data(), ch.size());
        }
        i += len;
      }
    }
    g = g_end;
  }
  if (modified) text->swap(out);
}

absl::StatusOr<std::unique_ptr<Normalizer>> PrecompiledNormalizerFromJson(const nlohmann::json& j) {
  if (!j.contains("precompiled_charsmap") || !j["precompiled_charsmap"].is_string()) {
    return internal::ComponentError(kComponent, "\"precompiled_charsmap\" must be a base64 string");
  }
  std::string blob;
  if (!absl::Base64Unescape(j["precompiled_charsmap"].get_ref<const std::string&>(), &blob)) {
    return internal::ComponentError(kComponent, "\"precompiled_charsmap\" is not valid base64");
  }
  auto map = PrecompiledCharsMap::FromBlob(blob);
  if (!map.ok()) return map.status();
  return std::unique_ptr<Normalizer>(std::make_unique<PrecompiledNormalizer>(std::move(*map)));
}

}  // namespace qeff::tokenizer
