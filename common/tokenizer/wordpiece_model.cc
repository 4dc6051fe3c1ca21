#include "common/tokenizer/wordpiece_model.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_helpers.h"
#include "common/tokenizer/unicode.h"

namespace qeff::tokenizer {
namespace {

absl::Status MissingUnk(std::string_view component, const std::string& unk) {
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer ", std::string(component), ": unk_token \"", unk, "\" is not in the vocab"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<WordPieceModel>> WordPieceModel::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kComponent = "model WordPiece";
  if (!j.contains("vocab")) return internal::ComponentError(kComponent, "missing \"vocab\"");
  auto vocab = Vocab::FromJson(j["vocab"], kComponent);
  if (!vocab.ok()) return vocab.status();
  auto unk = internal::GetString(j, "unk_token", "[UNK]", kComponent);
  auto prefix = internal::GetString(j, "continuing_subword_prefix", "##", kComponent);
  auto max_chars = internal::GetInt(j, "max_input_chars_per_word", 100, kComponent);
  for (const absl::Status& s : {unk.status(), prefix.status(), max_chars.status()}) {
    if (!s.ok()) return s;
  }
  if (*max_chars < 0) return internal::ComponentError(kComponent, "max_input_chars_per_word is negative");
  auto m = std::make_unique<WordPieceModel>();
  m->vocab_ = std::move(*vocab);
  m->unk_token_ = *unk;
  m->prefix_ = *prefix;
  m->max_chars_ = static_cast<size_t>(*max_chars);
  return m;
}

absl::Status WordPieceModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  auto unk = [&]() -> absl::Status {
    auto id = vocab_.Find(unk_token_);
    if (!id) return MissingUnk("model WordPiece", unk_token_);
    ids->push_back(*id);
    return absl::OkStatus();
  };
  if (unicode::CountChars(word) > max_chars_) return unk();
  size_t first = ids->size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    bool found = false;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate = prefix_;
      candidate.append(word.substr(start, end - start));
      if (auto id = vocab_.Find(candidate)) {
        ids->push_back(*id);
        found = true;
        break;
      }
      // Drop the last character of the candidate.
      size_t back = end - 1;
      while (back > start && (static_cast<unsigned char>(word[back]) & 0xC0) == 0x80) --back;
      end = back;
    }
    if (!found) {
      ids->resize(first);
      return unk();
    }
    start = end;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WordLevelModel>> WordLevelModel::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kComponent = "model WordLevel";
  if (!j.contains("vocab")) return internal::ComponentError(kComponent, "missing \"vocab\"");
  auto vocab = Vocab::FromJson(j["vocab"], kComponent);
  if (!vocab.ok()) return vocab.status();
  auto unk = internal::GetString(j, "unk_token", "<unk>", kComponent);
  if (!unk.ok()) return unk.status();
  auto m = std::make_unique<WordLevelModel>();
  m->vocab_ = std::move(*vocab);
  m->unk_token_ = *unk;
  return m;
}

absl::Status WordLevelModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (auto id = vocab_.Find(word)) {
    ids->push_back(*id);
    return absl::OkStatus();
  }
  auto unk = vocab_.Find(unk_token_);
  if (!unk) return MissingUnk("model WordLevel", unk_token_);
  ids->push_back(*unk);
  return absl::OkStatus();
}

}  // namespace qeff::tokenizer
