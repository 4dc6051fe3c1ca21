#include "common/tokenizer/stream_decoder.h"

#include "common/tokenizer/tokenizer.h"

namespace qeff::tokenizer {
namespace {

bool EndsWithReplacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::Push(int32_t id) {
  window_.push_back(id);
  std::string text = tokenizer_.Decode(window_, skip_special_);
  // Hold back text that may still change: a trailing U+FFFD is often an incomplete character.
  if (text.size() <= prefix_text_.size() || EndsWithReplacement(text) ||
      text.compare(0, prefix_text_.size(), prefix_text_) != 0) {
    return "";
  }
  std::string fresh = text.substr(prefix_text_.size());
  // The ids just emitted become the context for the next step: decoders treat the first token
  // specially (Strip, Metaspace, WordPiece), so text is always taken as a difference of decodes.
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(prefix_ids_));
  prefix_ids_ = window_.size();
  prefix_text_ = tokenizer_.Decode(window_, skip_special_);
  return fresh;
}

std::string StreamDecoder::Flush() {
  std::string rest;
  if (window_.size() > prefix_ids_) {
    std::string text = tokenizer_.Decode(window_, skip_special_);
    if (text.size() > prefix_text_.size() && text.compare(0, prefix_text_.size(), prefix_text_) == 0) {
      rest = text.substr(prefix_text_.size());
    }
  }
  window_.clear();
  prefix_ids_ = 0;
  prefix_text_.clear();
  return rest;
}

}  // namespace qeff::tokenizer
