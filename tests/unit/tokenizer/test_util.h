// Shared helpers for the tokenizer tests: fixture paths and cases.jsonl reading.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeff::tokenizer::testing {

inline std::filesystem::path FixtureDir(const std::string& name) {
  return std::filesystem::path(QEFF_SOURCE_DIR) / "tests/fixtures/tokenizers" / name;
}

inline std::vector<nlohmann::json> ReadCases(const std::filesystem::path& path) {
  std::vector<nlohmann::json> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) cases.push_back(nlohmann::json::parse(line));
  }
  return cases;
}

inline const std::vector<std::string>& FixtureNames() {
  static const std::vector<std::string> names = {"gpt2", "bert-base-uncased", "mistral", "qwen2.5", "gemma2", "llama3", "qwen3", "albert", "unigram-synthetic"};
  return names;
}

}  // namespace qeff::tokenizer::testing
