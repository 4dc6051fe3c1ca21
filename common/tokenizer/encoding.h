// The result of Tokenizer::Encode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qeff::tokenizer {

struct Encoding {
  std::vector<int32_t> ids;
  // The vocabulary string of each id (added tokens: their content).
  std::vector<std::string> tokens;
};

}  // namespace qeff::tokenizer
