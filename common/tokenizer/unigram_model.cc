#include "common/tokenizer/unigram_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

constexpr std::string_view kComponent = "model Unigram";
// SentencePiece's penalty for the unknown piece, below the lowest piece score.
constexpr double kUnkPenalty = 10.0;

// Viterbi state per byte position (reused per thread: no allocation per word in steady state).
// Words are shorter than kMaxEncodeBytes, so a 32-bit start suffices.
constexpr uint32_t kUnreached = 0xFFFFFFFFu;
struct BestNode {
  double score = 0;
  uint32_t start = kUnreached;
  int32_t id = 0;
};
// Scratch kept per thread up to this many entries; larger buffers are released after use.
constexpr size_t kKeepScratch = size_t{1} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<UnigramModel>> UnigramModel::Create(std::vector<std::pair<std::string, double>> vocab,
                                                                   std::optional<int32_t> unk_id, bool byte_fallback) {
  if (vocab.size() > static_cast<size_t>(kMaxTokenId) + 1) {
    return internal::ComponentError(kComponent, absl::StrCat("vocab of ", vocab.size(), " pieces is too large"));
  }
  if (unk_id) {
    if (vocab.empty()) return internal::ComponentError(kComponent, "unk_id is set but the vocab is empty");
    if (*unk_id < 0 || static_cast<size_t>(*unk_id) >= vocab.size()) {
      return internal::ComponentError(kComponent, absl::StrCat("unk_id ", *unk_id, " is not in the vocab of ", vocab.size(), " pieces"));
    }
  }
  std::unique_ptr<UnigramModel> m(new UnigramModel());
  m->pieces_.reserve(vocab.size());
  m->scores_.reserve(vocab.size());
  m->ids_.reserve(vocab.size());
  double min_score = std::numeric_limits<double>::infinity();
  for (size_t id = 0; id < vocab.size(); ++id) {
    auto& [piece, score] = vocab[id];
    if (!unicode::IsValidUtf8(piece)) {
      return internal::ComponentError(kComponent, absl::StrCat("piece ", id, " is not valid UTF-8"));
    }
    if (!std::isfinite(score)) return internal::ComponentError(kComponent, absl::StrCat("score of piece ", id, " is not finite"));
    min_score = std::min(min_score, score);
    m->ids_[piece] = static_cast<int32_t>(id);  // a repeated piece: the last id wins
    m->pieces_.push_back(std::move(piece));
    m->scores_.push_back(score);
  }
  m->unk_id_ = unk_id;
  m->byte_fallback_ = byte_fallback;
  m->unk_score_ = min_score - kUnkPenalty;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = m->ids_.find(std::string_view(name));
    m->byte_ids_[b] = it == m->ids_.end() ? -1 : it->second;
  }
  m->BuildTrie();
  return m;
}

absl::StatusOr<std::unique_ptr<UnigramModel>> UnigramModel::FromJson(const nlohmann::json& j) {
  if (!j.contains("vocab") || !j["vocab"].is_array()) {
    return internal::ComponentError(kComponent, "\"vocab\" must be a list of [piece, score]");
  }
  const nlohmann::json& v = j["vocab"];
  std::vector<std::pair<std::string, double>> vocab;
  vocab.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const nlohmann::json& e = v[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
      return internal::ComponentError(kComponent, absl::StrCat("vocab entry ", i, " must be [piece, score]"));
    }
    vocab.emplace_back(e[0].get<std::string>(), e[1].get<double>());
  }
  std::optional<int32_t> unk_id;
  if (internal::Has(j, "unk_id")) {
    const nlohmann::json& u = j["unk_id"];
    if (!u.is_number_integer()) return internal::ComponentError(kComponent, "\"unk_id\" must be an integer or null");
    int64_t id = u.get<int64_t>();
    if (id < 0 || id > kMaxTokenId) return internal::ComponentError(kComponent, absl::StrCat("unk_id ", id, " out of range"));
    unk_id = static_cast<int32_t>(id);
  }
  auto byte_fallback = internal::GetBool(j, "byte_fallback", false, kComponent);
  if (!byte_fallback.ok()) return byte_fallback.status();
  return Create(std::move(vocab), unk_id, *byte_fallback);
}

void UnigramModel::BuildTrie() {
  // Distinct non-empty pieces in byte order (std::string compares bytes as unsigned char). An
  // empty piece can never match, as in the reference.
  std::vector<std::string_view> keys;
  keys.reserve(ids_.size());
  for (const auto& [piece, id] : ids_) {
    if (!piece.empty()) keys.push_back(piece);
  }
  std::sort(keys.begin(), keys.end());
  trie_.clear();
  trie_.emplace_back();
  struct Range {
    int32_t node;
    size_t lo, hi, depth;
  };
  std::vector<Range> queue;
  queue.push_back({0, 0, keys.size(), 0});
  // Breadth-first: every node's children are appended together, so they are contiguous.
  for (size_t q = 0; q < queue.size(); ++q) {
    Range r = queue[q];
    if (r.lo < r.hi && keys[r.lo].size() == r.depth) {
      trie_[r.node].value = ids_.find(keys[r.lo])->second;
      ++r.lo;
    }
    trie_[r.node].first_child = static_cast<int32_t>(trie_.size());
    uint16_t children = 0;
    for (size_t i = r.lo; i < r.hi;) {
      unsigned char label = static_cast<unsigned char>(keys[i][r.depth]);
      size_t j = i + 1;
      while (j < r.hi && static_cast<unsigned char>(keys[j][r.depth]) == label) ++j;
      TrieNode child;
      child.label = label;
      queue.push_back({static_cast<int32_t>(trie_.size()), i, j, r.depth + 1});
      trie_.push_back(child);
      ++children;
      i = j;
    }
    trie_[r.node].num_children = children;
  }
}

absl::Status UnigramModel::Viterbi(std::string_view word, std::vector<Span>* spans) const {
  const size_t n = word.size();
  thread_local std::vector<BestNode> best;
  best.assign(n + 1, BestNode{});
  best[0].start = 0;
  struct Release {
    ~Release() {
      if (best.capacity() > kKeepScratch) std::vector<BestNode>().swap(best);
    }
  } release;
  for (size_t start = 0; start < n;) {
    const double base = best[start].score;
    const size_t char_len = std::min(unicode::Utf8Len(static_cast<unsigned char>(word[start])), n - start);
    bool has_single = false;
    // Common-prefix search from `start`.
    const TrieNode* node = &trie_[0];
    for (size_t pos = start; pos < n && node->num_children > 0; ++pos) {
      const unsigned char c = static_cast<unsigned char>(word[pos]);
      const TrieNode* lo = &trie_[node->first_child];
      const TrieNode* hi = lo + node->num_children;
      const TrieNode* it = std::lower_bound(lo, hi, c, [](const TrieNode& t, unsigned char v) { return t.label < v; });
      if (it == hi || it->label != c) break;
      node = it;
      if (node->value < 0) continue;
      const size_t end = pos + 1;
      BestNode& target = best[end];
      const double score = base + scores_[node->value];
      if (target.start == kUnreached || score > target.score) {
        target.score = score;
        target.start = static_cast<uint32_t>(start);
        target.id = node->value;
      }
      if (end - start == char_len) has_single = true;
    }
    if (!has_single) {
      if (!unk_id_) {
        return internal::ComponentError(kComponent, "the text needs the unknown piece but unk_id is null");
      }
      BestNode& target = best[start + char_len];
      const double score = base + unk_score_;
      if (target.start == kUnreached || score > target.score) {
        target.score = score;
        target.start = static_cast<uint32_t>(start);
        target.id = *unk_id_;
      }
    }
    start += char_len;
  }
  // Walk back, fusing runs of unknown pieces.
  const size_t first = spans->size();
  for (size_t end = n; end > 0;) {
    const BestNode& node = best[end];
    const size_t start = static_cast<size_t>(node.start);
    const bool unknown = unk_id_ && node.id == *unk_id_;
    if (unknown && spans->size() > first && spans->back().unknown) {
      spans->back().begin = start;
    } else {
      spans->push_back({start, end, node.id, unknown});
    }
    end = start;
  }
  std::reverse(spans->begin() + static_cast<std::ptrdiff_t>(first), spans->end());
  return absl::OkStatus();
}

absl::Status UnigramModel::Emit(std::string_view word, const std::vector<Span>& spans, std::vector<int32_t>* ids,
                                std::vector<std::string>* tokens) const {
  for (const Span& s : spans) {
    std::string_view text = word.substr(s.begin, s.end - s.begin);
    if (!s.unknown) {
      ids->push_back(s.id);
      if (tokens != nullptr) tokens->emplace_back(text);
      continue;
    }
    // The reference looks the (fused) text up again: it may be a piece after all.
    if (auto it = ids_.find(text); it != ids_.end()) {
      ids->push_back(it->second);
      if (tokens != nullptr) tokens->emplace_back(text);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : text) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : text) {
          ids->push_back(byte_ids_[b]);
          if (tokens != nullptr) tokens->push_back(pieces_[byte_ids_[b]]);
        }
        continue;
      }
    }
    ids->push_back(*unk_id_);  // set: Viterbi only marks unknown spans when it is
    if (tokens != nullptr) tokens->emplace_back(text);
  }
  return absl::OkStatus();
}

absl::Status UnigramModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  return TokenizeWithTokens(word, ids, nullptr);
}

absl::Status UnigramModel::TokenizeWithTokens(std::string_view word, std::vector<int32_t>* ids,
                                              std::vector<std::string>* tokens) const {
  if (word.empty()) return absl::OkStatus();
  if (word.size() >= kUnreached) return internal::ComponentError(kComponent, "word too long");
  thread_local std::vector<Span> spans;
  spans.clear();
  absl::Status s = Viterbi(word, &spans);
  if (s.ok()) s = Emit(word, spans, ids, tokens);
  if (spans.capacity() > kKeepScratch) std::vector<Span>().swap(spans);
  return s;
}

std::optional<int32_t> UnigramModel::TokenToId(std::string_view token) const {
  auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string* UnigramModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return nullptr;
  return &pieces_[id];
}

}  // namespace qeff::tokenizer
