// A tokenizer.json for the reranker fixtures' made-up vocabularies, so the text paths (text pairs,
// /v1/rerank) can be checked against HF's numbers: a WordLevel model over whitespace-split words
// in which id i is the word "t<i>", except the fixture's special ids (the first and last id of a
// pair are [CLS] / [SEP] or <s> / </s>, pad_token_id is [PAD] / <pad>), with BertProcessing
// ([CLS] a [SEP] b [SEP], token types 0 / 1) or, for RoBERTa-family configs, RobertaProcessing
// (<s> a </s></s> b </s>). So FixtureText(query_ids) paired with FixtureText(document_ids)
// tokenizes to exactly the fixture's input_ids and token_type_ids. Header-only (nlohmann only);
// used by the pipeline unit test and the integration tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeff::testing {

// "t<id> t<id> ..." (special ids as their token strings, which the tokenizer matches as added tokens).
inline std::string FixtureText(const std::vector<int64_t>& ids, const std::map<int64_t, std::string>& specials = {}) {
  std::string text;
  for (int64_t id : ids) {
    if (!text.empty()) text += ' ';
    auto it = specials.find(id);
    text += it != specials.end() ? it->second : "t" + std::to_string(id);
  }
  return text;
}

// The tokenizer.json for a reranker fixture (its config.json and reference.json).
inline nlohmann::json FixtureTokenizer(const nlohmann::json& config, const nlohmann::json& reference) {
  const bool roberta = config["architectures"][0].get<std::string>().find("Roberta") != std::string::npos;
  const auto& first = reference["inputs"][0]["input_ids"];
  const int64_t cls = first.front().get<int64_t>(), sep = first.back().get<int64_t>();
  const int64_t pad = config.value("pad_token_id", 0);
  const std::map<int64_t, std::string> specials = {{cls, roberta ? "<s>" : "[CLS]"},
                                                   {sep, roberta ? "</s>" : "[SEP]"},
                                                   {pad, roberta ? "<pad>" : "[PAD]"}};
  nlohmann::json vocab = nlohmann::json::object();
  const int64_t size = config["vocab_size"].get<int64_t>();
  for (int64_t i = 0; i < size; ++i) {
    auto it = specials.find(i);
    vocab[it != specials.end() ? it->second : "t" + std::to_string(i)] = i;
  }
  nlohmann::json added = nlohmann::json::array();
  for (const auto& [id, content] : specials) {
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  nlohmann::json post = {{"type", roberta ? "RobertaProcessing" : "BertProcessing"},
                         {"sep", {specials.at(sep), sep}},
                         {"cls", {specials.at(cls), cls}}};
  if (roberta) {
    post["trim_offsets"] = true;
    post["add_prefix_space"] = false;
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
          {"post_processor", post},
          {"decoder", nullptr},
          {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", specials.at(pad)}}}};
}

}  // namespace qeff::testing
