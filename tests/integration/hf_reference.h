// The parts of an HF fixture's reference.json the integration tests drive qeffctl with: the
// prompts (ids and text) and HF's greedy new tokens.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qeff::testing {

struct HfReference {
  std::vector<std::vector<int64_t>> prompts;     // inputs[i].input_ids
  std::vector<std::string> texts;                // inputs[i].text
  std::vector<std::vector<int64_t>> new_tokens;  // outputs.generation[i].new_tokens
};

HfReference LoadHfReference(const std::filesystem::path& fixture_dir);

// "1,2,3", as qeffctl --input-ids takes them.
std::string JoinIds(const std::vector<int64_t>& ids);

}  // namespace qeff::testing
