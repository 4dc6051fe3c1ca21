#include "common/tokenizer/decoders.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

using internal::ComponentError;
using internal::Json;

// Byte-level characters back to bytes; a token with any character outside the alphabet keeps its
// own bytes. The result is made valid UTF-8 (maximal invalid subparts become U+FFFD).
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      size_t mark = bytes.size();
      bool all = true;
      for (size_t i = 0; i < t.size();) {
        int b = unicode::CharToByte(unicode::DecodeUtf8(t, &i));
        if (b < 0) {
          all = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens->assign(1, unicode::IsValidUtf8(bytes) ? std::move(bytes) : unicode::SanitizeUtf8(bytes));
  }
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (i != 0) {
        if (!prefix_.empty() && t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else if (prefix_.empty()) {
          // replacen("", "", 1) is a no-op and every token "starts with" the empty prefix.
        } else {
          t.insert(0, " ");
        }
      }
      if (cleanup_) t = Cleanup(t);
    }
  }

  // The English detokenization clean-up of the Rust library, applied per token.
  static std::string Cleanup(const std::string& s) {
    std::string r = s;
    for (auto [from, to] : std::initializer_list<std::pair<const char*, const char*>>{
             {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
             {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}) {
      if (r.find(from) != std::string::npos) r = absl::StrReplaceAll(r, {{from, to}});
    }
    return r;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first) : strip_first_(strip_first) {
    unicode::AppendUtf8(replacement, &replacement_);
  }
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (t.find(replacement_) == std::string::npos) continue;
      // In the first token every replacement character is dropped (Rust behaviour), elsewhere
      // each becomes a space.
      t = absl::StrReplaceAll(t, {{replacement_, (i == 0 && strip_first_) ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

// Runs of <0xNN> tokens become the bytes they name when those form valid UTF-8; otherwise each
// byte becomes one U+FFFD.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      if (unicode::IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : *tokens) {
      int byte = ParseByte(t);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens->swap(out);
  }

  // "<0xNN>" -> NN, else -1.
  static int ParseByte(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = hex(t[3]), lo = hex(t[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters of each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      for (size_t i = 0; i < t.size();) {
        starts.push_back(i);
        unicode::DecodeUtf8(t, &i);
      }
      size_t n = starts.size();
      auto char_at = [&](size_t k) {
        size_t i = starts[k];
        return unicode::DecodeUtf8(t, &i);
      };
      size_t start_cut = 0;
      for (size_t k = 0; k < std::min(start_, n); ++k) {
        if (char_at(k) != content_) break;
        start_cut = k + 1;
      }
      size_t stop_cut = n;
      for (size_t k = 0; k < std::min(stop_, n); ++k) {
        size_t index = n - k - 1;
        if (char_at(index) != content_) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        t.clear();
        continue;
      }
      size_t b = start_cut < n ? starts[start_cut] : t.size();
      size_t e = stop_cut < n ? starts[stop_cut] : t.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(unicode::Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    for (std::string& t : *tokens) {
      matches.clear();
      pattern_.FindAll(t, &matches);
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [s, e] : matches) {
        out.append(t, prev, s - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t.swap(out);
    }
  }

 private:
  unicode::Pattern pattern_;
  std::string content_;
};

// BPE end-of-word suffix -> space (none after the last token).
class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens->size(); ++i) {
      (*tokens)[i] = absl::StrReplaceAll((*tokens)[i], {{suffix_, i + 1 == tokens->size() ? "" : " "}});
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& d : parts_) d->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> MakeByteLevelDecoder() { return std::make_unique<ByteLevelDecoder>(); }

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const Json& j) {
  auto type_or = internal::GetType(j, "decoder");
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  const std::string component = absl::StrCat("decoder ", type);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "WordPiece") {
    auto prefix = internal::GetString(j, "prefix", "##", component);
    auto cleanup = internal::GetBool(j, "cleanup", true, component);
    if (!prefix.ok()) return prefix.status();
    if (!cleanup.ok()) return cleanup.status();
    return std::make_unique<WordPieceDecoder>(*prefix, *cleanup);
  }
  if (type == "Metaspace") {
    auto replacement = internal::GetChar(j, "replacement", U'\u2581', component);
    if (!replacement.ok()) return replacement.status();
    auto add_prefix = internal::GetBool(j, "add_prefix_space", true, component);
    if (!add_prefix.ok()) return add_prefix.status();
    auto scheme = internal::GetString(j, "prepend_scheme", *add_prefix ? "always" : "never", component);
    if (!scheme.ok()) return scheme.status();
    if (*scheme != "always" && *scheme != "first" && *scheme != "never") {
      return ComponentError(component, absl::StrCat("unknown prepend_scheme \"", *scheme, "\""));
    }
    return std::make_unique<MetaspaceDecoder>(*replacement, *scheme != "never");
  }
  if (type == "Strip") {
    auto content = internal::GetChar(j, "content", U' ', component);
    auto start = internal::GetInt(j, "start", 0, component);
    auto stop = internal::GetInt(j, "stop", 0, component);
    for (const absl::Status& s : {content.status(), start.status(), stop.status()}) {
      if (!s.ok()) return s;
    }
    if (*start < 0 || *stop < 0) return ComponentError(component, "start and stop must be >= 0");
    return std::make_unique<StripDecoder>(*content, static_cast<size_t>(*start), static_cast<size_t>(*stop));
  }
  if (type == "Replace") {
    auto pattern = internal::GetPattern(j, "pattern", component);
    if (!pattern.ok()) return pattern.status();
    auto content = internal::GetString(j, "content", "", component);
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceDecoder>(std::move(*pattern), std::move(*content));
  }
  if (type == "BPEDecoder") {
    auto suffix = internal::GetString(j, "suffix", "</w>", component);
    if (!suffix.ok()) return suffix.status();
    return std::make_unique<BpeDecoder>(*suffix);
  }
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) {
      return ComponentError(component, "\"decoders\" must be a list");
    }
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const Json& part : j["decoders"]) {
      auto d = DecoderFromJson(part);
      if (!d.ok()) return d.status();
      parts.push_back(std::move(*d));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return ComponentError("decoder", absl::StrCat("unsupported type \"", type, "\""));
}

}  // namespace qeff::tokenizer
