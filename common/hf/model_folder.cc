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

// The real paths a model folder may read: the folder itself and, for a HF hub snapshot
// (<repo>/snapshots/<commit>), the repository's blob store that its files link to.
struct Confinement {
  fs::path dir, blobs;
};

bool IsWithin(const fs::path& p, const fs::path& root) {
  if (root.empty()) return false;
  auto pi = p.begin();
  for (auto ri = root.begin(); ri != root.end(); ++ri, ++pi) {
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

// `dir`/`name` if it is a regular file whose real path stays confined; empty when absent.
absl::StatusOr<fs::path> ConfinedFile(const Confinement& c, const std::string& name) {
  const fs::path p = c.dir / name;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(p, ec))) return fs::path();
  const fs::path real = fs::canonical(p, ec);
  if (ec || !fs::is_regular_file(real, ec)) {
    if (fs::is_symlink(fs::symlink_status(p, ec))) {
      return absl::PermissionDeniedError(
          absl::StrCat(name, " in the model folder is a symlink that does not lead to a file inside it"));
    }
    return fs::path();
  }
  if (!IsWithin(real, c.dir) && !IsWithin(real, c.blobs)) {
    return absl::PermissionDeniedError(absl::StrCat(
        name, " in the model folder links outside it; only the folder (and a HF cache snapshot's blob store) is read"));
  }
  return real;
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
  Confinement confined;
  confined.dir = fs::canonical(dir, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " cannot be resolved"));
  if (confined.dir.parent_path().filename() == "snapshots") {
    confined.blobs = confined.dir.parent_path().parent_path() / "blobs";
  }
  QEFF_ASSIGN_OR_RETURN(const fs::path config_path, ConfinedFile(confined, "config.json"));
  if (config_path.empty()) {
    return absl::NotFoundError(absl::StrCat(dir.string(), " has no config.json: not a HF model folder"));
  }
  QEFF_ASSIGN_OR_RETURN(f.config_, ReadJson(config_path, kMaxConfigBytes));
  for (const auto& name : TokenizerFileNames()) {
    QEFF_ASSIGN_OR_RETURN(fs::path p, ConfinedFile(confined, name));
    if (!p.empty()) f.tokenizer_files_.push_back(dir / name);
  }

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

  QEFF_ASSIGN_OR_RETURN(const fs::path index_real, ConfinedFile(confined, kIndexName));
  const fs::path index_path = dir / kIndexName;
  if (!index_real.empty()) {
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
      QEFF_ASSIGN_OR_RETURN(const fs::path real, ConfinedFile(confined, shard));
      const fs::path p = dir / shard;
      if (real.empty()) {
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
  } else {
    QEFF_ASSIGN_OR_RETURN(const fs::path single, ConfinedFile(confined, kSingleName));
    if (!single.empty()) QEFF_RETURN_IF_ERROR(add_file(dir / kSingleName).status());
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

std::vector<fs::path> ModelFolder::TokenizerFiles() const { return tokenizer_files_; }

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
