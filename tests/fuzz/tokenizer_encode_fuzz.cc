// libFuzzer: random bytes (invalid UTF-8 included) through the fixture tokenizers: encode, decode,
// decode of arbitrary ids, and the streaming decoder, whose output must equal Decode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<qeff::tokenizer::Tokenizer>>& Tokenizers() {
  static auto* all = [] {
    auto* v = new std::vector<std::unique_ptr<qeff::tokenizer::Tokenizer>>();
    for (const char* name : {"gpt2", "bert-base-uncased", "mistral", "qwen2.5", "gemma2"}) {
      auto tok = qeff::tokenizer::Tokenizer::FromDirectory(std::string(QEFF_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + name);
      if (!tok.ok()) abort();
      v->push_back(std::move(*tok));
    }
    return v;
  }();
  return *all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto& all = Tokenizers();
  const auto& tok = *all[data[0] % all.size()];
  bool special = data[0] & 0x80;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto enc = tok.Encode(text, special);
  if (!enc.ok()) abort();
  if (enc->ids.size() != enc->tokens.size()) abort();
  for (bool skip : {false, true}) {
    std::string whole = tok.Decode(enc->ids, skip);
    qeff::tokenizer::StreamDecoder stream(tok, skip);
    std::string streamed;
    for (int32_t id : enc->ids) streamed += stream.Push(id);
    streamed += stream.Flush();
    if (streamed != whole) abort();
  }
  // The input bytes as ids, in and out of range.
  std::vector<int32_t> ids;
  for (size_t i = 1; i + 2 <= size; i += 2) ids.push_back(static_cast<int32_t>(data[i] | data[i + 1] << 8) * 5 - 1000);
  tok.Decode(ids, false);
  qeff::tokenizer::StreamDecoder stream(tok, true);
  for (int32_t id : ids) stream.Push(id);
  stream.Flush();
  return 0;
}
