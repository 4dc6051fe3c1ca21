#include "common/hf/model_roots.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/hf/hub.h"

namespace qeff::hf {
namespace fs = std::filesystem;

namespace {

bool IsWithin(const fs::path& p, const fs::path& root) {
  auto pi = p.begin();
  for (auto ri = root.begin(); ri != root.end(); ++ri, ++pi) {
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

// The canonical directory `p` names, or empty when it is not an existing directory.
fs::path CanonicalDir(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec || !fs::is_directory(c, ec)) return {};
  return c;
}

}  // namespace

std::string ClipForMessage(const std::string& s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  if (s.size() > max) out += "...";
  return out;
}

absl::StatusOr<ModelRoots> ModelRoots::Create(const std::vector<std::string>& roots) {
  ModelRoots r;
  for (const std::string& root : roots) {
    fs::path c = CanonicalDir(root);
    if (c.empty()) return absl::InvalidArgumentError(absl::StrCat("--model-root ", root, " is not a directory"));
    r.roots_.push_back(c);
  }
  return r;
}

bool ModelRoots::Inside(const fs::path& canonical) const {
  for (const fs::path& root : roots_) {
    if (IsWithin(canonical, root)) return true;
  }
  return false;
}

absl::StatusOr<fs::path> ModelRoots::Resolve(const std::string& model, const std::string& revision) const {
  if (model.empty()) return absl::InvalidArgumentError("model is empty: pass a HF model folder or an org/name hub id");
  if (model.find('\0') != std::string::npos || model.size() > 4096) {
    return absl::InvalidArgumentError("model must be a path or hub id of at most 4096 bytes without NUL characters");
  }
  if (!restricted()) return ResolveModel(model, revision);
  const std::string shown = ClipForMessage(model);
  const absl::Status denied = absl::PermissionDeniedError(absl::StrCat(
      "model \"", shown, "\" is not inside this server's model roots (--model-root); ask its operator which "
      "folders it serves, and name the model by its path inside one of them"));
  const fs::path p(model);
  if (p.is_absolute()) {
    const fs::path c = CanonicalDir(p);
    if (c.empty() || !Inside(c)) return denied;
    return c;
  }
  for (const fs::path& root : roots_) {
    const fs::path c = CanonicalDir(root / p);
    if (!c.empty() && Inside(c)) return c;
  }
  // A hub id in the HF cache, served only when the cache is inside a root.
  auto hub = ResolveModel(model, revision);
  if (hub.ok()) {
    const fs::path c = CanonicalDir(*hub);
    if (!c.empty() && Inside(c)) return c;
  } else if (hub.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", shown, "\": invalid hub id or revision"));
  }
  return denied;
}

}  // namespace qeff::hf
