#include "common/tokenizer/added_tokens.h"

#include <algorithm>

#include "common/tokenizer/normalizers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

bool IsWordChar(char32_t c) { return c == '_' || unicode::IsAlphanumeric(c); }

char32_t LastChar(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return unicode::DecodeUtf8(s, &start);
}

}  // namespace

void AddedVocabulary::Matcher::Add(std::string_view pattern, int token) {
  if (pattern.empty()) return;
  int node = 0;
  for (unsigned char b : pattern) {
    int next = -1;
    for (auto& [c, child] : nodes_[node].children) {
      if (c == b) {
        next = child;
        break;
      }
    }
    if (next < 0) {
      next = static_cast<int>(nodes_.size());
      nodes_[node].children.emplace_back(b, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  // The first token with a given pattern keeps it.
  if (nodes_[node].token < 0) nodes_[node].token = token;
  first_[static_cast<unsigned char>(pattern[0])] = true;
}

size_t AddedVocabulary::Matcher::LongestAt(std::string_view text, size_t pos, int* token) const {
  int node = 0;
  size_t best = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    unsigned char b = static_cast<unsigned char>(text[i]);
    int next = -1;
    for (const auto& [c, child] : nodes_[node].children) {
      if (c == b) {
        next = child;
        break;
      }
    }
    if (next < 0) break;
    node = next;
    if (nodes_[node].token >= 0) {
      best = i + 1 - pos;
      *token = nodes_[node].token;
    }
  }
  return best;
}

void AddedVocabulary::Build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_.clear();
  by_id_.clear();
  by_content_.clear();
  raw_ = Matcher();
  normalized_ = Matcher();
  max_id_ = -1;
  for (AddedToken& t : tokens) {
    if (t.content.empty() || by_id_.contains(t.id)) continue;
    int index = static_cast<int>(tokens_.size());
    by_id_[t.id] = index;
    by_content_.try_emplace(t.content, index);
    max_id_ = std::max(max_id_, t.id);
    if (t.normalized && normalizer != nullptr) {
      std::string content = t.content;
      normalizer->Normalize(&content);
      normalized_.Add(content, index);
    } else if (t.normalized) {
      normalized_.Add(t.content, index);
    } else {
      raw_.Add(t.content, index);
    }
    tokens_.push_back(std::move(t));
  }
}

void AddedVocabulary::Split(std::string_view text, bool normalized_set,
                            std::vector<Segment>* out) const {
  const Matcher& m = normalized_set ? normalized_ : raw_;
  size_t start_offset = 0;  // end of the previous emitted match
  if (!m.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!m.MayStartWith(static_cast<unsigned char>(text[pos]))) {
        ++pos;
        continue;
      }
      int token = -1;
      size_t len = m.LongestAt(text, pos, &token);
      if (len == 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + len;
      pos = stop;  // the search resumes after the raw match, as Aho-Corasick's find_iter does
      if (start < start_offset) continue;  // overlaps whitespace an rstrip already took
      const AddedToken& t = tokens_[token];
      if (t.single_word) {
        bool start_ok = start == 0 || !IsWordChar(LastChar(text.substr(0, start)));
        bool stop_ok = true;
        if (stop < text.size()) {
          size_t i = stop;
          stop_ok = !IsWordChar(unicode::DecodeUtf8(text, &i));
        }
        if (!start_ok || !stop_ok) continue;
      }
      if (t.lstrip) {
        size_t s = start;
        while (s > start_offset) {
          size_t c = s - 1;
          while (c > 0 && (static_cast<unsigned char>(text[c]) & 0xC0) == 0x80) --c;
          size_t i = c;
          if (!unicode::IsWhitespace(unicode::DecodeUtf8(text, &i))) break;
          s = c;
        }
        start = s;
      }
      if (t.rstrip) {
        while (stop < text.size()) {
          size_t i = stop;
          if (!unicode::IsWhitespace(unicode::DecodeUtf8(text, &i))) break;
          stop = i;
        }
      }
      if (start > start_offset) out->push_back({start_offset, start, -1});
      out->push_back({start, stop, token});
      start_offset = stop;
    }
  }
  if (start_offset < text.size()) out->push_back({start_offset, text.size(), -1});
}

}  // namespace qeff::tokenizer
