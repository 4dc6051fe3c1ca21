// Artifact store: keys, atomic publish, single-flight across threads and processes, crash leftovers.
#include "common/artifacts/store.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/util/files.h"

namespace qeff::artifacts {
namespace {
namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qeff-store-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

const std::string kKey = "0123456789abcdef0123456789abcdef";

BuildFn WriteOneFile(std::atomic<int>* builds, const std::string& content) {
  return [builds, content](const fs::path& staging) -> absl::StatusOr<nlohmann::json> {
    builds->fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ofstream(staging / "data.bin") << content;
    return nlohmann::json{{"producer", "test"}};
  };
}

TEST_F(StoreTest, RejectsBadKeys) {
  auto store = Store::Open(root_);
  ASSERT_TRUE(store.ok());
  for (const std::string& bad : std::vector<std::string>{"", "../../etc", "0123456789ABCDEF0123456789ABCDEF", kKey + "0", "zz"}) {
    EXPECT_EQ(store->Find(Kind::kExport, bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(store->Find(Kind::kExport, kKey).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, PublishesOnceThenHits) {
  auto store = Store::Open(root_);
  ASSERT_TRUE(store.ok());
  std::atomic<int> builds{0};
  auto first = store->GetOrBuild(Kind::kQpc, kKey, WriteOneFile(&builds, "hello"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->cache_hit);
  EXPECT_EQ(first->manifest["files"][0]["name"], "data.bin");
  EXPECT_EQ(first->manifest["files"][0]["bytes"], 5);
  auto second = store->GetOrBuild(Kind::kQpc, kKey, WriteOneFile(&builds, "other"));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(builds.load(), 1);
  EXPECT_TRUE(store->Verify(Kind::kQpc, kKey).ok());
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(StoreTest, VerifyDetectsCorruption) {
  auto store = Store::Open(root_);
  std::atomic<int> builds{0};
  ASSERT_TRUE(store->GetOrBuild(Kind::kExport, kKey, WriteOneFile(&builds, "hello")).ok());
  std::ofstream(root_ / "exports" / kKey / "data.bin") << "HELLO";
  EXPECT_EQ(store->Verify(Kind::kExport, kKey).code(), absl::StatusCode::kDataLoss);
}

TEST_F(StoreTest, FailedBuildLeavesNothing) {
  auto store = Store::Open(root_);
  auto r = store->GetOrBuild(Kind::kExport, kKey, [](const fs::path& staging) -> absl::StatusOr<nlohmann::json> {
    std::ofstream(staging / "partial") << "x";
    return absl::InvalidArgumentError("bad weights");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Find(Kind::kExport, kKey).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(StoreTest, ConcurrentThreadsBuildOnce) {
  auto store = Store::Open(root_);
  std::atomic<int> builds{0};
  std::atomic<int> hits{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto r = store->GetOrBuild(Kind::kExport, kKey, WriteOneFile(&builds, "hello"));
      ASSERT_TRUE(r.ok());
      if (r->cache_hit) hits.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(builds.load(), 1);
  EXPECT_EQ(hits.load(), 3);
}

TEST_F(StoreTest, ConcurrentProcessesBuildOnce) {
  ASSERT_TRUE(Store::Open(root_).ok());
  // Each child builds the same key; the marker file counts builds across processes.
  fs::path marker = root_ / "builds.log";
  std::vector<pid_t> kids;
  for (int i = 0; i < 3; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      auto store = Store::Open(root_);
      auto r = store->GetOrBuild(Kind::kExport, kKey, [&](const fs::path& staging) -> absl::StatusOr<nlohmann::json> {
        std::ofstream(marker, std::ios::app) << "x";
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::ofstream(staging / "data.bin") << "hello";
        return nlohmann::json::object();
      });
      ::_exit(r.ok() ? 0 : 1);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    ::waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto builds = util::ReadFile(marker, 1 << 10);
  ASSERT_TRUE(builds.ok());
  EXPECT_EQ(*builds, "x");
}

TEST_F(StoreTest, KilledBuilderLeavesOnlyGarbage) {
  ASSERT_TRUE(Store::Open(root_).ok());
  pid_t pid = ::fork();
  if (pid == 0) {
    auto store = Store::Open(root_);
    store->GetOrBuild(Kind::kExport, kKey, [](const fs::path& staging) -> absl::StatusOr<nlohmann::json> {
      std::ofstream(staging / "model.onnx") << "partial";
      ::_exit(9);  // dies mid-build, like SIGKILL
      return nlohmann::json::object();
    }).IgnoreError();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  auto store = Store::Open(root_);
  EXPECT_EQ(store->Find(Kind::kExport, kKey).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::is_empty(root_ / "tmp"));
  EXPECT_EQ(store->CollectGarbage(), 1);
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
  std::atomic<int> builds{0};
  auto r = store->GetOrBuild(Kind::kExport, kKey, WriteOneFile(&builds, "hello"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->cache_hit);
}

TEST_F(StoreTest, VerifyNamesSizeMismatchAndMissingFiles) {
  auto store = Store::Open(root_);
  std::atomic<int> builds{0};
  ASSERT_TRUE(store->GetOrBuild(Kind::kQpc, kKey, WriteOneFile(&builds, "hello")).ok());
  EXPECT_TRUE(store->Verify(Kind::kQpc, kKey).ok());
  EXPECT_TRUE(store->Verify(Kind::kQpc, kKey).ok());  // the second time from the per-file cache
  std::ofstream(root_ / "qpcs" / kKey / "data.bin", std::ios::app) << "!";
  absl::Status grown = store->Verify(Kind::kQpc, kKey);
  EXPECT_EQ(grown.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(grown.message().find("data.bin"), std::string::npos) << grown;
  EXPECT_NE(grown.message().find(kKey), std::string::npos) << grown;
  fs::remove(root_ / "qpcs" / kKey / "data.bin");
  EXPECT_EQ(store->Verify(Kind::kQpc, kKey).code(), absl::StatusCode::kDataLoss);
}

TEST_F(StoreTest, QuarantinedArtifactIsRebuiltOnTheNextRequest) {
  auto store = Store::Open(root_);
  std::atomic<int> builds{0};
  ASSERT_TRUE(store->GetOrBuild(Kind::kQpc, kKey, WriteOneFile(&builds, "hello")).ok());
  std::ofstream(root_ / "qpcs" / kKey / "data.bin") << "HELLO";
  ASSERT_EQ(store->Verify(Kind::kQpc, kKey).code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(store->Quarantine(Kind::kQpc, kKey, "checksum mismatch").ok());
  EXPECT_EQ(store->Find(Kind::kQpc, kKey).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::is_empty(root_ / "quarantine"));
  auto again = store->GetOrBuild(Kind::kQpc, kKey, WriteOneFile(&builds, "hello"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->cache_hit);
  EXPECT_EQ(builds.load(), 2);
  EXPECT_TRUE(store->Verify(Kind::kQpc, kKey).ok());
}

TEST_F(StoreTest, FolderWithoutManifestHealsInsteadOfBlockingTheKey) {
  auto store = Store::Open(root_);
  fs::create_directories(root_ / "exports" / kKey);
  std::ofstream(root_ / "exports" / kKey / "model.onnx") << "partial";
  std::atomic<int> builds{0};
  auto r = store->GetOrBuild(Kind::kExport, kKey, WriteOneFile(&builds, "hello"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->cache_hit);
  EXPECT_TRUE(store->Verify(Kind::kExport, kKey).ok());
  EXPECT_FALSE(fs::exists(root_ / "exports" / kKey / "model.onnx"));
}

TEST_F(StoreTest, RemoveAndEvictNeverTouchArtifactsInUse) {
  auto store = Store::Open(root_);
  std::atomic<int> builds{0};
  std::vector<std::string> keys;
  for (int i = 0; i < 3; ++i) {
    std::string key = kKey.substr(0, 31) + std::to_string(i);
    keys.push_back(key);
    ASSERT_TRUE(store->GetOrBuild(Kind::kQpc, key, WriteOneFile(&builds, std::string(1000, 'x'))).ok());
  }
  // Use order: 1, then 0 (most recent); 2 is in use in a child process.
  {
    auto u1 = store->Use(Kind::kQpc, keys[1]);
    ASSERT_TRUE(u1.ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    auto u0 = store->Use(Kind::kQpc, keys[0]);
    ASSERT_TRUE(u0.ok());
  }
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    auto again = Store::Open(root_);
    auto use = again->Use(Kind::kQpc, keys[2]);
    char c = 'k';
    (void)!::write(ready[1], &c, 1);
    ::sleep(5);
    ::_exit(use.ok() ? 0 : 1);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  absl::Status busy = store->Remove(Kind::kQpc, keys[2]);
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition) << busy;
  // Sizes differ a little (manifests hold timings), so the limits come from the real sizes.
  std::map<std::string, uint64_t> bytes;
  for (const auto& a : store->List()) bytes[a.key] = a.bytes;
  // Room for two artifacts: the least recently used free one (keys[1]) goes first.
  EXPECT_EQ(store->Evict(bytes[keys[0]] + bytes[keys[2]]), 1);
  EXPECT_FALSE(store->Find(Kind::kQpc, keys[1]).ok());
  EXPECT_TRUE(store->Find(Kind::kQpc, keys[0]).ok());
  EXPECT_TRUE(store->Find(Kind::kQpc, keys[2]).ok());
  EXPECT_EQ(store->Evict(bytes[keys[2]]), 1);  // only keys[0] can go: keys[2] is in use
  EXPECT_TRUE(store->Find(Kind::kQpc, keys[2]).ok());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(store->Remove(Kind::kQpc, keys[2]).ok());
  EXPECT_EQ(store->Remove(Kind::kQpc, keys[2]).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->List().empty());
}

TEST(ConfinePathTest, RejectsEscapes) {
  fs::path root = fs::temp_directory_path();
  EXPECT_TRUE(util::ConfinePath(root, "a/b").ok());
  EXPECT_EQ(util::ConfinePath(root, "../etc/passwd").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(util::ConfinePath(root, "/etc/passwd").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(util::ConfinePath(root, "a/../../x").status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace qeff::artifacts
