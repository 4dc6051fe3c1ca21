#include "common/tokenizer/pre_tokenizers.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

using internal::ComponentError;
using internal::Json;
using Matches = std::vector<std::pair<size_t, size_t>>;

// GPT-2's split pattern, as built into the ByteLevel pre-tokenizer. With PCRE2_UCP, \s is
// Unicode White_Space (incl. U+0085, U+2028, U+3000) like in the Rust library.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// The Whitespace pre-tokenizer's `\w+|[^\w\s]+`, with \w spelled as the Rust regex crate's
// Unicode word class (PCRE2's own \w lacks marks and connector punctuation).
constexpr char kWordPattern[] =
    R"([\p{L}\p{Nl}\p{Nd}\p{M}\p{Pc}\x{200C}\x{200D}]+|[^\p{L}\p{Nl}\p{Nd}\p{M}\p{Pc}\x{200C}\x{200D}\s]+)";

// Each character for which pred(c) holds is one match (the Rust `Fn(char) -> bool` pattern).
template <typename Pred>
void CharMatches(const std::string& s, Pred pred, Matches* out) {
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    char32_t c = unicode::DecodeUtf8(s, &i);
    if (pred(c)) out->emplace_back(start, i);
  }
}

template <typename F>
void ForEachPiece(std::vector<Piece>* pieces, F split) {
  std::vector<Piece> out;
  out.reserve(pieces->size() * 2);
  for (const Piece& p : *pieces) split(p, &out);
  pieces->swap(out);
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<unicode::Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachPiece(pieces, [&](const Piece& in, std::vector<Piece>* out) {
      Piece p = in;
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      size_t first = out->size();
      if (regex_ != nullptr) {
        Matches m;
        regex_->FindAll(p.text, &m);
        SplitByMatches(p, m, false, SplitBehavior::kIsolated, out);
      } else if (!p.text.empty()) {
        out->push_back(std::move(p));
      }
      for (size_t i = first; i < out->size(); ++i) {
        std::string mapped;
        mapped.reserve((*out)[i].text.size() * 2);
        for (unsigned char b : (*out)[i].text) mapped += unicode::ByteToChar(b);
        (*out)[i].text.swap(mapped);
      }
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<unicode::Regex> regex_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(unicode::Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachPiece(pieces, [&](const Piece& in, std::vector<Piece>* out) {
      Matches m;
      pattern_.FindAll(in.text, &m);
      SplitByMatches(in, m, invert_, behavior_, out);
    });
  }

 private:
  unicode::Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// A split on a character predicate.
template <typename Pred>
class CharSplitPreTokenizer : public PreTokenizer {
 public:
  CharSplitPreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachPiece(pieces, [&](const Piece& in, std::vector<Piece>* out) {
      Matches m;
      CharMatches(in.text, pred_, &m);
      SplitByMatches(in, m, false, behavior_, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> MakeCharSplit(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplitPreTokenizer<Pred>>(pred, behavior);
}

// Whitespace split (removed), then punctuation (isolated).
class BertPreTokenizer : public PreTokenizer {
 public:
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachPiece(pieces, [&](const Piece& in, std::vector<Piece>* out) {
      const std::string& s = in.text;
      size_t word_start = 0;
      auto flush = [&](size_t end) {
        if (end > word_start) out->push_back({s.substr(word_start, end - word_start), in.at_start && word_start == 0});
      };
      for (size_t i = 0; i < s.size();) {
        size_t start = i;
        char32_t c = unicode::DecodeUtf8(s, &i);
        if (unicode::IsWhitespace(c)) {
          flush(start);
          word_start = i;
        } else if (unicode::IsPunctuation(c)) {
          flush(start);
          out->push_back({s.substr(start, i - start), in.at_start && start == 0});
          word_start = i;
        }
      }
      flush(s.size());
    });
  }
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(char32_t replacement, Prepend prepend, bool split)
      : prepend_(prepend), split_(split) {
    unicode::AppendUtf8(replacement, &replacement_);
  }
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachPiece(pieces, [&](const Piece& in, std::vector<Piece>* out) {
      Piece p;
      p.at_start = in.at_start;
      for (char c : in.text) {
        if (c == ' ') {
          p.text += replacement_;
        } else {
          p.text.push_back(c);
        }
      }
      bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_start))) {
        p.text.insert(0, replacement_);
      }
      if (!split_) {
        if (!p.text.empty()) out->push_back(std::move(p));
        return;
      }
      Matches m;
      size_t pos = 0;
      while ((pos = p.text.find(replacement_, pos)) != std::string::npos) {
        m.emplace_back(pos, pos + replacement_.size());
        pos += replacement_.size();
      }
      SplitByMatches(p, m, false, SplitBehavior::kMergedWithNext, out);
    });
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const Json& j, std::string_view def,
                                            std::string_view component) {
  auto name = internal::GetString(j, "behavior", def, component);
  if (!name.ok()) return name.status();
  if (*name == "Removed") return SplitBehavior::kRemoved;
  if (*name == "Isolated") return SplitBehavior::kIsolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::kContiguous;
  return ComponentError(component, absl::StrCat("unknown behavior \"", *name, "\""));
}

}  // namespace

void SplitByMatches(const Piece& in, const Matches& matches, bool invert, SplitBehavior behavior,
                    std::vector<Piece>* out) {
  const std::string& s = in.text;
  if (s.empty()) return;
  struct Span {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Span> spans;
  spans.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != s.size()) spans.push_back({prev, s.size(), invert});

  // (range, keep) pairs, as in NormalizedString::split.
  std::vector<Span> parts;  // is_match here means "remove"
  parts.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kRemoved:
      parts = spans;
      break;
    case SplitBehavior::kIsolated:
      for (const Span& sp : spans) parts.push_back({sp.begin, sp.end, false});
      break;
    case SplitBehavior::kContiguous: {
      bool previous = false;
      for (const Span& sp : spans) {
        if (sp.is_match == previous && !parts.empty()) {
          parts.back().end = sp.end;
        } else {
          parts.push_back({sp.begin, sp.end, false});
        }
        previous = sp.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous = false;
      for (const Span& sp : spans) {
        if (sp.is_match && !previous && !parts.empty()) {
          parts.back().end = sp.end;
        } else {
          parts.push_back({sp.begin, sp.end, false});
        }
        previous = sp.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous = false;
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& sp = spans[k];
        if (sp.is_match && !previous && !parts.empty()) {
          parts.back().begin = sp.begin;
        } else {
          parts.push_back({sp.begin, sp.end, false});
        }
        previous = sp.is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  for (const Span& part : parts) {
    if (part.is_match || part.end <= part.begin) continue;
    out->push_back({s.substr(part.begin, part.end - part.begin), in.at_start && part.begin == 0});
  }
}

std::unique_ptr<PreTokenizer> MakeByteLevelPreTokenizer(bool add_prefix_space) {
  auto regex = unicode::Regex::Compile(kGpt2Pattern);
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex).value());
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const Json& j) {
  auto type_or = internal::GetType(j, "pre_tokenizer");
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  const std::string component = absl::StrCat("pre_tokenizer ", type);
  if (type == "ByteLevel") {
    auto prefix = internal::GetBool(j, "add_prefix_space", true, component);
    auto use_regex = internal::GetBool(j, "use_regex", true, component);
    if (!prefix.ok()) return prefix.status();
    if (!use_regex.ok()) return use_regex.status();
    std::unique_ptr<unicode::Regex> regex;
    if (*use_regex) {
      auto r = unicode::Regex::Compile(kGpt2Pattern);
      if (!r.ok()) return r.status();
      regex = std::move(*r);
    }
    return std::make_unique<ByteLevelPreTokenizer>(*prefix, std::move(regex));
  }
  if (type == "Split") {
    auto pattern = internal::GetPattern(j, "pattern", component);
    if (!pattern.ok()) return pattern.status();
    auto behavior = ParseBehavior(j, "Removed", component);
    if (!behavior.ok()) return behavior.status();
    auto invert = internal::GetBool(j, "invert", false, component);
    if (!invert.ok()) return invert.status();
    return std::make_unique<SplitPreTokenizer>(std::move(*pattern), *behavior, *invert);
  }
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Whitespace") {
    auto pattern = unicode::Pattern::FromRegex(kWordPattern);
    if (!pattern.ok()) return pattern.status();
    // Keep the matches: inverted, then the (now non-matching) rest is removed.
    return std::make_unique<SplitPreTokenizer>(std::move(*pattern), SplitBehavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return MakeCharSplit([](char32_t c) { return unicode::IsWhitespace(c); }, SplitBehavior::kRemoved);
  }
  if (type == "Punctuation") {
    auto behavior = ParseBehavior(j, "Isolated", component);
    if (!behavior.ok()) return behavior.status();
    return MakeCharSplit([](char32_t c) { return unicode::IsPunctuation(c); }, *behavior);
  }
  if (type == "Digits") {
    auto individual = internal::GetBool(j, "individual_digits", false, component);
    if (!individual.ok()) return individual.status();
    return MakeCharSplit([](char32_t c) { return unicode::IsNumeric(c); },
                         *individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "CharDelimiterSplit") {
    auto delimiter = internal::GetChar(j, "delimiter", U' ', component);
    if (!delimiter.ok()) return delimiter.status();
    char32_t d = *delimiter;
    return MakeCharSplit([d](char32_t c) { return c == d; }, SplitBehavior::kRemoved);
  }
  if (type == "Metaspace") {
    auto replacement = internal::GetChar(j, "replacement", U'\u2581', component);
    if (!replacement.ok()) return replacement.status();
    auto split = internal::GetBool(j, "split", true, component);
    if (!split.ok()) return split.status();
    // Older files only have add_prefix_space (true = "always").
    auto add_prefix = internal::GetBool(j, "add_prefix_space", true, component);
    if (!add_prefix.ok()) return add_prefix.status();
    auto scheme = internal::GetString(j, "prepend_scheme", *add_prefix ? "always" : "never", component);
    if (!scheme.ok()) return scheme.status();
    MetaspacePreTokenizer::Prepend prepend;
    if (*scheme == "always") {
      prepend = MetaspacePreTokenizer::Prepend::kAlways;
    } else if (*scheme == "first") {
      prepend = MetaspacePreTokenizer::Prepend::kFirst;
    } else if (*scheme == "never") {
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    } else {
      return ComponentError(component, absl::StrCat("unknown prepend_scheme \"", *scheme, "\""));
    }
    return std::make_unique<MetaspacePreTokenizer>(*replacement, prepend, *split);
  }
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return ComponentError(component, "\"pretokenizers\" must be a list");
    }
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const Json& part : j["pretokenizers"]) {
      auto p = PreTokenizerFromJson(part);
      if (!p.ok()) return p.status();
      parts.push_back(std::move(*p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return ComponentError("pre_tokenizer", absl::StrCat("unsupported type \"", type, "\""));
}

}  // namespace qeff::tokenizer
