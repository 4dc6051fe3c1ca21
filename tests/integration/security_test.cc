// Serving untrusted clients, with the real binaries: Export confined to --model-root (paths
// outside, "..", symlinked folders and symlinked files are PERMISSION_DENIED without revealing
// what exists outside; huge input is not echoed), hub cache snapshots linking into their blobs
// are served, and the server keeps serving.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/process.h"

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qeff-sec-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cache");
    fs::create_directories(dir_ / "root");
    fs::create_directories(dir_ / "outside");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A copy of the GPT-2 fixture at `to`.
  static void CopyModel(const fs::path& to) {
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(kGpt2)) fs::copy_file(e.path(), to / e.path().filename());
  }
  CommandResult Export(const std::string& model) {
    return RunCommand({Binary("qeffctl"), "export", "--server", server_.address(), "--model", model});
  }

  fs::path dir_;
  ServerProcess server_;
};

TEST_F(SecurityTest, ExportIsConfinedToModelRoots) {
  CopyModel(dir_ / "root/org/tiny");
  CopyModel(dir_ / "outside/secret-model");
  fs::create_directory_symlink(dir_ / "outside/secret-model", dir_ / "root/escape");
  CopyModel(dir_ / "root/leaky");
  fs::remove(dir_ / "root/leaky/tokenizer_config.json");
  fs::create_symlink("/etc/passwd", dir_ / "root/leaky/tokenizer_config.json");
  ASSERT_TRUE(server_.Start(Binary("qeff-exporter"), (dir_ / "cache").string(),
                            {"--model-root", (dir_ / "root").string()}))
      << server_.error();

  // Inside the root: by absolute path and by a path relative to the root.
  CommandResult ok_abs = Export((dir_ / "root/org/tiny").string());
  EXPECT_EQ(ok_abs.exit_code, 0) << ok_abs.err;
  CommandResult ok_rel = Export("org/tiny");
  EXPECT_EQ(ok_rel.exit_code, 0) << ok_rel.err;

  // Outside: an existing model, a missing one, ".." out of the root, a symlinked folder — all
  // the same PERMISSION_DENIED, none naming the real path.
  std::string first_message;
  for (const std::string& model :
       {(dir_ / "outside/secret-model").string(), (dir_ / "outside/not-there").string(), std::string("../outside/secret-model"),
        (dir_ / "root/../outside/secret-model").string(), std::string("escape"), std::string("/etc")}) {
    CommandResult r = Export(model);
    EXPECT_NE(r.exit_code, 0) << model;
    EXPECT_NE(r.err.find("PERMISSION_DENIED"), std::string::npos) << model << ": " << r.err;
    EXPECT_EQ(r.err.find("outside/secret-model/"), std::string::npos) << r.err;
    // Everything after the echoed name is the same for every refused path.
    const size_t at = r.err.find("is not inside");
    ASSERT_NE(at, std::string::npos) << r.err;
    if (first_message.empty()) first_message = r.err.substr(at);
    EXPECT_EQ(r.err.substr(at), first_message) << "messages must not tell existing from missing";
  }
  // A file symlinked out of the folder.
  CommandResult leak = Export("leaky");
  EXPECT_NE(leak.exit_code, 0);
  EXPECT_NE(leak.err.find("PERMISSION_DENIED"), std::string::npos) << leak.err;
  EXPECT_EQ(leak.err.find("passwd"), std::string::npos) << leak.err;
  // A huge path is refused without being echoed in full.
  CommandResult huge = Export(std::string(10000, 'a'));
  EXPECT_NE(huge.exit_code, 0);
  EXPECT_LT(huge.err.size(), 2000u) << huge.err.size();

  // Still serving.
  CommandResult again = Export("org/tiny");
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(SecurityTest, WithoutRootsSymlinksOutOfTheFolderAreStillRefused) {
  CopyModel(dir_ / "root/leaky");
  fs::remove(dir_ / "root/leaky/vocab.json");
  fs::create_symlink("/etc/passwd", dir_ / "root/leaky/vocab.json");
  ASSERT_TRUE(server_.Start(Binary("qeff-exporter"), (dir_ / "cache").string())) << server_.error();
  CommandResult r = Export((dir_ / "root/leaky").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("PERMISSION_DENIED"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(dir_ / "cache/exports") || !fs::exists(dir_ / "cache/exports"));
}

// The HF hub cache layout: snapshot files are symlinks into the repository's blobs/. With the
// cache as a model root, a hub id exports; a snapshot link leaving the repository is refused.
TEST_F(SecurityTest, HubCacheSnapshotsLinkIntoTheirBlobStore) {
  const fs::path hub = dir_ / "root/hub";
  const fs::path repo = hub / "models--org--tiny";
  const std::string rev = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(repo / "snapshots" / rev);
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs/main") << rev;
  int n = 0;
  for (const auto& e : fs::directory_iterator(kGpt2)) {
    const std::string blob = "blob" + std::to_string(n++);
    fs::copy_file(e.path(), repo / "blobs" / blob);
    fs::create_symlink("../../blobs/" + blob, repo / "snapshots" / rev / e.path().filename());
  }
  ::setenv("HF_HUB_CACHE", hub.c_str(), 1);
  const bool started = server_.Start(Binary("qeff-exporter"), (dir_ / "cache").string(),
                                     {"--model-root", (dir_ / "root").string()});
  ::unsetenv("HF_HUB_CACHE");
  ASSERT_TRUE(started) << server_.error();
  CommandResult ok = Export("org/tiny");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;

  // A snapshot file that links out of the repository.
  const fs::path link = repo / "snapshots" / rev / "merges.txt";
  fs::remove(link);
  fs::create_symlink("/etc/passwd", link);
  CommandResult bad = Export("org/tiny");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("PERMISSION_DENIED"), std::string::npos) << bad.err;
}

// A qpc damaged in the shared cache (a flipped byte in weights.bin, an edited program.pb) is
// reported at Load with DATA_LOSS naming its key, moved to quarantine, and the next compile
// builds it again; the server keeps serving.
TEST_F(SecurityTest, DamagedQpcIsReportedQuarantinedAndRebuilt) {
  ASSERT_TRUE(server_.Start(Binary("qeffd"), (dir_ / "cache").string())) << server_.error();
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {Binary("qeffctl"), args[0], "--server", server_.address(), "--json"});
    args.erase(args.begin() + 5);
    return RunCommand(args);
  };
  CommandResult exported = ctl({"export", "--model", kGpt2.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::string export_key = nlohmann::json::parse(exported.out)["export_key"];
  for (const char* victim : {"weights.bin", "program.pb"}) {
    CommandResult compiled =
        ctl({"compile", "--export-key", export_key, "--ctx-len", "64", "--prefill-seq-len", "8"});
    ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
    const nlohmann::json c = nlohmann::json::parse(compiled.out);
    const std::string qpc_key = c["qpc_key"];
    EXPECT_FALSE(c.value("compile_cache_hit", true)) << victim << ": a quarantined qpc is built again";
    const fs::path file = dir_ / "cache/qpcs" / qpc_key / victim;
    {
      std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2));
      f.put('\x5a');
    }
    CommandResult load = ctl({"load", "--qpc-key", qpc_key, "--model-id", std::string("m-") + victim});
    EXPECT_NE(load.exit_code, 0) << victim;
    EXPECT_NE(load.err.find("DATA_LOSS"), std::string::npos) << load.err;
    EXPECT_NE(load.err.find(qpc_key), std::string::npos) << load.err;
    EXPECT_FALSE(fs::exists(dir_ / "cache/qpcs" / qpc_key)) << "moved to quarantine";
    EXPECT_FALSE(fs::is_empty(dir_ / "cache/quarantine"));
  }
  // Rebuilt and loadable.
  CommandResult compiled = ctl({"compile", "--export-key", export_key, "--ctx-len", "64", "--prefill-seq-len", "8"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  CommandResult load = ctl({"load", "--qpc-key", nlohmann::json::parse(compiled.out)["qpc_key"], "--model-id", "ok"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
}

// Operator tools and caps: `qeffctl cache verify` finds and quarantines a damaged artifact,
// `cache rm` refuses a qpc a server has loaded and removes it once unloaded, and a runner with
// --max-loaded-models 1 refuses a second model naming the loaded one.
TEST_F(SecurityTest, CacheVerifyRmAndLoadCaps) {
  ASSERT_TRUE(server_.Start(Binary("qeffd"), (dir_ / "cache").string(), {"--max-loaded-models", "1"}))
      << server_.error();
  const std::string cache = (dir_ / "cache").string();
  CommandResult first = RunCommand({Binary("qeffctl"), "infer", "--server", server_.address(), "--model", kGpt2.string(),
                                    "--input-ids", "15496,995", "--max-new-tokens", "2", "--ctx-len", "64",
                                    "--prefill-seq-len", "8", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const nlohmann::json j = nlohmann::json::parse(first.out);
  const std::string export_key = j["export_key"], qpc_key = j["qpc_key"];
  CommandResult second = RunCommand({Binary("qeffctl"), "load", "--server", server_.address(), "--qpc-key", qpc_key,
                                     "--model-id", "two"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("RESOURCE_EXHAUSTED"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find(qpc_key), std::string::npos) << "names what is loaded: " << second.err;

  CommandResult ok = RunCommand({Binary("qeffctl"), "cache", "--cache-dir", cache, "verify"});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  {
    std::fstream f(dir_ / "cache/exports" / export_key / "model.onnx", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x01');
  }
  CommandResult bad = RunCommand({Binary("qeffctl"), "cache", "--cache-dir", cache, "verify", "--json"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_EQ(nlohmann::json::parse(bad.out)["damaged"], 1) << bad.out;
  EXPECT_FALSE(fs::exists(dir_ / "cache/exports" / export_key));

  CommandResult busy = RunCommand({Binary("qeffctl"), "cache", "--cache-dir", cache, "rm", qpc_key});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("in use"), std::string::npos) << busy.err;
  CommandResult unload =
      RunCommand({Binary("qeffctl"), "unload", "--server", server_.address(), "--model-id", qpc_key});
  ASSERT_EQ(unload.exit_code, 0) << unload.err;
  CommandResult rm = RunCommand({Binary("qeffctl"), "cache", "--cache-dir", cache, "rm", qpc_key});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_FALSE(fs::exists(dir_ / "cache/qpcs" / qpc_key));
}

}  // namespace
}  // namespace qeff::testing
