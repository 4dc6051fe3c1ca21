#include "tests/integration/hf_reference.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace qeff::testing {

HfReference LoadHfReference(const std::filesystem::path& fixture_dir) {
  std::ifstream in(fixture_dir / "reference.json");
  const nlohmann::json r = nlohmann::json::parse(in);
  HfReference ref;
  for (const auto& i : r["inputs"]) {
    ref.prompts.push_back(i["input_ids"].get<std::vector<int64_t>>());
    ref.texts.push_back(i.value("text", ""));
  }
  for (const auto& g : r["outputs"]["generation"]) ref.new_tokens.push_back(g["new_tokens"].get<std::vector<int64_t>>());
  return ref;
}

std::string JoinIds(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace qeff::testing
