// common/hf: safetensors validation and conversion, sharded folders, hub-cache resolution.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/hf/model_roots.h"
#include "common/hf/safetensors.h"
#include "common/util/hash.h"
#include "tests/unit/temp_dir.h"

namespace qeff::hf {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using json = nlohmann::json;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

using qeff::testing::TempDir;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void WriteAll(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A safetensors image from a literal header and a data region.
std::string Image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

absl::Status ParseImage(const std::string& image) {
  return SafetensorsFile::Parse(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "test.safetensors")
      .status();
}

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(Safetensors, ParsesTheGpt2Fixture) {
  auto f = SafetensorsFile::Open(kGpt2 / "model.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  json ref = json::parse(ReadAll(kGpt2 / "reference.json"));
  const json& want = ref["model"]["weights_tensors"];
  ASSERT_EQ(f->tensors().size(), want.size());
  int64_t params = 0;
  for (const auto& [name, info] : want.items()) {
    const TensorView* v = f->Find(name);
    ASSERT_NE(v, nullptr) << name;
    EXPECT_EQ(DTypeName(v->dtype), info["dtype"].get<std::string>());
    EXPECT_EQ(v->shape, info["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(v->bytes, static_cast<size_t>(v->numel()) * 4);
    params += v->numel();
  }
  EXPECT_EQ(params, ref["model"]["num_parameters"].get<int64_t>());  // lm_head is tied: not in the file
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->Find("lm_head.weight"), nullptr);

  auto wte = ToFloatVector(*f->Find("transformer.wte.weight"));
  ASSERT_TRUE(wte.ok());
  double sum_sq = 0;
  for (float x : *wte) sum_sq += static_cast<double>(x) * x;
  double std_dev = std::sqrt(sum_sq / wte->size());
  EXPECT_NEAR(std_dev, 0.3, 0.01);  // the fixture's initializer_range
}

TEST(Safetensors, HalfConversionRoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc100), -2.5f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // rounds down to max
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // ties to even: inf
  EXPECT_EQ(FloatToHalf(1e-9f), 0x0000);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(Safetensors, BFloat16ConversionRoundTripsEveryValue) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = BFloat16ToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBFloat16(f), b) << std::hex << b;
  }
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc020), -2.5f);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(std::nanf("")))));
  EXPECT_EQ(FloatToBFloat16(1.00390625f), 0x3f80);  // tie (1 + 2^-8) to even
}

TEST(Safetensors, ConvertsF16AndBF16TensorsToFloat) {
  TempDir tmp;
  const std::vector<float> values = {1.0f, -2.5f, 0.0f, 65504.0f, 0.333251953125f, -std::ldexp(1.0f, -24)};
  std::string f16, bf16;
  for (float v : values) {
    uint16_t h = FloatToHalf(v), b = FloatToBFloat16(v);
    f16.append(reinterpret_cast<const char*>(&h), 2);
    bf16.append(reinterpret_cast<const char*>(&b), 2);
  }
  ASSERT_TRUE(WriteSafetensors(tmp.path() / "m.safetensors",
                               {{"a", DType::kF16, {2, 3}, f16}, {"b", DType::kBF16, {6}, bf16},
                                {"c", DType::kF32, {6}, FloatBytes(values)}})
                  .ok());
  auto f = SafetensorsFile::Open(tmp.path() / "m.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  auto a = ToFloatVector(*f->Find("a"));
  auto b = ToFloatVector(*f->Find("b"));
  auto c = ToFloatVector(*f->Find("c"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, values);  // all exactly representable in f16
  EXPECT_EQ(*c, values);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ((*b)[i], BFloat16ToFloat(FloatToBFloat16(values[i])));
    EXPECT_NEAR((*b)[i], values[i], std::fabs(values[i]) / 128 + 1e-30);
  }
  // Header is padded with spaces to a multiple of 8, like HF's writer.
  std::string raw = ReadAll(tmp.path() / "m.safetensors");
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  // Integer tensors are not weights.
  ASSERT_TRUE(WriteSafetensors(tmp.path() / "i.safetensors", {{"i", DType::kI64, {1}, std::string(8, '\0')}}).ok());
  auto fi = SafetensorsFile::Open(tmp.path() / "i.safetensors");
  ASSERT_TRUE(fi.ok());
  EXPECT_EQ(ToFloatVector(*fi->Find("i")).status().code(), absl::StatusCode::kInvalidArgument);
}

struct BadCase {
  const char* what;
  std::string image;
  const char* expect;  // substring of the message
};

TEST(Safetensors, RejectsMalformedFilesWithUsefulMessages) {
  const std::string d16(16, '\0');
  std::vector<BadCase> cases = {
      {"too short", std::string(5, '\0'), "shorter than the 8-byte"},
      {"header beyond file", Image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "").substr(0, 20),
       "beyond the end of the file"},
      {"bad json", Image(R"({"a":{"dtype":"F32",)", d16), "not valid JSON"},
      {"not an object", Image(R"([1,2,3] )", d16), "JSON object"},
      {"offsets out of range", Image(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", d16),
       "\"a\": data_offsets [0, 32] go beyond the data region of 16 bytes"},
      {"overlap",
       Image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             d16),
       "overlap tensor \"a\""},
      {"shape x dtype mismatch", Image(R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", d16),
       "\"w\": shape [3] of F16 needs 6 bytes but data_offsets span 8"},
      {"huge shape", Image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d16),
       "\"w\": shape"},
      {"unknown dtype", Image(R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}})", d16), "unknown safetensors dtype"},
      {"negative dim", Image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d16), "non-negative"},
      {"reversed offsets", Image(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", d16), "reversed"},
      {"missing offsets", Image(R"({"w":{"dtype":"F32","shape":[1]}})", d16), "data_offsets"},
      {"duplicate name",
       Image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
             d16),
       "\"w\": name appears more than once"},
      {"bad metadata", Image(R"({"__metadata__":{"format":1}})", d16), "__metadata__"},
  };
  // Header length field far beyond the file / beyond the 100 MB limit.
  std::string huge = Image(R"({})", d16);
  uint64_t big = 1ull << 40;
  std::memcpy(huge.data(), &big, 8);
  cases.push_back({"header length 1 TB", huge, "exceeds the limit"});
  std::string lying = Image(R"({})", d16);
  uint64_t beyond = 1000;
  std::memcpy(lying.data(), &beyond, 8);
  cases.push_back({"header length beyond file", lying, "beyond the end of the file"});

  for (const auto& c : cases) {
    absl::Status st = ParseImage(c.image);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.expect)) << c.what;
    EXPECT_THAT(std::string(st.message()), HasSubstr("test.safetensors")) << c.what;
  }
  // Empty tensors and an empty file body are fine.
  EXPECT_TRUE(ParseImage(Image(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", "")).ok());
}

TEST(Safetensors, TruncatedFixtureNamesFileAndTensor) {
  TempDir tmp;
  std::string bytes = ReadAll(kGpt2 / "model.safetensors");
  WriteAll(tmp.path() / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  auto f = SafetensorsFile::Open(tmp.path() / "model.safetensors");
  ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("model.safetensors"));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("tensor \"transformer."));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("truncated"));
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  const std::string good = ReadAll(kGpt2 / "model.safetensors");
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  const std::string head = good.substr(0, 8 + n + 4096);  // header + a little data
  std::mt19937 rng(42);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = head;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < flips; ++j) {
      size_t pos = rng() % (8 + n);  // corrupt the length field or the JSON
      m[pos] = static_cast<char>(rng() & 0xff);
    }
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    auto f = SafetensorsFile::Parse(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "fuzz");
    if (f.ok()) {
      ++accepted;
      for (const auto& [name, v] : f->tensors()) {
        // Anything accepted must lie inside the buffer.
        ASSERT_GE(v.data, reinterpret_cast<const uint8_t*>(m.data()));
        ASSERT_LE(v.data + v.bytes, reinterpret_cast<const uint8_t*>(m.data()) + m.size());
      }
    } else {
      ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
    }
  }
  (void)accepted;
}

// ---- ModelFolder ----

void WriteConfig(const fs::path& dir) { WriteAll(dir / "config.json", R"({"architectures": ["GPT2LMHeadModel"]})"); }

TEST(ModelFolder, OpensTheFixture) {
  auto f = ModelFolder::Open(kGpt2);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->architecture(), "GPT2LMHeadModel");
  EXPECT_EQ(f->config()["n_embd"], 32);
  EXPECT_EQ(f->TensorNames().size(), 28u);
  EXPECT_TRUE(f->HasTensor("transformer.wpe.weight"));
  auto v = f->Tensor("transformer.wpe.weight");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->shape, (std::vector<int64_t>{128, 32}));
  auto missing = f->Tensor("lm_head.weight");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("lm_head.weight"));
  EXPECT_EQ(f->WeightFiles().size(), 1u);
  EXPECT_GE(f->TokenizerFiles().size(), 3u);  // vocab.json, merges.txt, tokenizer_config.json, ...
}

TEST(ModelFolder, MissingFolderOrConfigIsNotFoundBadConfigIsInvalid) {
  TempDir tmp;
  EXPECT_EQ(ModelFolder::Open(tmp.path() / "nope").status().code(), absl::StatusCode::kNotFound);
  auto no_config = ModelFolder::Open(tmp.path());
  EXPECT_EQ(no_config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(no_config.status().message()), HasSubstr("config.json"));
  WriteAll(tmp.path() / "config.json", "{not json");
  EXPECT_EQ(ModelFolder::Open(tmp.path()).status().code(), absl::StatusCode::kInvalidArgument);
  // Config without weights opens (the exporter checks the architecture first).
  WriteConfig(tmp.path());
  auto f = ModelFolder::Open(tmp.path());
  ASSERT_TRUE(f.ok());
  auto t = f->Tensor("wte.weight");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("no safetensors weights"));
  // A broken weight file fails Open.
  WriteAll(tmp.path() / "model.safetensors", "garbage");
  EXPECT_EQ(ModelFolder::Open(tmp.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelFolder, ReadsShardedCheckpoints) {
  TempDir tmp;
  WriteConfig(tmp.path());
  ASSERT_TRUE(WriteSafetensors(tmp.path() / "model-00001-of-00002.safetensors",
                               {{"a", DType::kF32, {2}, FloatBytes({1, 2})}, {"b", DType::kF32, {1}, FloatBytes({3})}})
                  .ok());
  ASSERT_TRUE(WriteSafetensors(tmp.path() / "model-00002-of-00002.safetensors",
                               {{"c", DType::kF32, {3}, FloatBytes({4, 5, 6})}})
                  .ok());
  json index = {{"metadata", {{"total_size", 24}}},
                {"weight_map",
                 {{"a", "model-00001-of-00002.safetensors"},
                  {"b", "model-00001-of-00002.safetensors"},
                  {"c", "model-00002-of-00002.safetensors"}}}};
  WriteAll(tmp.path() / "model.safetensors.index.json", index.dump());
  auto f = ModelFolder::Open(tmp.path());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->WeightFiles().size(), 2u);
  EXPECT_EQ(f->TensorNames(), (std::vector<std::string>{"a", "b", "c"}));
  auto c = f->Tensor("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*ToFloatVector(*c), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(*ToFloatVector(*f->Tensor("a")), (std::vector<float>{1, 2}));

  util::Hasher h1;
  ASSERT_TRUE(f->HashInputs(h1).ok());

  // The index must agree with the shards.
  json wrong = index;
  wrong["weight_map"]["c"] = "model-00001-of-00002.safetensors";
  WriteAll(tmp.path() / "model.safetensors.index.json", wrong.dump());
  auto bad = ModelFolder::Open(tmp.path());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("\"c\""));
  json escape = index;
  escape["weight_map"]["c"] = "../model-00002-of-00002.safetensors";
  WriteAll(tmp.path() / "model.safetensors.index.json", escape.dump());
  EXPECT_EQ(ModelFolder::Open(tmp.path()).status().code(), absl::StatusCode::kInvalidArgument);
  json missing = index;
  missing["weight_map"]["c"] = "model-00003-of-00002.safetensors";
  WriteAll(tmp.path() / "model.safetensors.index.json", missing.dump());
  EXPECT_EQ(ModelFolder::Open(tmp.path()).status().code(), absl::StatusCode::kInvalidArgument);
  // The same name in two shards.
  ASSERT_TRUE(WriteSafetensors(tmp.path() / "model-00002-of-00002.safetensors",
                               {{"a", DType::kF32, {1}, FloatBytes({9})}, {"c", DType::kF32, {3}, FloatBytes({4, 5, 7})}})
                  .ok());
  WriteAll(tmp.path() / "model.safetensors.index.json", index.dump());
  auto dup = ModelFolder::Open(tmp.path());
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("\"a\" appears in both"));
}

TEST(ModelFolder, HashCoversConfigWeightsAndTokenizer) {
  TempDir tmp;
  auto hash_of = [](const fs::path& dir) {
    auto f = ModelFolder::Open(dir);
    EXPECT_TRUE(f.ok()) << f.status();
    util::Hasher h;
    EXPECT_TRUE(f->HashInputs(h).ok());
    return h.Hex();
  };
  fs::copy(kGpt2, tmp.path() / "a");
  fs::copy(kGpt2, tmp.path() / "b");
  const std::string base = hash_of(tmp.path() / "a");
  EXPECT_EQ(base, hash_of(tmp.path() / "b"));
  // Change one weight byte (in the data region, not the header).
  fs::permissions(tmp.path() / "b/model.safetensors", fs::perms::owner_write, fs::perm_options::add);
  std::string w = ReadAll(tmp.path() / "b/model.safetensors");
  w[w.size() - 3] ^= 1;
  WriteAll(tmp.path() / "b/model.safetensors", w);
  EXPECT_NE(base, hash_of(tmp.path() / "b"));
  fs::permissions(tmp.path() / "a/merges.txt", fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(tmp.path() / "a/merges.txt", std::ios::app) << "x y\n";
  EXPECT_NE(base, hash_of(tmp.path() / "a"));
}

// ---- ResolveModel ----

class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    const char* v = std::getenv(name);
    had_ = v != nullptr;
    if (had_) old_ = v;
  }
  ~EnvGuard() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST(ResolveModel, FindsSnapshotsInTheHubCache) {
  EnvGuard g1("HF_HOME"), g2("HF_HUB_CACHE");
  TempDir tmp;
  const std::string hash = "0123456789abcdef0123456789abcdef01234567";
  const fs::path repo = tmp.path() / "hub" / "models--openai-community--gpt2";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / hash);
  WriteAll(repo / "refs" / "main", hash + "\n");
  WriteConfig(repo / "snapshots" / hash);
  ::setenv("HF_HOME", tmp.path().c_str(), 1);
  ::unsetenv("HF_HUB_CACHE");

  auto by_branch = ResolveModel("openai-community/gpt2", "main");
  ASSERT_TRUE(by_branch.ok()) << by_branch.status();
  EXPECT_EQ(*by_branch, repo / "snapshots" / hash);
  auto by_default = ResolveModel("openai-community/gpt2", "");
  ASSERT_TRUE(by_default.ok());
  EXPECT_EQ(*by_default, *by_branch);
  auto by_hash = ResolveModel("openai-community/gpt2", hash);
  ASSERT_TRUE(by_hash.ok()) << by_hash.status();
  EXPECT_EQ(*by_hash, *by_branch);
  EXPECT_TRUE(ModelFolder::Open(*by_hash).ok());

  auto other_branch = ResolveModel("openai-community/gpt2", "dev");
  EXPECT_EQ(other_branch.status().code(), absl::StatusCode::kNotFound);
  auto missing = ResolveModel("nobody/nothing", "main");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr((tmp.path() / "hub/models--nobody--nothing").string()));
  EXPECT_EQ(ResolveModel("openai-community/gpt2", "../../etc").status().code(), absl::StatusCode::kInvalidArgument);

  // HF_HUB_CACHE wins over HF_HOME.
  TempDir other;
  fs::create_directories(other.path() / "models--openai-community--gpt2/snapshots" / hash);
  ::setenv("HF_HUB_CACHE", other.path().c_str(), 1);
  auto via_hub_cache = ResolveModel("openai-community/gpt2", hash);
  ASSERT_TRUE(via_hub_cache.ok()) << via_hub_cache.status();
  EXPECT_EQ(*via_hub_cache, other.path() / "models--openai-community--gpt2/snapshots" / hash);
}

TEST(ResolveModel, LocalFoldersAndMissingPaths) {
  auto local = ResolveModel(kGpt2.string(), "main");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, fs::canonical(kGpt2));
  auto missing = ResolveModel("/definitely/not/here", "main");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/definitely/not/here"));
  EXPECT_EQ(ResolveModel("", "main").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelRoots, ConfinesPathsAndRejectsNulAndOverlongInput) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "root/m");
  std::ofstream(tmp.path() / "root/m/config.json") << "{}";
  fs::create_directories(tmp.path() / "out/m");
  auto roots = ModelRoots::Create({(tmp.path() / "root").string()});
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(roots->restricted());
  auto rel = roots->Resolve("m", "main");
  ASSERT_TRUE(rel.ok()) << rel.status();
  EXPECT_EQ(*rel, fs::canonical(tmp.path() / "root/m"));
  EXPECT_EQ(roots->Resolve("../out/m", "main").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Resolve((tmp.path() / "out/m").string(), "main").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Resolve(std::string("m\0/../../out/m", 15), "main").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto huge = roots->Resolve(std::string(5000, 'x'), "main");
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(huge.status().message().size(), 300u);
  EXPECT_FALSE(ModelRoots::Create({(tmp.path() / "missing").string()}).ok());
  // Without roots, NUL is still refused and any folder resolves.
  ModelRoots open;
  EXPECT_FALSE(open.restricted());
  EXPECT_EQ(open.Resolve(std::string("a\0b", 3), "main").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(open.Resolve((tmp.path() / "out/m").string(), "main").ok());
}

}  // namespace
}  // namespace qeff::hf
