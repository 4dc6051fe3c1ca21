#include "common/hf/hub.h"

#include <cstdlib>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/util/files.h"

namespace qeff::hf {
namespace fs = std::filesystem;
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Hub repo and revision names: letters, digits, '-', '_', '.', no "..", no leading '.'.
bool ValidHubPart(const std::string& s) {
  if (s.empty() || s.size() > 96 || s[0] == '.' || s.find("..") != std::string::npos) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool ValidRevision(const std::string& s) {
  // Branch names may contain '/', e.g. refs/pr/1; each part must be a plain name.
  if (s.empty() || s.size() > 256) return false;
  for (absl::string_view part : absl::StrSplit(s, '/')) {
    if (!ValidHubPart(std::string(part))) return false;
  }
  return true;
}

bool IsDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

}  // namespace

fs::path HubCacheDir() {
  if (std::string v = Env("HF_HUB_CACHE"); !v.empty()) return v;
  if (std::string v = Env("HF_HOME"); !v.empty()) return fs::path(v) / "hub";
  if (std::string v = Env("XDG_CACHE_HOME"); !v.empty()) return fs::path(v) / "huggingface" / "hub";
  return fs::path(Env("HOME").empty() ? "/root" : Env("HOME")) / ".cache" / "huggingface" / "hub";
}

absl::StatusOr<fs::path> ResolveModel(const std::string& model, const std::string& revision_in) {
  if (model.empty()) return absl::InvalidArgumentError("model is empty: pass a HF folder or an org/name hub id");
  if (IsDir(model)) {
    std::error_code ec;
    fs::path canon = fs::canonical(model, ec);
    return ec ? fs::path(model) : canon;
  }
  const std::string revision = revision_in.empty() ? "main" : revision_in;
  // Anything that looks like a path (absolute, ./, ../, more than one '/') is a missing folder.
  std::vector<std::string> parts = absl::StrSplit(model, '/');
  bool hub_like = parts.size() <= 2 && model[0] != '.' && model[0] != '/';
  for (const auto& p : parts) hub_like = hub_like && ValidHubPart(p);
  if (!hub_like) {
    return absl::NotFoundError(absl::StrCat("model folder ", model, " does not exist (and it is not an org/name hub id)"));
  }
  if (!ValidRevision(revision)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid hub revision \"", revision, "\""));
  }
  const fs::path cache = HubCacheDir();
  std::string repo_dir_name = "models";
  for (const auto& p : parts) absl::StrAppend(&repo_dir_name, "--", p);
  const fs::path repo = cache / repo_dir_name;
  const std::string where = absl::StrCat("no local folder \"", model, "\" and no snapshot for revision \"", revision,
                                         "\" in the HF hub cache ", repo.string(), " (offline: download it first, e.g. "
                                         "`huggingface-cli download ", model, "`; HF_HOME / HF_HUB_CACHE select the cache)");
  if (!IsDir(repo)) return absl::NotFoundError(where);

  // A branch or tag name resolves through refs/<revision>; otherwise it must be a commit hash.
  std::string commit = revision;
  fs::path ref = repo / "refs" / revision;
  std::error_code ec;
  if (fs::is_regular_file(ref, ec)) {
    auto text = util::ReadFile(ref, 4096);
    if (!text.ok()) return text.status();
    commit = std::string(absl::StripAsciiWhitespace(*text));
    if (!ValidHubPart(commit)) {
      return absl::InvalidArgumentError(absl::StrCat("hub ref file ", ref.string(), " does not hold a commit hash"));
    }
  }
  fs::path snapshot = repo / "snapshots" / commit;
  if (!IsDir(snapshot)) {
    return absl::NotFoundError(absl::StrCat(where, "; looked for ", snapshot.string()));
  }
  return snapshot;
}

}  // namespace qeff::hf
