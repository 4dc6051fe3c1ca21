// Decoders of tokenizer.json ("decoder"): ByteLevel, WordPiece, Metaspace, ByteFallback, Fuse,
// Strip, Replace, BPEDecoder and Sequence. Each rewrites the list of token strings (the Rust
// `decode_chain`); Tokenizer::Decode joins the result.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace qeff::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& j);
// The GPT-2 byte-level decoder (for the vocab.json + merges.txt format).
std::unique_ptr<Decoder> MakeByteLevelDecoder();

}  // namespace qeff::tokenizer
