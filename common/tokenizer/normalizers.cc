#include "common/tokenizer/normalizers.h"

#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/precompiled_normalizer.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

using internal::ComponentError;
using internal::Json;
using unicode::DecodeUtf8;

// Applies `f(c, out)` to every character of text.
template <typename F>
void MapChars(std::string* text, F f) {
  std::string out;
  out.reserve(text->size() + 8);
  const std::string& s = *text;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      f(static_cast<char32_t>(s[i++]), &out);
    } else {
      f(DecodeUtf8(s, &i), &out);
    }
  }
  text->swap(out);
}

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalizationForm form) : form_(form) {}
  void Normalize(std::string* text) const override { *text = unicode::Normalize(*text, form_); }

 private:
  unicode::NormalizationForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    MapChars(text, [](char32_t c, std::string* out) { unicode::AppendLowercase(c, out); });
  }
};

class StripAccentsNormalizer : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    MapChars(text, [](char32_t c, std::string* out) {
      if (!unicode::IsMark(c)) unicode::AppendUtf8(c, out);
    });
  }
};

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        handle_chinese_chars_(handle_chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}

  void Normalize(std::string* text) const override {
    if (clean_text_) {
      MapChars(text, [](char32_t c, std::string* out) {
        if (c == '\t' || c == '\n' || c == '\r') {
          out->push_back(' ');
        } else if (c == 0 || c == 0xFFFD || unicode::IsOther(c)) {
          // dropped: NUL, U+FFFD and control / format / unassigned characters
        } else if (unicode::IsWhitespace(c)) {
          out->push_back(' ');
        } else {
          unicode::AppendUtf8(c, out);
        }
      });
    }
    if (handle_chinese_chars_) {
      MapChars(text, [](char32_t c, std::string* out) {
        if (unicode::IsChineseChar(c)) {
          out->push_back(' ');
          unicode::AppendUtf8(c, out);
          out->push_back(' ');
        } else {
          unicode::AppendUtf8(c, out);
        }
      });
    }
    if (strip_accents_) {
      *text = unicode::Normalize(*text, unicode::NormalizationForm::kNFD);
      MapChars(text, [](char32_t c, std::string* out) {
        if (!unicode::IsMarkNonspacing(c)) unicode::AppendUtf8(c, out);
      });
    }
    if (lowercase_) {
      MapChars(text, [](char32_t c, std::string* out) { unicode::AppendLowercase(c, out); });
    }
  }

 private:
  bool clean_text_, handle_chinese_chars_, strip_accents_, lowercase_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(unicode::Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    pattern_.FindAll(*text, &matches);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text->size() + matches.size() * content_.size());
    size_t prev = 0;
    for (auto [s, e] : matches) {
      out.append(*text, prev, s - prev);
      out += content_;
      prev = e;
    }
    out.append(*text, prev, std::string::npos);
    text->swap(out);
  }

 private:
  unicode::Pattern pattern_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    const std::string& s = *text;
    size_t begin = 0, end = s.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!unicode::IsWhitespace(DecodeUtf8(s, &i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!unicode::IsWhitespace(DecodeUtf8(s, &i))) break;
        end = start;
      }
    }
    *text = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

// Maps every byte to its GPT-2 byte-level character.
class ByteLevelNormalizer : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    std::string out;
    out.reserve(text->size() * 2);
    for (unsigned char b : *text) out += unicode::ByteToChar(b);
    text->swap(out);
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void Normalize(std::string* text) const override {
    for (const auto& n : parts_) n->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const Json& j) {
  auto type_or = internal::GetType(j, "normalizer");
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  const std::string component = absl::StrCat("normalizer ", type);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalizationForm::kNFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "BertNormalizer") {
    auto clean = internal::GetBool(j, "clean_text", true, component);
    auto chinese = internal::GetBool(j, "handle_chinese_chars", true, component);
    auto lower = internal::GetBool(j, "lowercase", true, component);
    if (!clean.ok()) return clean.status();
    if (!chinese.ok()) return chinese.status();
    if (!lower.ok()) return lower.status();
    // strip_accents: null follows lowercase.
    auto strip = internal::GetBool(j, "strip_accents", *lower, component);
    if (!strip.ok()) return strip.status();
    return std::make_unique<BertNormalizer>(*clean, *chinese, *strip, *lower);
  }
  if (type == "Replace") {
    auto pattern = internal::GetPattern(j, "pattern", component);
    if (!pattern.ok()) return pattern.status();
    auto content = internal::GetString(j, "content", "", component);
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceNormalizer>(std::move(*pattern), std::move(*content));
  }
  if (type == "Prepend") {
    auto prepend = internal::GetString(j, "prepend", "", component);
    if (!prepend.ok()) return prepend.status();
    return std::make_unique<PrependNormalizer>(std::move(*prepend));
  }
  if (type == "Strip") {
    auto left = internal::GetBool(j, "strip_left", true, component);
    auto right = internal::GetBool(j, "strip_right", true, component);
    if (!left.ok()) return left.status();
    if (!right.ok()) return right.status();
    return std::make_unique<StripNormalizer>(*left, *right);
  }
  if (type == "Precompiled") return PrecompiledNormalizerFromJson(j);
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return ComponentError(component, "\"normalizers\" must be a list");
    }
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const Json& part : j["normalizers"]) {
      auto n = NormalizerFromJson(part);
      if (!n.ok()) return n.status();
      parts.push_back(std::move(*n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return ComponentError("normalizer", absl::StrCat("unsupported type \"", type, "\""));
}

}  // namespace qeff::tokenizer
