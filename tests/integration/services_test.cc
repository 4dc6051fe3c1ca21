// End to end through the real binaries: qeff-exporter, qeff-compiler and qeff-runner (and qeffd)
// on 127.0.0.1 free ports with one temp cache, driven by qeffctl exactly as scripts call it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "qeff/v1/runner.grpc.pb.h"
#include "tests/integration/fixture_tokenizer.h"
#include "tests/integration/hf_reference.h"
#include "tests/integration/process.h"

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// QEFF_GPT2_FIXTURE points the same checks at another HF GPT-2 fixture folder (e.g. a held-out one).
const fs::path kGpt2 = std::getenv("QEFF_GPT2_FIXTURE") != nullptr
                           ? fs::path(std::getenv("QEFF_GPT2_FIXTURE"))
                           : fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::temp_directory_path() /
             ("qeff-it-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(cache_);
    fs::create_directories(cache_);
  }
  void TearDown() override { fs::remove_all(cache_); }

  // Starts the three services as separate processes sharing one cache.
  void StartSeparate() {
    ASSERT_TRUE(exporter_.Start(Binary("qeff-exporter"), cache_)) << exporter_.error();
    ASSERT_TRUE(compiler_.Start(Binary("qeff-compiler"), cache_)) << compiler_.error();
    ASSERT_TRUE(runner_.Start(Binary("qeff-runner"), cache_)) << runner_.error();
  }
  std::vector<std::string> Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {Binary("qeffctl"), "--exporter", exporter_.address(), "--compiler",
                                     compiler_.address(), "--runner", runner_.address(), "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  json RunJson(const std::vector<std::string>& argv) {
    CommandResult r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  fs::path cache_;
  ServerProcess exporter_, compiler_, runner_;
};

TEST_F(ServicesTest, InferThroughThreeServicesMatchesHfGreedyTokensAndHitsCache) {
  StartSeparate();
  HfReference ref = LoadHfReference(kGpt2);
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    json j = RunJson(Ctl({"infer", "--model", kGpt2.string(), "--input-ids", JoinIds(ref.prompts[i]),
                          "--max-new-tokens", "16", "--prefill-seq-len", "8", "--ctx-len", "64"}));
    EXPECT_EQ(j["generated_token_ids"].get<std::vector<int64_t>>(), ref.new_tokens[i]) << "prompt " << i;
    EXPECT_EQ(j["prompt_token_ids"].get<std::vector<int64_t>>(), ref.prompts[i]);
    EXPECT_EQ(j["export_cache_hit"].get<bool>(), i > 0) << "the second prompt reuses the export";
    EXPECT_EQ(j["compile_cache_hit"].get<bool>(), i > 0);
    for (const char* k : {"prefill_ms", "ttft_ms", "decode_tokens_per_s", "total_tokens_per_s", "e2e_ms"}) {
      EXPECT_GT(j["stats"][k].get<double>(), 0.0) << k;
    }
    EXPECT_EQ(j["export_key"].get<std::string>().size(), 32u);
    EXPECT_EQ(j["qpc_key"].get<std::string>().size(), 32u);
  }
  // The text path: the runner tokenizes with the model's own tokenizer files.
  json t = RunJson(Ctl({"infer", "--model", kGpt2.string(), "--prompt", ref.texts[0], "--max-new-tokens", "16",
                        "--prefill-seq-len", "8", "--ctx-len", "64"}));
  EXPECT_EQ(t["prompt_token_ids"].get<std::vector<int64_t>>(), ref.prompts[0]);
  EXPECT_EQ(t["generated_token_ids"].get<std::vector<int64_t>>(), ref.new_tokens[0]);
  EXPECT_TRUE(t["export_cache_hit"].get<bool>());
  EXPECT_TRUE(t["compile_cache_hit"].get<bool>());
  EXPECT_FALSE(t["text"].get<std::string>().empty());
}

TEST_F(ServicesTest, TwoIdenticalExportsAtOnceProduceOneArtifact) {
  StartSeparate();
  CommandResult a, b;
  std::thread ta([&] { a = RunCommand(Ctl({"export", "--model", kGpt2.string()})); });
  std::thread tb([&] { b = RunCommand(Ctl({"export", "--model", kGpt2.string()})); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json ja = json::parse(a.out), jb = json::parse(b.out);
  EXPECT_EQ(ja["export_key"], jb["export_key"]);
  EXPECT_NE(ja["export_cache_hit"].get<bool>(), jb["export_cache_hit"].get<bool>()) << "exactly one did the work";
  int n = 0;
  for (const auto& e : fs::directory_iterator(cache_ / "exports")) n += e.is_directory();
  EXPECT_EQ(n, 1);
}

TEST_F(ServicesTest, BadInputGetsClearErrorsAndServersKeepServing) {
  StartSeparate();
  fs::path bad = cache_ / "bad-models";
  fs::create_directories(bad / "unknown-arch");
  std::ofstream(bad / "unknown-arch/config.json") << R"({"architectures": ["FooForCausalLM"], "model_type": "foo"})";
  // Copy GPT-2 and damage its safetensors header in two ways.
  for (const char* name : {"truncated", "lying"}) {
    fs::create_directories(bad / name);
    fs::copy_file(kGpt2 / "config.json", bad / name / "config.json");
  }
  {
    std::ifstream in(kGpt2 / "model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(bad / "truncated/model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    uint64_t huge = 1ull << 40;  // header length far beyond the file
    std::memcpy(bytes.data(), &huge, 8);
    std::ofstream(bad / "lying/model.safetensors", std::ios::binary) << bytes;
  }
  struct Case {
    std::vector<std::string> args;
    std::string code;
  };
  const std::string no_key = "0123456789abcdef0123456789abcdef";
  std::vector<Case> cases = {
      {{"export", "--model", (bad / "missing").string()}, "NOT_FOUND"},
      {{"export", "--model", (bad / "unknown-arch").string()}, "UNIMPLEMENTED"},
      {{"export", "--model", (bad / "truncated").string()}, "INVALID_ARGUMENT"},
      {{"export", "--model", (bad / "lying").string()}, "INVALID_ARGUMENT"},
      {{"compile", "--export-key", no_key}, "NOT_FOUND"},
      {{"compile", "--export-key", "../../../etc/passwd"}, "INVALID_ARGUMENT"},
      {{"load", "--qpc-key", no_key}, "NOT_FOUND"},
      {{"load", "--qpc-key", "../exports/x"}, "INVALID_ARGUMENT"},
      {{"generate", "--model-id", "nope", "--input-ids", "1,2"}, "NOT_FOUND"},
      // 70 prompt tokens do not fit a ctx_len of 64.
      {{"infer", "--model", kGpt2.string(), "--input-ids", JoinIds(std::vector<int64_t>(70, 50)), "--ctx-len", "64",
        "--prefill-seq-len", "8"},
       "INVALID_ARGUMENT"},
  };
  for (const auto& c : cases) {
    CommandResult r = RunCommand(Ctl(c.args));
    EXPECT_NE(r.exit_code, 0) << c.args[0] << " " << c.args[2];
    EXPECT_NE(r.err.find(c.code), std::string::npos) << c.args[2] << ": " << r.err;
    EXPECT_GT(r.err.size(), c.code.size() + 20) << "the message explains the problem: " << r.err;
  }
  // Every server is still up and serving.
  for (ServerProcess* s : {&exporter_, &compiler_, &runner_}) {
    auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok()) << s->address();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  HfReference ref = LoadHfReference(kGpt2);
  json j = RunJson(Ctl({"infer", "--model", kGpt2.string(), "--input-ids", JoinIds(ref.prompts[0]),
                        "--max-new-tokens", "4", "--prefill-seq-len", "8", "--ctx-len", "64"}));
  EXPECT_EQ(j["generated_token_ids"].size(), 4u);
}

TEST_F(ServicesTest, SigkillMidExportNeverPublishesAPartialArtifact) {
  // A random GPT-2 big enough (~200 MB of weights) that the export takes a while.
  fs::path model = cache_ / "big-gpt2";
  CommandResult gen = RunCommand({Binary("qeff-make-random-model"), "--out", model.string(), "--n-layer", "8",
                                  "--n-embd", "1024", "--n-head", "16", "--vocab", "8192", "--n-positions", "128",
                                  "--tokenizer-from", kGpt2.string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  StartSeparate();
  CommandResult first;
  std::thread t([&] { first = RunCommand(Ctl({"export", "--model", model.string()})); });
  // Wait until the exporter is writing into tmp/, then kill it without warning.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool staging_seen = false;
  while (!staging_seen && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : fs::directory_iterator(cache_ / "tmp")) {
      if (fs::exists(e.path() / "model.onnx.data")) staging_seen = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(staging_seen) << "the export never started writing";
  exporter_.Stop(SIGKILL);
  t.join();
  EXPECT_NE(first.exit_code, 0);
  EXPECT_TRUE(fs::is_empty(cache_ / "exports")) << "a killed export must not be published";

  // A new exporter cleans up and a later request exports it completely.
  ASSERT_TRUE(exporter_.Start(Binary("qeff-exporter"), cache_)) << exporter_.error();
  EXPECT_TRUE(fs::is_empty(cache_ / "tmp")) << "startup gc removes the dead builder's staging dir";
  json j = RunJson(Ctl({"export", "--model", model.string()}));
  EXPECT_FALSE(j["export_cache_hit"].get<bool>());
  json c = RunJson(Ctl({"infer", "--model", model.string(), "--input-ids", "1,2,3", "--max-new-tokens", "2",
                        "--prefill-seq-len", "4", "--ctx-len", "16"}));
  EXPECT_TRUE(c["export_cache_hit"].get<bool>());
  EXPECT_EQ(c["generated_token_ids"].size(), 2u);
}

TEST_F(ServicesTest, QeffdServesAllThreeAndStopsCleanlyOnSigterm) {
  ServerProcess qeffd;
  ASSERT_TRUE(qeffd.Start(Binary("qeffd"), cache_)) << qeffd.error();
  HfReference ref = LoadHfReference(kGpt2);
  CommandResult r = RunCommand({Binary("qeffctl"), "--server", qeffd.address(), "infer", "--model", kGpt2.string(),
                                "--input-ids", JoinIds(ref.prompts[1]), "--max-new-tokens", "16", "--json",
                                "--prefill-seq-len", "4", "--ctx-len", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["generated_token_ids"].get<std::vector<int64_t>>(), ref.new_tokens[1]) << "chunked prefill (18 = 4+4+4+4+2)";
  // Human output: text plus QEfficient's four stats lines.
  CommandResult h = RunCommand({Binary("qeffctl"), "--server", qeffd.address(), "infer", "--model", kGpt2.string(),
                                "--prompt", "Hello world", "--max-new-tokens", "4", "--prefill-seq-len", "4",
                                "--ctx-len", "64"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  for (const char* line : {"Average Prefill time a.k.a TTFT is=", "Decode is=", "Total is=", "Total (E2E) inference time is="}) {
    EXPECT_NE(h.out.find(line), std::string::npos) << h.out;
  }
  int status = qeffd.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(ServicesTest, RunnerTokenizeAndDetokenizeUseTheModelsTokenizer) {
  ServerProcess qeffd;
  ASSERT_TRUE(qeffd.Start(Binary("qeffd"), cache_)) << qeffd.error();
  HfReference ref = LoadHfReference(kGpt2);
  CommandResult r = RunCommand({Binary("qeffctl"), "infer", "--server", qeffd.address(), "--model", kGpt2.string(),
                                "--input-ids", JoinIds(ref.prompts[0]), "--max-new-tokens", "16", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  const std::string model_id = j["qpc_key"];
  auto stub = qeff::v1::Runner::NewStub(grpc::CreateChannel(qeffd.address(), grpc::InsecureChannelCredentials()));

  // Text -> ids with the qpc's own tokenizer files.
  grpc::ClientContext c1;
  qeff::v1::TokenizeRequest treq;
  treq.set_model_id(model_id);
  treq.set_text(ref.texts[0]);
  qeff::v1::TokenizeResponse tresp;
  ASSERT_TRUE(stub->Tokenize(&c1, treq, &tresp).ok());
  EXPECT_EQ(std::vector<int64_t>(tresp.ids().begin(), tresp.ids().end()), ref.prompts[0]);
  EXPECT_EQ(tresp.tokens_size(), tresp.ids_size());

  // The streamed text of the generation equals detokenizing its ids in one go.
  grpc::ClientContext c2;
  qeff::v1::DetokenizeRequest dreq;
  dreq.set_model_id(model_id);
  for (int64_t id : j["generated_token_ids"].get<std::vector<int64_t>>()) dreq.add_ids(id);
  qeff::v1::DetokenizeResponse dresp;
  ASSERT_TRUE(stub->Detokenize(&c2, dreq, &dresp).ok());
  EXPECT_EQ(dresp.text(), j["text"].get<std::string>());
  std::ifstream in(kGpt2 / "reference.json");
  json full = json::parse(in);
  if (full["outputs"]["generation"][0].contains("decoded_new_text")) {
    EXPECT_EQ(dresp.text(), full["outputs"]["generation"][0]["decoded_new_text"].get<std::string>());
  }

  // Bad ids are INVALID_ARGUMENT, an unknown model NOT_FOUND.
  grpc::ClientContext c3;
  dreq.add_ids(1 << 30);
  EXPECT_EQ(stub->Detokenize(&c3, dreq, &dresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c4;
  treq.set_model_id("nope");
  EXPECT_EQ(stub->Tokenize(&c4, treq, &tresp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServicesTest, HubIdResolvesOfflineInTheHfCache) {
  // $HF_HOME/hub/models--org--name/snapshots/<rev>/ with refs/main naming the revision, as
  // huggingface_hub lays it out; the exporter inherits HF_HOME.
  const fs::path hf_home = cache_ / "hf-home";
  const fs::path repo = hf_home / "hub/models--qeff-test--tiny-gpt2";
  const std::string rev = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(repo / "snapshots" / rev);
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs/main") << rev;
  for (const auto& e : fs::directory_iterator(kGpt2)) fs::copy_file(e.path(), repo / "snapshots" / rev / e.path().filename());
  ::setenv("HF_HOME", hf_home.c_str(), 1);
  ServerProcess qeffd;
  const bool started = qeffd.Start(Binary("qeffd"), cache_);
  ::unsetenv("HF_HOME");
  ASSERT_TRUE(started) << qeffd.error();
  HfReference ref = LoadHfReference(kGpt2);
  CommandResult r = RunCommand({Binary("qeffctl"), "infer", "--server", qeffd.address(), "--model",
                                "qeff-test/tiny-gpt2", "--input-ids", JoinIds(ref.prompts[0]), "--max-new-tokens", "16",
                                "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["generated_token_ids"].get<std::vector<int64_t>>(), ref.new_tokens[0]);
  CommandResult missing = RunCommand({Binary("qeffctl"), "export", "--server", qeffd.address(), "--model",
                                      "qeff-test/not-downloaded"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos) << missing.err;
}

TEST_F(ServicesTest, EmbedThroughQeffdMatchesSentenceTransformersPooling) {
  const fs::path bert = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/bert";
  std::ifstream in(bert / "reference.json");
  json ref = json::parse(in);
  ServerProcess qeffd;
  ASSERT_TRUE(qeffd.Start(Binary("qeffd"), cache_)) << qeffd.error();
  std::vector<std::string> argv = {Binary("qeffctl"), "embed", "--server", qeffd.address(), "--model", bert.string(),
                                   "--seq-len", "32", "--normalize", "--json"};
  for (const auto& input : ref["inputs"]) {
    argv.push_back("--input-ids");
    argv.push_back(JoinIds(input["input_ids"].get<std::vector<int64_t>>()));
  }
  json j = RunJson(argv);
  ASSERT_EQ(j["embeddings"].size(), 2u);
  // all-MiniLM-style output: L2-normalized mean pooling; first8_row0 is HF's own value.
  const auto want = ref["outputs"]["mean_pooled_normalized"]["first8_row0"].get<std::vector<double>>();
  for (size_t d = 0; d < want.size(); ++d) EXPECT_NEAR(j["embeddings"][0][d].get<double>(), want[d], 1e-4) << d;
  // A causal LM refuses Embed, an encoder refuses Generate, with messages that say what to use.
  CommandResult gen = RunCommand({Binary("qeffctl"), "generate", "--server", qeffd.address(), "--model-id",
                                  j["qpc_key"].get<std::string>(), "--input-ids", "2,5,3"});
  EXPECT_NE(gen.exit_code, 0);
  EXPECT_NE(gen.err.find("Embed"), std::string::npos) << gen.err;
}

// Cross-encoder rerankers through the real qeffd and `qeffctl classify --json`: every (query,
// document) pair of the fixture as --input-ids with its --token-type-ids, on a compiled batch
// smaller than the number of pairs (the runner splits it), against HF's logits and sigmoid
// scores. Shapes (pairs, lengths, labels) come from reference.json.
TEST_F(ServicesTest, ClassifyThroughQeffdMatchesCrossEncoderLogits) {
  ServerProcess qeffd;
  ASSERT_TRUE(qeffd.Start(Binary("qeffd"), cache_)) << qeffd.error();
  for (const char* name : {"bert_cross_encoder", "xlm_roberta_reranker"}) {
    SCOPED_TRACE(name);
    const fs::path dir = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf" / name;
    std::ifstream in(dir / "reference.json");
    const json ref = json::parse(in);
    size_t longest = 0;
    for (const auto& input : ref["inputs"]) longest = std::max(longest, input["input_ids"].size());
    const size_t pairs = ref["inputs"].size();
    std::vector<std::string> argv = {Binary("qeffctl"), "classify", "--server", qeffd.address(), "--model",
                                     dir.string(), "--seq-len", std::to_string(longest), "--batch-size",
                                     std::to_string(std::max<size_t>(1, pairs - 1)), "--json"};
    for (const auto& input : ref["inputs"]) {
      argv.push_back("--input-ids");
      argv.push_back(JoinIds(input["input_ids"].get<std::vector<int64_t>>()));
      argv.push_back("--token-type-ids");
      argv.push_back(JoinIds(input["token_type_ids"].get<std::vector<int64_t>>()));
    }
    const json j = RunJson(argv);
    const json& want_logits = ref["outputs"]["logits"]["values"];
    const json& want_scores = ref["outputs"]["scores"]["values"];
    ASSERT_EQ(j["logits"].size(), pairs) << j.dump();
    ASSERT_EQ(j["scores"].size(), pairs);
    for (size_t i = 0; i < pairs; ++i) {
      ASSERT_EQ(j["logits"][i].size(), want_logits[i].size());
      for (size_t l = 0; l < want_logits[i].size(); ++l) {
        EXPECT_NEAR(j["logits"][i][l].get<double>(), want_logits[i][l].get<double>(), 1e-4) << "pair " << i;
        EXPECT_NEAR(j["scores"][i][l].get<double>(), want_scores[i][l].get<double>(), 1e-4) << "pair " << i;
      }
    }
    ASSERT_EQ(j["labels"].size(), want_logits[0].size());
    // A sequence longer than the compiled seq_len: INVALID_ARGUMENT naming both numbers.
    std::vector<int64_t> too_long(longest + 1, ref["inputs"][0]["input_ids"][1].get<int64_t>());
    CommandResult r = RunCommand({Binary("qeffctl"), "classify", "--server", qeffd.address(), "--model", dir.string(),
                                  "--seq-len", std::to_string(longest), "--batch-size",
                                  std::to_string(std::max<size_t>(1, pairs - 1)), "--input-ids", JoinIds(too_long)});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::to_string(longest + 1) + " tokens"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("seq_len is " + std::to_string(longest)), std::string::npos) << r.err;
    // Text pairs need the model's tokenizer, which these fixtures do not have.
    CommandResult t = RunCommand({Binary("qeffctl"), "classify", "--server", qeffd.address(), "--model", dir.string(),
                                  "--seq-len", std::to_string(longest), "--batch-size",
                                  std::to_string(std::max<size_t>(1, pairs - 1)), "--text", "a", "--text-pair", "b"});
    EXPECT_NE(t.exit_code, 0);
    EXPECT_NE(t.err.find("FAILED_PRECONDITION"), std::string::npos) << t.err;
    // With a tokenizer (a copy of the fixture with one over its made-up vocabulary), the same
    // pairs as --text / --text-pair: the runner tokenizes them with the pair template.
    const fs::path with_tok = cache_ / "models" / name;
    fs::create_directories(with_tok.parent_path());
    fs::copy(dir, with_tok, fs::copy_options::recursive);
    std::ifstream config_in(dir / "config.json");
    std::ofstream(with_tok / "tokenizer.json") << FixtureTokenizer(json::parse(config_in), ref).dump();
    argv = {Binary("qeffctl"), "classify", "--server", qeffd.address(), "--model", with_tok.string(),
            "--seq-len", std::to_string(longest), "--json"};
    for (const auto& input : ref["inputs"]) {
      argv.insert(argv.end(), {"--text", FixtureText(input["query_ids"].get<std::vector<int64_t>>()), "--text-pair",
                               FixtureText(input["document_ids"].get<std::vector<int64_t>>())});
    }
    const json tj = RunJson(argv);
    ASSERT_EQ(tj["logits"].size(), pairs) << tj.dump();
    for (size_t i = 0; i < pairs; ++i) {
      EXPECT_NEAR(tj["logits"][i][0].get<double>(), want_logits[i][0].get<double>(), 1e-4) << "text pair " << i;
    }
  }
  // Token types through embed: the bert fixture's all-zero types give the same embedding as none.
  const fs::path bert = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/bert";
  std::ifstream in(bert / "reference.json");
  const json ref = json::parse(in);
  const auto ids = ref["inputs"][0]["input_ids"].get<std::vector<int64_t>>();
  std::vector<std::string> argv = {Binary("qeffctl"), "embed", "--server", qeffd.address(), "--model", bert.string(),
                                   "--seq-len", std::to_string(ids.size()), "--json", "--input-ids", JoinIds(ids),
                                   "--token-type-ids", JoinIds(std::vector<int64_t>(ids.size(), 0))};
  const json e = RunJson(argv);
  const auto want = ref["outputs"]["mean_pooled"]["first8_row0"].get<std::vector<double>>();
  ASSERT_EQ(e["embeddings"].size(), 1u);
  for (size_t d = 0; d < want.size(); ++d) EXPECT_NEAR(e["embeddings"][0][d].get<double>(), want[d], 1e-4) << d;
  // A classifier refuses Embed, saying what to use.
  argv = {Binary("qeffctl"), "embed", "--server", qeffd.address(), "--model",
          (fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/bert_cross_encoder").string(), "--input-ids", JoinIds(ids)};
  CommandResult bad = RunCommand(argv);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("Classify"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace qeff::testing
