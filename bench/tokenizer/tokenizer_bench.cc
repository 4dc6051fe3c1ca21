// qeff-tokenizer-bench
//   corpus FIXTURES_DIR OUT.jsonl [MB]   write the deterministic mixed-text corpus, one
//                                        {"text": ...} document per line (default 4 MB)
//   bench TOKENIZER_DIR CORPUS.jsonl [IDS_OUT]
//                                        encode every document once (warm-up) then time a second
//                                        pass on one thread; prints a JSON line with MB/s and
//                                        tokens/s; IDS_OUT gets one JSON id list per document
//   tokenize TOKENIZER_DIR CASES.jsonl   exactly `qeffctl tokenize --jsonl` (for diffing against
//                                        `node reference.js tokenize` on new texts)
// The same corpus and the same two-pass protocol are used by reference.js (npm `tokenizers`).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "clients/qeffctl/tokenize_command.h"
#include "common/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

// mulberry32, so the corpus is identical on every machine and run.
struct Rng {
  uint32_t s;
  uint32_t Next() {
    uint32_t t = (s += 0x6D2B79F5u);
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + ((t ^ (t >> 7)) * (t | 61u));
    return t ^ (t >> 14);
  }
  size_t Below(size_t n) { return n == 0 ? 0 : Next() % n; }
};

int WriteCorpus(const std::filesystem::path& fixtures, const std::string& out_path, double mb) {
  // Source material: every distinct fixture text (English, code, 15 scripts, emoji, numbers...)
  // and the words they contain, recombined into documents of 0.5-4 KB.
  std::set<std::string> texts;
  for (const auto& entry : std::filesystem::directory_iterator(fixtures)) {
    std::ifstream in(entry.path() / "cases.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("text") && j["text"].is_string()) texts.insert(j["text"].get<std::string>());
    }
  }
  std::vector<std::string> pool(texts.begin(), texts.end());
  std::vector<std::string> words;
  for (const auto& t : pool) {
    size_t i = 0;
    while (i < t.size()) {
      size_t j = t.find_first_of(" \n\t", i);
      if (j == std::string::npos) j = t.size();
      if (j > i && j - i < 40) words.push_back(t.substr(i, j - i));
      i = j + 1;
    }
  }
  if (pool.empty() || words.empty()) {
    std::cerr << "no fixture texts under " << fixtures << "\n";
    return 1;
  }
  const char* seps[] = {" ", " ", " ", " ", ", ", ". ", "\n", " - ", "  ", "\t"};
  Rng rng{20240611u};
  std::ofstream out(out_path, std::ios::binary);
  size_t total = 0, limit = static_cast<size_t>(mb * 1024 * 1024);
  while (total < limit) {
    std::string doc;
    size_t target = 512 + rng.Below(3584);
    while (doc.size() < target) {
      if (rng.Below(4) == 0) {
        doc += pool[rng.Below(pool.size())];
        doc += "\n\n";
      } else {
        size_t n = 5 + rng.Below(40);
        for (size_t k = 0; k < n; ++k) {
          doc += words[rng.Below(words.size())];
          doc += seps[rng.Below(sizeof(seps) / sizeof(seps[0]))];
        }
      }
    }
    total += doc.size();
    out << nlohmann::json{{"text", doc}}.dump() << "\n";
  }
  return 0;
}

int Bench(const std::string& dir, const std::string& corpus, const std::string& ids_out) {
  auto t0 = Clock::now();
  auto tok = qeff::tokenizer::Tokenizer::FromDirectory(dir);
  if (!tok.ok()) {
    std::cerr << tok.status() << "\n";
    return 1;
  }
  double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<std::string> docs;
  std::ifstream in(corpus);
  std::string line;
  size_t bytes = 0;
  while (std::getline(in, line)) {
    docs.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
    bytes += docs.back().size();
  }
  std::vector<std::vector<int32_t>> ids(docs.size());
  size_t tokens = 0;
  double seconds[2] = {0, 0};
  for (int pass = 0; pass < 2; ++pass) {
    tokens = 0;
    auto start = Clock::now();
    for (size_t i = 0; i < docs.size(); ++i) {
      auto enc = (*tok)->Encode(docs[i], true);
      if (!enc.ok()) {
        std::cerr << enc.status() << "\n";
        return 1;
      }
      tokens += enc->ids.size();
      if (pass == 1) ids[i] = std::move(enc->ids);
    }
    seconds[pass] = std::chrono::duration<double>(Clock::now() - start).count();
  }
  if (!ids_out.empty()) {
    std::ofstream out(ids_out);
    for (const auto& v : ids) out << nlohmann::json(v).dump() << "\n";
  }
  nlohmann::ordered_json r;
  r["impl"] = "qeff";
  r["tokenizer"] = std::filesystem::path(dir).filename().string();
  r["docs"] = docs.size();
  r["bytes"] = bytes;
  r["tokens"] = tokens;
  r["load_s"] = load_s;
  r["cold_s"] = seconds[0];
  r["seconds"] = seconds[1];
  r["mb_per_s"] = bytes / 1e6 / seconds[1];
  r["tokens_per_s"] = tokens / seconds[1];
  std::cout << r.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "corpus" && argc >= 4) return WriteCorpus(argv[2], argv[3], argc > 4 ? std::stod(argv[4]) : 4.0);
  if (mode == "tokenize" && argc >= 4) return RunTokenizeCommand(argv[2], argv[3], "", std::cout, std::cerr);
  if (mode == "bench" && argc >= 4) return Bench(argv[2], argv[3], argc > 4 ? argv[4] : "");
  std::cerr << "usage: qeff-tokenizer-bench corpus FIXTURES_DIR OUT.jsonl [MB]\n"
               "       qeff-tokenizer-bench bench TOKENIZER_DIR CORPUS.jsonl [IDS_OUT]\n"
               "       qeff-tokenizer-bench tokenize TOKENIZER_DIR CASES.jsonl\n";
  return 2;
}
