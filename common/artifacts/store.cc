#include "common/artifacts/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <tuple>

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/util/files.h"
#include "common/util/hash.h"
#include "common/util/status_macros.h"

namespace qeff::artifacts {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxManifestBytes = 16 << 20;

// An exclusive flock held for the lifetime of the object. flock locks belong to the open file
// description, so two threads of one process that each open the file also exclude each other.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Acquire(const fs::path& path, const WaitFn& on_wait) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot open lock file ", path.string()));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (on_wait) on_wait();
      while (::flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
          ::close(fd);
          return absl::InternalError(absl::StrCat("cannot lock ", path.string()));
        }
      }
    }
    FileLock l;
    l.fd_ = fd;
    return l;
  }
  FileLock() = default;
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }

 private:
  int fd_ = -1;
};

std::string StagingPrefix(Kind kind, const std::string& key) {
  return absl::StrCat(KindName(kind), "-", key, ".");
}

uint64_t DirBytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

absl::StatusOr<nlohmann::json> DescribeFiles(const fs::path& dir) {
  nlohmann::json files = nlohmann::json::array();
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    util::Hasher h;
    QEFF_RETURN_IF_ERROR(h.File(p));
    files.push_back({{"name", p.filename().string()}, {"bytes", fs::file_size(p)}, {"xxh3", h.Hex()}});
  }
  return files;
}

absl::Status SyncTree(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", e.path().string()));
    ::fsync(fd);
    ::close(fd);
  }
  return util::SyncDirectory(dir);
}

std::string UsePath(const fs::path& root, Kind kind, const std::string& key) {
  return (root / "locks" / absl::StrCat(KindName(kind), "-", key, ".use")).string();
}

// Moves `dir` out of the way (same filesystem: a rename) under `to_parent`, then records why.
absl::Status MoveAside(const fs::path& dir, const fs::path& to_parent, const std::string& name,
                       const std::string& reason) {
  std::error_code ec;
  fs::create_directories(to_parent, ec);
  const fs::path to = to_parent / absl::StrCat(name, "-", ::getpid(), "-", std::random_device{}());
  fs::rename(dir, to, ec);
  if (ec) {
    const std::string why = ec.message();
    if (!fs::exists(dir)) return absl::OkStatus();  // someone else moved it first
    return absl::InternalError(absl::StrCat("cannot move ", dir.string(), " aside: ", why));
  }
  if (!reason.empty()) (void)util::WriteFileSynced(to / "reason.txt", reason + "\n");
  return absl::OkStatus();
}

// Files verified by this process: identity -> the checksum they matched.
struct FileId {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns;
  bool operator<(const FileId& o) const {
    return std::tie(dev, ino, size, mtime_ns) < std::tie(o.dev, o.ino, o.size, o.mtime_ns);
  }
};
std::mutex verified_mu;
std::map<FileId, std::string>& Verified() {
  static auto* m = new std::map<FileId, std::string>;
  return *m;
}

}  // namespace

ArtifactUse& ArtifactUse::operator=(ArtifactUse&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

ArtifactUse::~ArtifactUse() {
  if (fd_ >= 0) ::close(fd_);  // releases the shared flock
}

const char* KindName(Kind kind) { return kind == Kind::kExport ? "export" : "qpc"; }

absl::Status ValidateKey(const std::string& key) {
  if (key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact key '", key.substr(0, 64), "' is not a 32-hex-digit key"));
  }
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("artifact key '", key, "' must be lowercase hex digits only"));
    }
  }
  return absl::OkStatus();
}

fs::path DefaultCacheRoot() {
  if (const char* c = std::getenv("QEFF_CACHE"); c != nullptr && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x) return fs::path(x) / "qeff";
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/tmp") / ".cache" / "qeff";
}

absl::StatusOr<Store> Store::Open(const fs::path& root) {
  std::error_code ec;
  for (const char* sub : {"exports", "qpcs", "tmp", "locks", "quarantine"}) {
    fs::create_directories(root / sub, ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create cache directory ",
                                                      (root / sub).string(), ": ", ec.message()));
    }
  }
  fs::path canon = fs::canonical(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot resolve ", root.string()));
  return Store(canon);
}

fs::path Store::Dir(Kind kind) const { return root_ / (kind == Kind::kExport ? "exports" : "qpcs"); }

absl::StatusOr<fs::path> Store::Find(Kind kind, const std::string& key) const {
  QEFF_RETURN_IF_ERROR(ValidateKey(key));
  fs::path p = Dir(kind) / key;
  std::error_code ec;
  if (!fs::is_regular_file(p / "manifest.json", ec)) {
    return absl::NotFoundError(absl::StrCat("no ", KindName(kind), " artifact with key ", key,
                                            " in the cache; run ", KindName(kind),
                                            kind == Kind::kExport ? " (qeffctl export)" : " (qeffctl compile)",
                                            " first"));
  }
  return p;
}

absl::StatusOr<nlohmann::json> Store::ReadManifest(Kind kind, const std::string& key) const {
  QEFF_ASSIGN_OR_RETURN(fs::path dir, Find(kind, key));
  QEFF_ASSIGN_OR_RETURN(std::string text, util::ReadFile(dir / "manifest.json", kMaxManifestBytes));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat("manifest of ", KindName(kind), " ", key, " is corrupt"));
  }
  return j;
}

absl::StatusOr<PublishResult> Store::GetOrBuild(Kind kind, const std::string& key, const BuildFn& build,
                                                const WaitFn& on_wait) {
  QEFF_RETURN_IF_ERROR(ValidateKey(key));
  if (auto m = ReadManifest(kind, key); m.ok()) return PublishResult{Dir(kind) / key, true, *m};

  QEFF_ASSIGN_OR_RETURN(FileLock lock,
                        FileLock::Acquire(root_ / "locks" / absl::StrCat(KindName(kind), "-", key, ".lock"),
                                          on_wait));
  // Another builder may have published while we waited for the lock.
  if (auto m = ReadManifest(kind, key); m.ok()) return PublishResult{Dir(kind) / key, true, *m};
  // Holding the lock: a folder for this key without a readable manifest is damaged (a manifest
  // deleted or corrupted later); move it aside so the key can be published again.
  {
    std::error_code exists_ec;
    if (fs::exists(Dir(kind) / key, exists_ec)) {
      QEFF_RETURN_IF_ERROR(Quarantine(kind, key, "folder without a readable manifest.json found when building"));
    }
  }

  // We hold the key's lock, so any staging dir of this key is a crashed builder's leftover.
  std::error_code ec;
  const std::string prefix = StagingPrefix(kind, key);
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove_all(e.path(), ec);
  }
  static std::atomic<uint64_t> counter{0};
  fs::path staging = root_ / "tmp" /
                     absl::StrCat(prefix, ::getpid(), "-", counter.fetch_add(1), "-",
                                  std::random_device{}());
  fs::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging.string(), ": ", ec.message()));

  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<nlohmann::json> built = build(staging);
  if (!built.ok()) {
    fs::remove_all(staging, ec);
    return built.status();
  }
  double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  absl::StatusOr<nlohmann::json> files = DescribeFiles(staging);
  if (!files.ok()) {
    fs::remove_all(staging, ec);
    return files.status();
  }
  nlohmann::json manifest = *built;
  manifest["key"] = key;
  manifest["kind"] = KindName(kind);
  manifest["files"] = *files;
  manifest["build_seconds"] = build_s;
  manifest["created_unix"] = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  // manifest.json is written last: together with the rename it marks the artifact complete.
  absl::Status st = util::WriteFileSynced(staging / "manifest.json", manifest.dump(2));
  if (st.ok()) st = SyncTree(staging);
  if (!st.ok()) {
    fs::remove_all(staging, ec);
    return st;
  }
  fs::path final_dir = Dir(kind) / key;
  fs::rename(staging, final_dir, ec);
  if (ec) {
    const std::string why = ec.message();  // before remove_all reuses ec
    fs::remove_all(staging, ec);
    return absl::InternalError(absl::StrCat("cannot publish ", KindName(kind), " ", key, ": ", why));
  }
  QEFF_RETURN_IF_ERROR(util::SyncDirectory(Dir(kind)));
  if (max_bytes_ > 0) {
    // Held in use while evicting, so the new artifact itself is never the one removed.
    auto hold = Use(kind, key);
    Evict(max_bytes_);
  }
  return PublishResult{final_dir, false, manifest};
}

absl::Status Store::Verify(Kind kind, const std::string& key) const {
  QEFF_ASSIGN_OR_RETURN(nlohmann::json manifest, ReadManifest(kind, key));
  fs::path dir = Dir(kind) / key;
  if (!manifest.contains("files") || !manifest["files"].is_array()) {
    return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": manifest lists no files"));
  }
  for (const auto& f : manifest["files"]) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) {
      return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": manifest has a malformed file entry"));
    }
    const std::string name = f["name"].get<std::string>();
    const std::string want = f.value("xxh3", "");
    auto p = util::ConfinePath(dir, name);
    if (!p.ok()) return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": manifest names a bad file"));
    struct stat st;
    if (::stat(p->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": file ", name, " is missing"));
    }
    if (f.contains("bytes") && f["bytes"].is_number_unsigned() &&
        f["bytes"].get<uint64_t>() != static_cast<uint64_t>(st.st_size)) {
      return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": file ", name, " has ", st.st_size,
                                              " bytes; its manifest says ", f["bytes"].get<uint64_t>()));
    }
    const FileId id{st.st_dev, st.st_ino, st.st_size,
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    {
      std::lock_guard<std::mutex> l(verified_mu);
      auto it = Verified().find(id);
      if (it != Verified().end() && it->second == want) continue;
    }
    util::Hasher h;
    absl::Status hashed = h.File(*p);
    if (!hashed.ok() || h.Hex() != want) {
      return absl::DataLossError(absl::StrCat(KindName(kind), " ", key, ": file ", name,
                                              " does not match its manifest checksum"));
    }
    std::lock_guard<std::mutex> l(verified_mu);
    Verified()[id] = want;
  }
  return absl::OkStatus();
}

absl::Status Store::Quarantine(Kind kind, const std::string& key, const std::string& reason) const {
  QEFF_RETURN_IF_ERROR(ValidateKey(key));
  const fs::path dir = Dir(kind) / key;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return absl::OkStatus();
  return MoveAside(dir, root_ / "quarantine", absl::StrCat(KindName(kind), "-", key), reason);
}

absl::StatusOr<ArtifactUse> Store::Use(Kind kind, const std::string& key) const {
  QEFF_RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = UsePath(root_, kind, key);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path));
  while (::flock(fd, LOCK_SH) != 0) {
    if (errno != EINTR) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot lock ", path));
    }
  }
  ::futimens(fd, nullptr);  // the use time orders eviction
  return ArtifactUse(fd);
}

absl::Status Store::Remove(Kind kind, const std::string& key) const {
  QEFF_RETURN_IF_ERROR(ValidateKey(key));
  const fs::path dir = Dir(kind) / key;
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no ", KindName(kind), " artifact with key ", key));
  }
  const std::string path = UsePath(root_, kind, key);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(KindName(kind), " ", key,
                                                      " is in use (a loaded model or a running build); unload it first"));
  }
  // Renamed out of the published tree first, so no reader ever sees it half removed.
  absl::Status moved = MoveAside(dir, root_ / "tmp", absl::StrCat("removing-", KindName(kind), "-", key), "");
  ::close(fd);
  QEFF_RETURN_IF_ERROR(moved);
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    if (e.path().filename().string().rfind(absl::StrCat("removing-", KindName(kind), "-", key), 0) == 0) {
      fs::remove_all(e.path(), ec);
    }
  }
  return absl::OkStatus();
}

int Store::Evict(uint64_t max_bytes) const {
  std::vector<ArtifactInfo> all = List();
  uint64_t total = 0;
  for (const auto& a : all) total += a.bytes;
  if (total <= max_bytes) return 0;
  auto last_use = [&](const ArtifactInfo& a) {
    std::error_code ec;
    auto t = fs::last_write_time(UsePath(root_, a.kind, a.key), ec);
    if (ec) t = fs::last_write_time(a.path / "manifest.json", ec);
    return t;
  };
  std::vector<std::pair<fs::file_time_type, size_t>> order;
  for (size_t i = 0; i < all.size(); ++i) order.emplace_back(last_use(all[i]), i);
  std::sort(order.begin(), order.end());
  int removed = 0;
  for (const auto& [t, i] : order) {
    if (total <= max_bytes) break;
    if (Remove(all[i].kind, all[i].key).ok()) {
      total -= std::min(total, all[i].bytes);
      ++removed;
    }
  }
  return removed;
}

std::vector<ArtifactInfo> Store::List() const {
  std::vector<ArtifactInfo> out;
  for (Kind kind : {Kind::kExport, Kind::kQpc}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(Dir(kind), ec)) {
      std::string key = e.path().filename().string();
      auto m = ReadManifest(kind, key);
      if (!m.ok()) continue;
      out.push_back(ArtifactInfo{kind, key, e.path(), DirBytes(e.path()), *m});
    }
  }
  return out;
}

int Store::CollectGarbage() {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    // Staging names are "<kind>-<key>.<pid>-..."; a staging dir is garbage when nobody holds its
    // key's lock (a live builder always does).
    std::string name = e.path().filename().string();
    size_t dot = name.find('.');
    if (name.rfind("removing-", 0) == 0) {  // an interrupted Remove
      fs::remove_all(e.path(), ec);
      if (!ec) ++removed;
      continue;
    }
    if (dot == std::string::npos) continue;
    fs::path lock_path = root_ / "locks" / absl::StrCat(name.substr(0, dot), ".lock");
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      fs::remove_all(e.path(), ec);
      if (!ec) ++removed;
    }
    ::close(fd);
  }
  return removed;
}

}  // namespace qeff::artifacts
