#include "common/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <queue>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kMaxCachedWordBytes = 256;

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

absl::Status BpeError(std::string_view message) { return internal::ComponentError("model BPE", message); }

// A symbol of the word being merged: a doubly linked list over the initial characters.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue is a max-heap: "less" means lower priority (higher rank, then right).
  bool operator<(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    Vocab vocab, const std::vector<std::pair<std::string_view, std::string_view>>& merges,
    Options options) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->vocab_ = std::move(vocab);
  m->options_ = std::move(options);
  const size_t prefix_len = m->options_.continuing_subword_prefix.size();
  m->merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    auto [a, b] = merges[rank];
    auto a_id = m->vocab_.Find(a);
    auto b_id = m->vocab_.Find(b);
    if (!a_id || !b_id) {
      return BpeError(absl::StrCat("merge ", rank, " (\"", std::string(a), "\" \"", std::string(b), "\") uses a token not in the vocab"));
    }
    // The merged token drops the right part's continuing-subword prefix.
    std::string_view b_rest = b;
    if (prefix_len > 0 && b_rest.substr(0, prefix_len) == m->options_.continuing_subword_prefix) {
      b_rest.remove_prefix(prefix_len);
    }
    joined.assign(a);
    joined.append(b_rest);
    auto new_id = m->vocab_.Find(joined);
    if (!new_id) {
      return BpeError(absl::StrCat("merge ", rank, " gives \"", joined, "\", which is not in the vocab"));
    }
    // Later duplicates overwrite earlier ones, like collecting into the Rust HashMap.
    m->merges_[PairKey(*a_id, *b_id)] = {static_cast<int32_t>(rank), *new_id};
  }
  if (m->options_.unk_token) m->unk_id_ = m->vocab_.Find(*m->options_.unk_token);
  m->plain_chars_ = m->options_.continuing_subword_prefix.empty() && m->options_.end_of_word_suffix.empty();
  for (size_t id = 0; id < m->vocab_.id_bound(); ++id) {
    const std::string* tok = m->vocab_.Token(static_cast<int32_t>(id));
    if (tok == nullptr || tok->empty()) continue;
    size_t i = 0;
    char32_t c = unicode::DecodeUtf8(*tok, &i);
    if (i == tok->size() && unicode::IsValidUtf8(*tok)) {
      // Keep the id the string map holds (the two agree unless ids are duplicated).
      if (auto found = m->vocab_.Find(*tok)) m->char_ids_[c] = *found;
    }
  }
  m->have_all_bytes_ = true;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = m->vocab_.Find(name);
    m->byte_ids_[b] = id ? *id : -1;
  }
  return m;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kComponent = "model BPE";
  if (!j.contains("vocab")) return BpeError("missing \"vocab\"");
  auto vocab = Vocab::FromJson(j["vocab"], kComponent);
  if (!vocab.ok()) return vocab.status();
  Options o;
  if (internal::Has(j, "unk_token")) {
    auto unk = internal::GetString(j, "unk_token", "", kComponent);
    if (!unk.ok()) return unk.status();
    o.unk_token = *unk;
  }
  auto prefix = internal::GetString(j, "continuing_subword_prefix", "", kComponent);
  auto suffix = internal::GetString(j, "end_of_word_suffix", "", kComponent);
  auto fuse = internal::GetBool(j, "fuse_unk", false, kComponent);
  auto fallback = internal::GetBool(j, "byte_fallback", false, kComponent);
  auto ignore = internal::GetBool(j, "ignore_merges", false, kComponent);
  for (const absl::Status& s : {prefix.status(), suffix.status(), fuse.status(), fallback.status(), ignore.status()}) {
    if (!s.ok()) return s;
  }
  o.continuing_subword_prefix = *prefix;
  o.end_of_word_suffix = *suffix;
  o.fuse_unk = *fuse;
  o.byte_fallback = *fallback;
  o.ignore_merges = *ignore;

  std::vector<std::pair<std::string_view, std::string_view>> merges;
  if (internal::Has(j, "merges")) {
    const auto& list = j["merges"];
    if (!list.is_array()) return BpeError("\"merges\" must be a list");
    merges.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& m = list[i];
      if (m.is_string()) {
        // "left right": tokens never contain the separating space in this format.
        const std::string& s = m.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos) return BpeError(absl::StrCat("merge ", i, " \"", s, "\" has no space"));
        std::string_view v(s);
        merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>());
      } else {
        return BpeError(absl::StrCat("merge ", i, " must be \"a b\" or [\"a\", \"b\"]"));
      }
    }
  }
  return Create(std::move(*vocab), merges, std::move(o));
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromVocabAndMerges(std::string_view vocab_json,
                                                                       std::string_view merges_txt) {
  auto j = nlohmann::json::parse(vocab_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return internal::ComponentError("vocab.json", "is not valid JSON");
  auto vocab = Vocab::FromJson(j, "vocab.json");
  if (!vocab.ok()) return vocab.status();
  std::vector<std::pair<std::string_view, std::string_view>> merges;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < merges_txt.size()) {
    size_t end = merges_txt.find('\n', pos);
    if (end == std::string_view::npos) end = merges_txt.size();
    std::string_view line = merges_txt.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos) {
      return internal::ComponentError("merges.txt", absl::StrCat("line ", line_no, " is not \"left right\""));
    }
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return Create(std::move(*vocab), merges, Options{});
}

std::optional<int32_t> BpeModel::SymbolId(std::string_view ch, bool first, bool last) const {
  if (plain_chars_) {
    size_t i = 0;
    auto it = char_ids_.find(unicode::DecodeUtf8(ch, &i));
    if (it == char_ids_.end()) return std::nullopt;
    return it->second;
  }
  std::string s;
  if (!first) s += options_.continuing_subword_prefix;
  s.append(ch);
  if (last) s += options_.end_of_word_suffix;
  return vocab_.Find(s);
}

absl::Status BpeModel::MergeWord(std::string_view w, std::vector<int32_t>* ids) const {
  std::vector<Symbol> symbols;
  symbols.reserve(w.size());
  auto add = [&](int32_t id) {
    int32_t pos = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, pos - 1, -1, false});
    if (pos > 0) symbols[pos - 1].next = pos;
  };
  int32_t pending_unk = -1;  // an unknown run waiting to be emitted (fuse_unk)
  for (size_t i = 0; i < w.size();) {
    size_t len = unicode::Utf8Len(static_cast<unsigned char>(w[i]));
    if (i + len > w.size()) len = w.size() - i;
    std::string_view ch = w.substr(i, len);
    bool first = i == 0;
    i += len;
    bool last = i >= w.size();
    if (auto id = SymbolId(ch, first, last)) {
      if (pending_unk >= 0) {
        add(pending_unk);
        pending_unk = -1;
      }
      add(*id);
      continue;
    }
    if (options_.byte_fallback) {
      // The bytes of the (decorated) symbol, each as <0xNN>, when all of them exist.
      std::string s;
      if (!first) s += options_.continuing_subword_prefix;
      s.append(ch);
      if (last) s += options_.end_of_word_suffix;
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {
        // Rust only flushes a pending unk when a vocab symbol follows; byte tokens go first.
        for (unsigned char b : s) add(byte_ids_[b]);
        continue;
      }
    }
    if (options_.unk_token) {
      if (!unk_id_) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer model BPE: unk_token \"",
                                                       *options_.unk_token, "\" is not in the vocab"));
      }
      if (pending_unk >= 0 && !options_.fuse_unk) add(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token the character is dropped, as in the Rust library.
  }
  if (pending_unk >= 0) add(pending_unk);

  std::priority_queue<Candidate> queue;
  for (size_t p = 0; p + 1 < symbols.size(); ++p) {
    auto it = merges_.find(PairKey(symbols[p].id, symbols[p + 1].id));
    if (it != merges_.end()) queue.push({it->second.rank, static_cast<int32_t>(p), it->second.new_id});
  }
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.removed || cur.next < 0) continue;
    Symbol& right = symbols[cur.next];
    auto it = merges_.find(PairKey(cur.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    right.removed = true;
    cur.next = right.next;
    if (cur.next >= 0) symbols[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto m = merges_.find(PairKey(symbols[cur.prev].id, cur.id));
      if (m != merges_.end()) queue.push({m->second.rank, cur.prev, m->second.new_id});
    }
    if (cur.next >= 0) {
      auto m = merges_.find(PairKey(cur.id, symbols[cur.next].id));
      if (m != merges_.end()) queue.push({m->second.rank, top.pos, m->second.new_id});
    }
  }
  for (const Symbol& s : symbols) {
    if (!s.removed) ids->push_back(s.id);
  }
  return absl::OkStatus();
}

absl::Status BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return absl::OkStatus();
  if (options_.ignore_merges) {
    if (auto id = vocab_.Find(word)) {
      ids->push_back(*id);
      return absl::OkStatus();
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  size_t first = ids->size();
  absl::Status s = MergeWord(word, ids);
  if (!s.ok()) return s;
  if (cacheable) {
    std::vector<int32_t> result(ids->begin() + static_cast<std::ptrdiff_t>(first), ids->end());
    std::unique_lock lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(word, std::move(result));
  }
  return absl::OkStatus();
}

}  // namespace qeff::tokenizer
