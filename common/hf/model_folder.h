// A HF model folder: config.json, safetensors weights (single file or sharded through
// model.safetensors.index.json, all mmapped) and tokenizer files.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/hf/hub.h"
#include "common/hf/safetensors.h"
#include "common/util/hash.h"

namespace qeff::hf {

class ModelFolder {
 public:
  // Reads config.json and maps and validates every weight file. A folder without weight files
  // opens (so the architecture can be checked first); tensor lookups then fail.
  // Missing folder/config.json: NOT_FOUND. Bad JSON, bad safetensors, bad index: INVALID_ARGUMENT.
  // Every file it reads (config, index, shards, tokenizer files) must really be inside the folder
  // or, for a HF hub snapshot, in its repository's blobs/ (where the hub's symlinks lead); a
  // symlink anywhere else (tokenizer.json -> /etc/passwd) is PERMISSION_DENIED.
  static absl::StatusOr<ModelFolder> Open(const std::filesystem::path& dir);

  ModelFolder(ModelFolder&&) = default;
  ModelFolder& operator=(ModelFolder&&) = default;

  const std::filesystem::path& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // config["architectures"][0], or "" when absent.
  std::string architecture() const;

  // Weight files in a fixed order (the index's shard order, sorted).
  std::vector<std::filesystem::path> WeightFiles() const;
  // Tokenizer and generation files that exist in the folder (tokenizer.json, vocab.json, ...),
  // checked as above when the folder was opened.
  std::vector<std::filesystem::path> TokenizerFiles() const;

  bool HasTensor(const std::string& name) const;
  // The tensor, or INVALID_ARGUMENT naming it (and the folder) when it is missing.
  absl::StatusOr<TensorView> Tensor(const std::string& name) const;
  // Every tensor name over all shards, sorted.
  std::vector<std::string> TensorNames() const;

  // Feeds config.json, every weight file (content) and the tokenizer files into `hasher`.
  absl::Status HashInputs(util::Hasher& hasher) const;

 private:
  ModelFolder() = default;

  std::filesystem::path dir_;
  nlohmann::json config_;
  std::vector<std::filesystem::path> tokenizer_files_;
  // unique_ptr: views point into mappings that must not move with the vector.
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  // name -> index into files_.
  std::map<std::string, size_t> index_;
};

// Tokenizer-related file names a folder may carry (copied alongside exports).
const std::vector<std::string>& TokenizerFileNames();

}  // namespace qeff::hf
