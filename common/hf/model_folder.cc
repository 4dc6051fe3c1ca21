#include "common/hf/model_folder.h"

#include <algorithm>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"

namespace qeff::hf {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint64_t kMaxIndexBytes = 64ull << 20;
constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr char kSingleName[] = "model.safetensors";

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shard names from an index must be plain file names inside the folder.
bool PlainFileName(const std::string& s) {
  return !s.empty() && s.size() < 256 && s[0] != '.' && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

absl::StatusOr<json> ReadJson(const fs::path& path, uint64_t max_bytes) {
  QEFF_ASSIGN_OR_RETURN(std::string text, util::ReadFile(path, max_bytes));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  return j;
}

}  // namespace

const std::vector<std::string>& TokenizerFileNames() {
  static const std::vector<std::string> kNames = {
      "tokenizer.json",  "tokenizer_config.json", "vocab.json",     "merges.txt",   "special_tokens_map.json",
      "added_tokens.json", "tokenizer.model",     "spiece.model",   "vocab.txt",    "generation_config.json"};
  return kNames;
}

absl::StatusOr<ModelFolder> ModelFolder::Open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " does not exist or is not a directory"));
  }
  ModelFolder f;
  f.dir_ = dir;
  const fs::path config_path = dir / "config.json";
  if (!IsFile(config_path)) {
    return absl::NotFoundError(absl::StrCat(dir.string(), " has no config.json: not a HF model folder"));
  }
  QEFF_ASSIGN_OR_RETURN(f.config_, ReadJson(config_path, kMaxConfigBytes));

  auto add_file = [&](const fs::path& path) -> absl::StatusOr<size_t> {
    QEFF_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::Open(path));
    f.files_.push_back(std::make_unique<SafetensorsFile>(std::move(st)));
    const size_t idx = f.files_.size() - 1;
    for (const auto& [name, view] : f.files_[idx]->tensors()) {
      auto [it, inserted] = f.index_.emplace(name, idx);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" appears in both ",
                                                       f.files_[it->second]->path().string(), " and ",
                                                       path.string()));
      }
    }
    return idx;
  };

  const fs::path index_path = dir / kIndexName;
  if (IsFile(index_path)) {
    QEFF_ASSIGN_OR_RETURN(json index, ReadJson(index_path, kMaxIndexBytes));
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object() || wm->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path.string(), " has no weight_map object"));
    }
    std::set<std::string> shards;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string() || !PlainFileName(file.get<std::string>())) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path.string(), ": tensor \"", name, "\" maps to an invalid shard file name"));
      }
      shards.insert(file.get<std::string>());
    }
    std::map<std::string, size_t> shard_index;
    for (const auto& shard : shards) {
      const fs::path p = dir / shard;
      if (!IsFile(p)) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path.string(), " names shard ", shard, " which does not exist in ", dir.string()));
      }
      QEFF_ASSIGN_OR_RETURN(shard_index[shard], add_file(p));
    }
    for (const auto& [name, file] : wm->items()) {
      const size_t want = shard_index[file.get<std::string>()];
      auto it = f.index_.find(name);
      if (it == f.index_.end() || it->second != want) {
        return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": tensor \"", name, "\" is not in shard ",
                                                       file.get<std::string>()));
      }
    }
  } else if (IsFile(dir / kSingleName)) {
    QEFF_RETURN_IF_ERROR(add_file(dir / kSingleName).status());
  }
  return f;
}

std::string ModelFolder::architecture() const {
  auto it = config_.find("architectures");
  if (it == config_.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return "";
  return (*it)[0].get<std::string>();
}

std::vector<fs::path> ModelFolder::WeightFiles() const {
  std::vector<fs::path> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

std::vector<fs::path> ModelFolder::TokenizerFiles() const {
  std::vector<fs::path> out;
  for (const auto& name : TokenizerFileNames()) {
    if (IsFile(dir_ / name)) out.push_back(dir_ / name);
  }
  return out;
}

bool ModelFolder::HasTensor(const std::string& name) const { return index_.count(name) > 0; }

absl::StatusOr<TensorView> ModelFolder::Tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    if (files_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(dir_.string(), " has no safetensors weights (need ", kSingleName,
                                                     " or ", kIndexName, "); tensor \"", name, "\" is missing"));
    }
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" is missing from ", dir_.string()));
  }
  return *files_[it->second]->Find(name);
}

std::vector<std::string> ModelFolder::TensorNames() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, idx] : index_) out.push_back(name);
  return out;
}

absl::Status ModelFolder::HashInputs(util::Hasher& hasher) const {
  hasher.Field("config.json");
  QEFF_RETURN_IF_ERROR(hasher.File(dir_ / "config.json"));
  if (IsFile(dir_ / kIndexName)) {
    hasher.Field(kIndexName);
    QEFF_RETURN_IF_ERROR(hasher.File(dir_ / kIndexName));
  }
  for (const auto& f : files_) {
    hasher.Field(f->path().filename().string());
    QEFF_RETURN_IF_ERROR(hasher.File(f->path()));
  }
  for (const auto& p : TokenizerFiles()) {
    hasher.Field(p.filename().string());
    QEFF_RETURN_IF_ERROR(hasher.File(p));
  }
  return absl::OkStatus();
}

}  // namespace qeff::hf
