// libFuzzer: arbitrary bytes as tokenizer.json. Loading must fail cleanly or give a tokenizer
// that encodes and decodes anything without crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto tok = qeff::tokenizer::Tokenizer::FromJson(input);
  if (!tok.ok()) return 0;
  for (std::string_view text : {std::string_view("Hello world <s> \xE2\x96\x81 12 caf\xC3\xA9 \xF0\x9F\x98\x80"),
                                std::string_view(""), input.substr(0, 256)}) {
    for (bool special : {false, true}) {
      auto enc = (*tok)->Encode(text, special);
      if (!enc.ok()) continue;
      (*tok)->Decode(enc->ids, false);
      (*tok)->Decode(enc->ids, true);
    }
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 4 <= size && ids.size() < 64; i += 4) {
    ids.push_back(static_cast<int32_t>(data[i] | data[i + 1] << 8 | data[i + 2] << 16 | uint32_t(data[i + 3]) << 24) % 70000);
  }
  (*tok)->Decode(ids, false);
  return 0;
}
