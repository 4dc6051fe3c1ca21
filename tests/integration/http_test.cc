// The OpenAI-compatible HTTP API of the real qeffd (and qeff-runner's --metrics-listen) on
// 127.0.0.1, driven by clients nobody here wrote: the official `openai` npm SDK
// (tests/node/openai_*.js) and curl. Models come from --serve at start-up: the GPT-2 fixture
// (continuous batching, ctx 64), a copy of it with a ChatML chat template, the BERT fixture, and
// a slower random GPT-2 for the disconnect / queue-full / readiness checks; /v1/rerank on the two
// reranker fixtures (copies with a tokenizer over their made-up vocabularies) through curl.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/fixture_tokenizer.h"
#include "tests/integration/process.h"

extern char** environ;

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = QEFF_SOURCE_DIR;
const fs::path kGpt2 = kSource / "tests/fixtures/hf/gpt2";
const fs::path kBert = kSource / "tests/fixtures/hf/bert";
const fs::path kNode = kSource / "tests/node";

// ChatML, as Qwen's tokenizer_config.json writes it.
constexpr char kChatMl[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin");
  std::string d;
  while (std::getline(dirs, d, ':')) {
    const fs::path p = fs::path(d) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "/usr/bin/" + name;
}

struct HttpResult {
  int status = 0;  // 0: no HTTP response (curl failed; see curl_exit)
  int curl_exit = 0;
  std::string body;
  json json_body;
};

// curl -s <args> URL; the status code comes from -w.
HttpResult Curl(std::vector<std::string> args) {
  std::vector<std::string> argv = {FindInPath("curl"), "-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  HttpResult h;
  h.curl_exit = r.exit_code;
  const size_t nl = r.out.rfind('\n');
  if (nl != std::string::npos) {
    h.status = std::atoi(r.out.c_str() + nl + 1);
    h.body = r.out.substr(0, nl);
  }
  h.json_body = json::parse(h.body, nullptr, false);
  return h;
}

HttpResult Post(const std::string& url, const std::string& body) {
  return Curl({"-H", "Content-Type: application/json", "--data-binary", body, url});
}

// qeffd / qeff-runner started with --http-listen (or --metrics-listen) 127.0.0.1:0: reads the
// "http listening on", "metrics listening on" and gRPC "listening on" lines from its stdout.
class Server {
 public:
  ~Server() { Stop(SIGKILL); }

  bool Start(const std::string& binary, std::vector<std::string> args) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return false;
    std::vector<std::string> all = {binary, "--listen", "127.0.0.1:0"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      pid_ = -1;
      return false;
    }
    out_ = out[0];
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    char c;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      if (::read(out_, &c, 1) != 1) return false;
      if (c != '\n') {
        line.push_back(c);
        continue;
      }
      for (auto [prefix, dst] : {std::pair{"http listening on ", &http_}, std::pair{"metrics listening on ", &metrics_},
                                 std::pair{"listening on ", &grpc_}}) {
        if (line.rfind(prefix, 0) == 0) {
          *dst = line.substr(std::string(prefix).size());
          break;
        }
      }
      if (!grpc_.empty()) return true;
      line.clear();
    }
    return false;
  }
  std::string Url(const std::string& path) const { return "http://" + http_ + path; }
  std::string MetricsUrl(const std::string& path) const { return "http://" + metrics_ + path; }
  const std::string& http() const { return http_; }
  const std::string& grpc() const { return grpc_; }

  // Polls GET /health until 200; returns the statuses seen, first to last.
  std::vector<int> WaitHealthy(int seconds = 120) {
    std::vector<int> seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      HttpResult h = Curl({Url("/health")});
      if (seen.empty() || seen.back() != h.status) seen.push_back(h.status);
      if (h.status == 200) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return seen;
  }

  // Sends `sig` and waits up to `seconds`; returns waitpid's status (-1 on timeout: killed).
  int Stop(int sig, int seconds = 30) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    if (out_ >= 0) ::close(out_);
    out_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string http_, metrics_, grpc_;
};

CommandResult Node(const std::string& script, std::vector<std::string> args) {
  std::vector<std::string> argv = {FindInPath("node"), (kNode / script).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

class HttpTest : public ::testing::Test {
 protected:
  // One cache for the whole suite: the fixtures are exported and compiled once.
  static void SetUpTestSuite() {
    suite_dir_ = fs::temp_directory_path() / ("qeff-http-" + std::to_string(::getpid()));
    fs::remove_all(suite_dir_);
    fs::create_directories(suite_dir_ / "cache");
    // The GPT-2 fixture with a chat template (the fixture itself has none).
    const fs::path chat = suite_dir_ / "gpt2-chat";
    fs::copy(kGpt2, chat, fs::copy_options::recursive);
    std::ifstream in(chat / "tokenizer_config.json");
    json config = json::parse(in);
    in.close();
    config["chat_template"] = kChatMl;
    std::ofstream(chat / "tokenizer_config.json") << config.dump(2);
  }
  static void TearDownTestSuite() { fs::remove_all(suite_dir_); }

  static std::vector<std::string> ServeFixtures() {
    return {"--cache-dir", (suite_dir_ / "cache").string(), "--http-listen", "127.0.0.1:0",
            "--serve", kGpt2.string() + ",id=gpt2,ctx_len=64,prefill_seq_len=8,full_batch_size=4",
            "--serve", (suite_dir_ / "gpt2-chat").string() + ",id=gpt2-chat,ctx_len=64,prefill_seq_len=8,full_batch_size=4",
            "--serve", kBert.string() + ",id=bert"};
  }
  void StartFixtures() {
    ASSERT_TRUE(server_.Start(Binary("qeffd"), ServeFixtures())) << "qeffd did not start";
    ASSERT_FALSE(server_.http().empty());
    const std::vector<int> seen = server_.WaitHealthy();
    ASSERT_EQ(seen.back(), 200);
    for (int s : seen) EXPECT_TRUE(s == 503 || s == 200) << s;  // 503 while loading, then ready
  }
  void ExpectNodeOk(const std::string& script, std::vector<std::string> args) {
    CommandResult r = Node(script, std::move(args));
    std::printf("%s", r.out.c_str());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  static fs::path suite_dir_;
  Server server_;
};
fs::path HttpTest::suite_dir_;

TEST_F(HttpTest, OpenAiSdkCompletionsChatAndEmbeddings) {
  StartFixtures();
  ExpectNodeOk("openai_api.js", {server_.Url(""), kSource.string()});
}

TEST_F(HttpTest, MetricsParseStrictlyAndCountTheRequests) {
  StartFixtures();
  ExpectNodeOk("openai_metrics.js", {server_.Url("")});
  HttpResult m = Curl({server_.Url("/metrics")});
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("# TYPE qeff:e2e_request_latency_seconds histogram"), std::string::npos);
}

TEST_F(HttpTest, BadRequestsGetOpenAiErrorsAndTheServerKeepsServing) {
  StartFixtures();
  const std::string completions = server_.Url("/v1/completions");
  auto expect_error = [&](const HttpResult& h, int status, const std::string& what) {
    EXPECT_EQ(h.status, status) << what << ": " << h.body;
    ASSERT_TRUE(h.json_body.is_object()) << what << ": " << h.body;
    const json& e = h.json_body["error"];
    ASSERT_TRUE(e.is_object()) << what;
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(k)) << what << " lacks " << k;
    EXPECT_GT(e.value("message", "").size(), 10u) << what;
    // ... and a good request right after still works.
    HttpResult ok = Post(completions, R"({"model":"gpt2","prompt":"Hello","max_tokens":2,"temperature":0})");
    EXPECT_EQ(ok.status, 200) << "after " << what << ": " << ok.body;
  };
  expect_error(Post(completions, "{\"model\": \"gpt2\", \"prompt\": "), 400, "malformed JSON");
  expect_error(Post(completions, ""), 400, "empty body");
  expect_error(Post(completions, "[1, 2]"), 400, "not an object");
  expect_error(Post(completions, R"({"model":"nope","prompt":"x"})"), 404, "unknown model");
  expect_error(Post(completions, R"({"model":"gpt2","prompt":"x","max_tokens":-5})"), 400, "negative max_tokens");
  expect_error(Post(completions, R"({"model":"gpt2","prompt":"x","max_tokens":"5"})"), 400, "max_tokens as a string");
  expect_error(Post(completions, R"({"model":7,"prompt":"x"})"), 400, "model as a number");
  expect_error(Post(completions, R"({"model":"gpt2","prompt":"x","stream":"yes"})"), 400, "stream as a string");
  expect_error(Post(completions, R"({"model":"gpt2","prompt":"x","top_p":1.5})"), 400, "top_p out of range");
  expect_error(Post(completions, R"({"model":"gpt2","prompt":"x","stream_options":{"include_usage":true}})"), 400,
               "stream_options without stream");
  json long_prompt = {{"model", "gpt2"}, {"prompt", std::vector<int>(64, 464)}};
  HttpResult too_long = Post(completions, long_prompt.dump());
  expect_error(too_long, 400, "prompt longer than the context");
  EXPECT_NE(too_long.body.find("context of 64"), std::string::npos) << too_long.body;
  EXPECT_EQ(too_long.json_body["error"].value("param", ""), "prompt");
  // A body over the 8 MiB limit: 413 before it is read.
  const fs::path big = suite_dir_ / "big.json";
  {
    std::ofstream out(big);
    out << R"({"model":"gpt2","prompt":")" << std::string(9 << 20, 'a') << "\"}";
  }
  expect_error(Curl({"-H", "Content-Type: application/json", "--data-binary", "@" + big.string(), completions}), 413,
               "huge body");
  expect_error(Curl({server_.Url("/v1/nothing")}), 404, "unknown route");
  expect_error(Post(server_.Url("/v1/chat/completions"), R"({"model":"gpt2-chat","messages":"hi"})"), 400,
               "messages as a string");
  expect_error(Post(server_.Url("/v1/embeddings"), R"({"model":"bert"})"), 400, "embeddings without input");
  // null means "not given"; unknown fields are fine.
  HttpResult lax = Post(completions, R"({"model":"gpt2","prompt":"Hi","max_tokens":null,"temperature":0,"foo":1})");
  EXPECT_EQ(lax.status, 200) << lax.body;
  EXPECT_EQ(lax.json_body["usage"].value("completion_tokens", 0), 16);
}

// POST /v1/rerank (Jina / Cohere / TEI shape) on copies of the reranker fixtures with a
// tokenizer whose words map to the fixtures' ids (tests/integration/fixture_tokenizer.h): each
// fixture pair as (query, [document]) gives HF's sigmoid score; several documents come back
// sorted by score, cut by top_n, with or without the documents; bad requests get 400 / 404 in
// OpenAI's error shape naming the field. Shapes come from reference.json.
TEST_F(HttpTest, RerankMatchesCrossEncoderScores) {
  const std::vector<std::string> names = {"bert_cross_encoder", "xlm_roberta_reranker"};
  std::vector<std::string> args = {"--cache-dir", (suite_dir_ / "cache").string(), "--http-listen", "127.0.0.1:0"};
  std::map<std::string, json> refs;
  size_t longest = 0;
  for (const auto& name : names) {
    const fs::path src = kSource / "tests/fixtures/hf" / name;
    const fs::path dst = suite_dir_ / ("rerank-" + name);
    fs::remove_all(dst);
    fs::copy(src, dst, fs::copy_options::recursive);
    std::ifstream ref_in(src / "reference.json"), config_in(src / "config.json");
    refs[name] = json::parse(ref_in);
    std::ofstream(dst / "tokenizer.json") << FixtureTokenizer(json::parse(config_in), refs[name]).dump();
    // Room for any query with any document (and four special tokens).
    size_t query = 0, doc = 0;
    for (const auto& in : refs[name]["inputs"]) {
      query = std::max(query, in["query_ids"].size());
      doc = std::max(doc, in["document_ids"].size());
    }
    longest = std::max(longest, query + doc + 4);
  }
  for (const auto& name : names) {
    args.insert(args.end(), {"--serve", (suite_dir_ / ("rerank-" + name)).string() + ",id=" + name +
                                            ",prefill_seq_len=" + std::to_string(longest)});
  }
  // The plain fixture (no tokenizer) and an embedding model, for the errors.
  args.insert(args.end(), {"--serve", (kSource / "tests/fixtures/hf/bert_cross_encoder").string() + ",id=no-tokenizer",
                           "--serve", kBert.string() + ",id=bert"});
  ASSERT_TRUE(server_.Start(Binary("qeffd"), args)) << "qeffd did not start";
  ASSERT_EQ(server_.WaitHealthy().back(), 200);
  const std::string url = server_.Url("/v1/rerank");
  auto text = [](const json& ids) { return FixtureText(ids.get<std::vector<int64_t>>()); };

  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const json& ref = refs[name];
    const json& scores = ref["outputs"]["scores"]["values"];
    for (size_t i = 0; i < ref["inputs"].size(); ++i) {
      const json& in = ref["inputs"][i];
      const json body = {{"model", name}, {"query", text(in["query_ids"])}, {"documents", {text(in["document_ids"])}}};
      HttpResult h = Post(url, body.dump());
      ASSERT_EQ(h.status, 200) << h.body;
      EXPECT_EQ(h.json_body["model"], name);
      ASSERT_EQ(h.json_body["results"].size(), 1u) << h.body;
      const json& r = h.json_body["results"][0];
      EXPECT_EQ(r["index"], 0);
      EXPECT_NEAR(r["relevance_score"].get<double>(), scores[i][0].get<double>(), 1e-4) << "pair " << i;
      EXPECT_EQ(r["document"]["text"], text(in["document_ids"]));
      EXPECT_EQ(h.json_body["usage"]["total_tokens"], in["input_ids"].size());
    }
    // Every document for the first query: sorted by score, pair 0's score where document 0 lands.
    json docs = json::array();
    for (size_t i = 0; i < ref["inputs"].size(); ++i) {
      const std::string d = text(ref["inputs"][i]["document_ids"]);
      if (i % 2 == 0) docs.push_back(d);
      else docs.push_back({{"text", d}});  // Cohere v1 / Jina objects
    }
    const std::string query = text(ref["inputs"][0]["query_ids"]);
    HttpResult all = Post(url, json{{"model", name}, {"query", query}, {"documents", docs}}.dump());
    ASSERT_EQ(all.status, 200) << all.body;
    const json& results = all.json_body["results"];
    ASSERT_EQ(results.size(), docs.size());
    for (size_t k = 0; k < results.size(); ++k) {
      if (k > 0) {
        EXPECT_GE(results[k - 1]["relevance_score"].get<double>(), results[k]["relevance_score"].get<double>());
      }
      if (results[k]["index"] == 0) {
        EXPECT_NEAR(results[k]["relevance_score"].get<double>(), scores[0][0].get<double>(), 1e-4);
      }
    }
    HttpResult top = Post(url, json{{"model", name}, {"query", query}, {"documents", docs}, {"top_n", 1},
                                    {"return_documents", false}}
                                   .dump());
    ASSERT_EQ(top.status, 200) << top.body;
    ASSERT_EQ(top.json_body["results"].size(), 1u);
    EXPECT_EQ(top.json_body["results"][0]["index"], results[0]["index"]);
    EXPECT_FALSE(top.json_body["results"][0].contains("document"));
  }

  auto expect_error = [&](const HttpResult& h, int status, const std::string& param, const std::string& what) {
    EXPECT_EQ(h.status, status) << what << ": " << h.body;
    ASSERT_TRUE(h.json_body.is_object() && h.json_body["error"].is_object()) << what << ": " << h.body;
    if (!param.empty()) {
      EXPECT_EQ(h.json_body["error"].value("param", ""), param) << what << ": " << h.body;
    }
    EXPECT_GT(h.json_body["error"].value("message", "").size(), 10u) << what;
  };
  const std::string m = names[0];
  expect_error(Post(url, json{{"model", m}, {"documents", {"t5"}}}.dump()), 400, "query", "no query");
  expect_error(Post(url, json{{"model", m}, {"query", "t5"}}.dump()), 400, "documents", "no documents");
  expect_error(Post(url, json{{"model", m}, {"query", "t5"}, {"documents", json::array()}}.dump()), 400, "documents",
               "empty documents");
  expect_error(Post(url, json{{"model", m}, {"query", "t5"}, {"documents", {5}}}.dump()), 400, "documents",
               "a number as a document");
  expect_error(Post(url, json{{"model", m}, {"query", "t5"}, {"documents", {"t6"}}, {"top_n", 0}}.dump()), 400, "top_n",
               "top_n 0");
  expect_error(Post(url, json{{"model", "nope"}, {"query", "t5"}, {"documents", {"t6"}}}.dump()), 404, "", "unknown model");
  expect_error(Post(url, json{{"model", "bert"}, {"query", "t5"}, {"documents", {"t6"}}}.dump()), 400, "model",
               "an embedding model");
  HttpResult no_tok = Post(url, json{{"model", "no-tokenizer"}, {"query", "t5"}, {"documents", {"t6"}}}.dump());
  expect_error(no_tok, 400, "model", "a model without a tokenizer");
  EXPECT_NE(no_tok.body.find("tokenizer"), std::string::npos) << no_tok.body;
  // A pair longer than the compiled seq_len: the numbers, and what to do.
  HttpResult too_long = Post(url, json{{"model", m}, {"query", "t5"},
                                       {"documents", {FixtureText(std::vector<int64_t>(longest, 6))}}}
                                      .dump());
  expect_error(too_long, 400, "documents", "a document longer than the compiled seq_len");
  EXPECT_NE(too_long.body.find("seq_len is " + std::to_string(longest)), std::string::npos) << too_long.body;
  // The cross-encoder is not an embedding model, and the no-route message lists /v1/rerank.
  expect_error(Post(server_.Url("/v1/embeddings"), json{{"model", m}, {"input", "t5"}}.dump()), 400, "model",
               "embeddings on a cross-encoder");
  HttpResult no_route = Post(server_.Url("/v1/rerank/x"), "{}");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_NE(no_route.body.find("/v1/rerank"), std::string::npos) << no_route.body;
}

TEST_F(HttpTest, CurlStreamsServerSentEvents) {
  StartFixtures();
  HttpResult s = Curl({"-N", "-H", "Content-Type: application/json", "--data-binary",
                       R"({"model":"gpt2","prompt":"Once upon a time, there was a","max_tokens":16,"temperature":0,"stream":true})",
                       server_.Url("/v1/completions")});
  ASSERT_EQ(s.status, 200) << s.body;
  std::ifstream in(kGpt2 / "reference.json");
  const std::string want = json::parse(in)["outputs"]["generation"][0]["decoded_new_text"];
  std::string text, finish;
  int events = 0;
  bool done = false;
  std::istringstream lines(s.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    ASSERT_FALSE(done) << "an event after [DONE]";
    if (line == "data: [DONE]") {
      done = true;
      continue;
    }
    const json ev = json::parse(line.substr(6));
    ++events;
    text += ev["choices"][0].value("text", "");
    if (!ev["choices"][0]["finish_reason"].is_null()) finish = ev["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_GT(events, 1);
  EXPECT_EQ(text, want);
  EXPECT_EQ(finish, "length");
}

TEST_F(HttpTest, SigtermStopsBothListeners) {
  StartFixtures();
  const std::string grpc = server_.grpc();
  const int status = server_.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // Both listeners are gone: connection refused (curl exit 7).
  EXPECT_EQ(Curl({server_.Url("/health")}).curl_exit, 7);
  EXPECT_EQ(Curl({"http://" + grpc + "/"}).curl_exit, 7);
}

TEST_F(HttpTest, ReadinessClientDisconnectQueueFullAndSigtermMidStream) {
  // A slower model in a fresh cache: export + compile + load take long enough to see /health 503.
  const fs::path model = suite_dir_ / "busy";
  CommandResult gen = RunCommand({Binary("qeff-make-random-model"), "--out", model.string(), "--n-layer", "4",
                                  "--n-embd", "256", "--n-head", "4", "--vocab", "50257", "--n-positions", "1024",
                                  "--tokenizer-from", kGpt2.string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ASSERT_TRUE(server_.Start(Binary("qeffd"), {"--cache-dir", (suite_dir_ / "busy-cache").string(), "--http-listen",
                                              "127.0.0.1:0", "--max-active-slots", "1", "--max-queued-requests", "1",
                                              "--serve", model.string() + ",id=busy,ctx_len=1024,prefill_seq_len=32,full_batch_size=2"}));
  HttpResult early = Curl({server_.Url("/health")});
  EXPECT_EQ(early.status, 503) << early.body;
  EXPECT_NE(early.body.find("busy"), std::string::npos) << early.body;
  HttpResult loading = Post(server_.Url("/v1/completions"), R"({"model":"busy","prompt":[464]})");
  EXPECT_EQ(loading.status, 503) << loading.body;  // still loading: retry, not "no such model"
  EXPECT_EQ(server_.WaitHealthy().back(), 200);
  ExpectNodeOk("openai_disconnect.js", {server_.Url("")});

  // SIGTERM while a long stream runs: the stream ends with an error event and [DONE], the
  // process exits 0, and both listeners are gone.
  HttpResult streamed;
  std::thread client([&] {
    streamed = Curl({"-N", "-H", "Content-Type: application/json", "--data-binary",
                     R"({"model":"busy","prompt":[464],"max_tokens":1000,"stream":true})", server_.Url("/v1/completions")});
  });
  for (int i = 0; i < 500; ++i) {
    if (Curl({server_.Url("/metrics")}).body.find("qeff:num_requests_running{model_name=\"busy\"} 1") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string grpc = server_.grpc(), health = server_.Url("/health");
  const int status = server_.Stop(SIGTERM);
  client.join();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(streamed.status, 200);
  EXPECT_EQ(streamed.curl_exit, 0);
  const size_t error = streamed.body.find(R"(data: {"error":{"message":"the server is shutting down")");
  EXPECT_NE(error, std::string::npos) << streamed.body.substr(0, 300);
  EXPECT_NE(streamed.body.find("data: [DONE]", error), std::string::npos);
  EXPECT_EQ(Curl({health}).curl_exit, 7);
  EXPECT_EQ(Curl({"http://" + grpc + "/"}).curl_exit, 7);
}

TEST_F(HttpTest, BadServeSpecsFailAtStartup) {
  struct Case {
    std::string spec, message;
  } cases[] = {
      {kGpt2.string() + ",ctx_len=abc", "'ctx_len' must be a non-negative integer"},
      {kGpt2.string() + ",color=blue", "unknown key 'color'"},
      {kGpt2.string() + ",ctx_len=64,ctx_len=32", "given twice"},
      {kGpt2.string() + ",weight_dtype=fp8", "weight_dtype must be fp32, bf16, int8 or int4"},
      {kGpt2.string() + ",prefill_seq_len=128,ctx_len=64", "prefill_seq_len"},
      {(suite_dir_ / "no-such-model").string(), "no-such-model"},
      {",id=x", "MODEL is empty"},
  };
  for (const auto& c : cases) {
    CommandResult r = RunCommand({Binary("qeffd"), "--listen", "127.0.0.1:0", "--cache-dir",
                                  (suite_dir_ / "cache").string(), "--serve", c.spec});
    EXPECT_EQ(r.exit_code, 2) << c.spec;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.spec << ": " << r.err;
    EXPECT_EQ(r.out.find("listening on"), std::string::npos) << "it must fail before listening";
  }
  // Two specs with the same id.
  CommandResult dup = RunCommand({Binary("qeffd"), "--listen", "127.0.0.1:0", "--cache-dir",
                                  (suite_dir_ / "cache").string(), "--serve", kGpt2.string() + ",id=a", "--serve",
                                  kBert.string() + ",id=a"});
  EXPECT_EQ(dup.exit_code, 2);
  EXPECT_NE(dup.err.find("already taken"), std::string::npos) << dup.err;
  // A spec that parses but cannot be exported: the server came up, then stops with exit code 1.
  const fs::path foo = suite_dir_ / "foo";
  fs::create_directories(foo);
  std::ofstream(foo / "config.json") << R"({"architectures": ["FooForCausalLM"], "model_type": "foo"})";
  CommandResult fails = RunCommand({Binary("qeffd"), "--listen", "127.0.0.1:0", "--cache-dir",
                                    (suite_dir_ / "cache").string(), "--serve", foo.string()});
  EXPECT_EQ(fails.exit_code, 1) << fails.err;
  EXPECT_NE(fails.err.find("export failed: architecture FooForCausalLM is not supported"), std::string::npos) << fails.err;
}

TEST_F(HttpTest, RunnerServesMetricsOnItsOwnListener) {
  ASSERT_TRUE(server_.Start(Binary("qeff-runner"),
                            {"--cache-dir", (suite_dir_ / "cache").string(), "--metrics-listen", "127.0.0.1:0", "--serve",
                             kGpt2.string() + ",id=gpt2,ctx_len=64,prefill_seq_len=8,full_batch_size=4"}));
  ASSERT_TRUE(server_.http().empty());
  const std::string metrics = server_.MetricsUrl("/metrics");
  // The gauges appear once the --serve model is loaded.
  HttpResult m;
  for (int i = 0; i < 600; ++i) {
    m = Curl({metrics});
    if (m.body.find("qeff:num_requests_running{model_name=\"gpt2\"} 0") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("qeff:kv_cache_usage_perc{model_name=\"gpt2\"} 0"), std::string::npos) << m.body;
  // Only /metrics there.
  EXPECT_EQ(Curl({server_.MetricsUrl("/v1/models")}).status, 404);
  EXPECT_EQ(WEXITSTATUS(server_.Stop(SIGTERM)), 0);
  EXPECT_EQ(Curl({metrics}).curl_exit, 7);
}

}  // namespace
}  // namespace qeff::testing
