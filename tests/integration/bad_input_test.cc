// Bad input on every RPC and HTTP route of a real qeffd: each case gets the right gRPC code or
// HTTP status and a message that says what to do (not empty, not a bare code), and afterwards the
// server still answers health checks and a normal generation.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qeff/v1/compiler.grpc.pb.h"
#include "qeff/v1/exporter.grpc.pb.h"
#include "qeff/v1/runner.grpc.pb.h"
#include "tests/integration/process.h"

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";
const fs::path kBert = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/bert";
const std::string kNoKey = "0123456789abcdef0123456789abcdef";

struct HttpResult {
  int status = 0;
  std::string body;
};

HttpResult Http(const std::string& method, const std::string& url, const std::string& body,
                const std::string& content_type = "application/json") {
  std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-S", "--max-time", "60", "-X", method,
                                   "-w", "\n%{http_code}"};
  if (!body.empty()) {
    argv.insert(argv.end(), {"-H", "Content-Type: " + content_type, "--data-binary", body});
  }
  argv.push_back(url);
  CommandResult r = RunCommand(argv);
  HttpResult h;
  const size_t nl = r.out.rfind('\n');
  if (nl != std::string::npos) {
    h.status = std::atoi(r.out.c_str() + nl + 1);
    h.body = r.out.substr(0, nl);
  }
  return h;
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("qeff-bad-" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "cache");
    server_ = new ServerProcess;
    ASSERT_TRUE(server_->Start(Binary("qeffd"), (*dir_ / "cache").string(),
                               {"--http-listen", "127.0.0.1:0", "--serve",
                                kGpt2.string() + ",id=gpt2,ctx_len=64,prefill_seq_len=8"}))
        << server_->error();
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    // Wait for the --serve model.
    for (int i = 0; i < 600 && Http("GET", Url("/health"), "").status != 200; ++i) ::usleep(100000);
    ASSERT_EQ(Http("GET", Url("/health"), "").status, 200);
    // A loaded encoder too, for Embed.
    CommandResult embed = RunCommand({Binary("qeffctl"), "embed", "--server", server_->address(), "--model",
                                      kBert.string(), "--input-ids", "2,5,3", "--seq-len", "16"});
    ASSERT_EQ(embed.exit_code, 0) << embed.err;
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Url(const std::string& path) { return "http://" + server_->address("http") + path; }

  static fs::path* dir_;
  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};
fs::path* BadInputTest::dir_ = nullptr;
ServerProcess* BadInputTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* BadInputTest::channel_ = nullptr;

struct GrpcCase {
  std::string name;
  std::function<grpc::Status()> call;
  grpc::StatusCode code;
};

template <typename Req, typename Resp, typename Stub, typename Method>
grpc::Status Unary(Stub& stub, Method m, const Req& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  Resp resp;
  return (stub.*m)(&ctx, req, &resp);
}

template <typename Req, typename Event, typename Stub, typename Method>
grpc::Status Streaming(Stub& stub, Method m, const Req& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = (stub.*m)(&ctx, req);
  Event ev;
  while (reader->Read(&ev)) {
  }
  return reader->Finish();
}

qeff::v1::GenerateRequest Gen(const std::function<void(qeff::v1::GenerateRequest&)>& edit) {
  qeff::v1::GenerateRequest r;
  r.set_model_id("gpt2");
  r.add_input_ids(15496);
  r.add_input_ids(995);
  r.set_max_new_tokens(2);
  edit(r);
  return r;
}

TEST_F(BadInputTest, EveryRpcAndRouteAnswersBadInputClearlyAndKeepsServing) {
  auto exporter = qeff::v1::Exporter::NewStub(*channel_);
  auto compiler = qeff::v1::Compiler::NewStub(*channel_);
  auto runner = qeff::v1::Runner::NewStub(*channel_);
  using qeff::v1::Compiler;
  using qeff::v1::Exporter;
  using qeff::v1::Runner;
  using C = grpc::StatusCode;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();

  auto exp = [&](const std::string& model, const std::string& revision = "") {
    qeff::v1::ExportRequest r;
    r.set_model(model);
    r.set_revision(revision);
    return Streaming<qeff::v1::ExportRequest, qeff::v1::ExportEvent>(*exporter, &Exporter::Stub::Export, r);
  };
  auto comp = [&](const std::function<void(qeff::v1::CompileRequest&)>& edit) {
    qeff::v1::CompileRequest r;
    r.set_export_key(kNoKey);
    edit(r);
    return Streaming<qeff::v1::CompileRequest, qeff::v1::CompileEvent>(*compiler, &Compiler::Stub::Compile, r);
  };
  auto gen = [&](const std::function<void(qeff::v1::GenerateRequest&)>& edit) {
    return Streaming<qeff::v1::GenerateRequest, qeff::v1::GenerateEvent>(*runner, &Runner::Stub::Generate, Gen(edit));
  };
  auto load = [&](const std::string& key, const std::string& id) {
    qeff::v1::LoadRequest r;
    r.set_qpc_key(key);
    r.set_model_id(id);
    return Unary<qeff::v1::LoadRequest, qeff::v1::LoadResponse>(*runner, &Runner::Stub::Load, r);
  };
  auto embed = [&](const std::string& id, const std::vector<std::vector<int64_t>>& inputs,
                   const std::string& pooling = "") {
    qeff::v1::EmbedRequest r;
    r.set_model_id(id);
    for (const auto& in : inputs) {
      auto* t = r.add_inputs();
      for (int64_t v : in) t->add_ids(v);
    }
    r.set_pooling(pooling);
    return Unary<qeff::v1::EmbedRequest, qeff::v1::EmbedResponse>(*runner, &Runner::Stub::Embed, r);
  };
  auto tok = [&](const std::string& id, const std::string& text) {
    qeff::v1::TokenizeRequest r;
    r.set_model_id(id);
    r.set_text(text);
    return Unary<qeff::v1::TokenizeRequest, qeff::v1::TokenizeResponse>(*runner, &Runner::Stub::Tokenize, r);
  };
  auto detok = [&](const std::string& id, const std::vector<int64_t>& ids) {
    qeff::v1::DetokenizeRequest r;
    r.set_model_id(id);
    for (int64_t v : ids) r.add_ids(v);
    return Unary<qeff::v1::DetokenizeRequest, qeff::v1::DetokenizeResponse>(*runner, &Runner::Stub::Detokenize, r);
  };
  const std::string embed_id = [&] {
    qeff::v1::ListResponse list;
    grpc::ClientContext ctx;
    runner->List(&ctx, qeff::v1::ListRequest(), &list);
    for (const auto& m : list.models())
      if (m.model_id() != "gpt2") return m.model_id();
    return std::string("?");
  }();

  const std::vector<GrpcCase> grpc_cases = {
      {"export: empty model", [&] { return exp(""); }, C::INVALID_ARGUMENT},
      {"export: missing folder", [&] { return exp((*dir_ / "missing").string()); }, C::NOT_FOUND},
      {"export: NUL in path", [&] { return exp(std::string("/tmp\0/x", 7)); }, C::INVALID_ARGUMENT},
      {"export: 10 KB path", [&] { return exp(std::string(10000, 'a')); }, C::INVALID_ARGUMENT},
      {"export: bad hub revision", [&] { return exp("org/name", "../../x"); }, C::INVALID_ARGUMENT},
      {"export: folder without config.json", [&] { return exp((*dir_ / "cache").string()); }, C::NOT_FOUND},
      {"compile: bad key", [&] { return comp([](auto& r) { r.set_export_key("../../etc"); }); }, C::INVALID_ARGUMENT},
      {"compile: missing export", [&] { return comp([](auto&) {}); }, C::NOT_FOUND},
      {"compile: unknown target", [&] { return comp([](auto& r) { r.set_target("gpu"); }); }, C::INVALID_ARGUMENT},
      {"compile: ctx_len too large", [&] { return comp([](auto& r) { r.set_ctx_len(1 << 30); }); },
       C::INVALID_ARGUMENT},
      {"compile: negative ctx_len", [&] { return comp([](auto& r) { r.set_ctx_len(-5); }); }, C::INVALID_ARGUMENT},
      {"compile: prefill longer than ctx", [&] {
         return comp([](auto& r) {
           r.set_ctx_len(16);
           r.set_prefill_seq_len(32);
         });
       },
       C::INVALID_ARGUMENT},
      {"compile: num_cores 100000", [&] { return comp([](auto& r) { r.set_num_cores(100000); }); },
       C::INVALID_ARGUMENT},
      {"compile: bad weight dtype", [&] { return comp([](auto& r) { r.set_weight_dtype("int3"); }); },
       C::INVALID_ARGUMENT},
      {"compile: negative batch", [&] { return comp([](auto& r) { r.set_batch_size(-1); }); }, C::INVALID_ARGUMENT},
      {"compile: huge full_batch_size", [&] { return comp([](auto& r) { r.set_full_batch_size(100000); }); },
       C::INVALID_ARGUMENT},
      {"load: bad key", [&] { return load("zz", "x"); }, C::INVALID_ARGUMENT},
      {"load: missing qpc", [&] { return load(kNoKey, "x"); }, C::NOT_FOUND},
      {"load: id too long", [&] { return load(kNoKey, std::string(5000, 'i')); }, C::INVALID_ARGUMENT},
      {"unload: unknown id",
       [&] {
         qeff::v1::UnloadRequest r;
         r.set_model_id("nope");
         return Unary<qeff::v1::UnloadRequest, qeff::v1::UnloadResponse>(*runner, &Runner::Stub::Unload, r);
       },
       C::NOT_FOUND},
      {"generate: unknown model", [&] { return gen([](auto& r) { r.set_model_id("nope"); }); }, C::NOT_FOUND},
      {"generate: no prompt", [&] { return gen([](auto& r) { r.clear_input_ids(); }); }, C::INVALID_ARGUMENT},
      {"generate: prompt and ids", [&] { return gen([](auto& r) { r.set_prompt("hi"); }); }, C::INVALID_ARGUMENT},
      {"generate: token id past vocab", [&] { return gen([](auto& r) { r.add_input_ids(1 << 30); }); },
       C::INVALID_ARGUMENT},
      {"generate: negative token id", [&] { return gen([](auto& r) { r.add_input_ids(-3); }); },
       C::INVALID_ARGUMENT},
      {"generate: prompt longer than ctx",
       [&] {
         return gen([](auto& r) {
           for (int i = 0; i < 100; ++i) r.add_input_ids(50);
         });
       },
       C::INVALID_ARGUMENT},
      {"generate: negative max_new_tokens", [&] { return gen([](auto& r) { r.set_max_new_tokens(-1); }); },
       C::INVALID_ARGUMENT},
      {"generate: NaN temperature", [&] { return gen([&](auto& r) { r.mutable_sampling()->set_temperature(nan); }); },
       C::INVALID_ARGUMENT},
      {"generate: inf temperature", [&] { return gen([&](auto& r) { r.mutable_sampling()->set_temperature(inf); }); },
       C::INVALID_ARGUMENT},
      {"generate: negative temperature",
       [&] { return gen([](auto& r) { r.mutable_sampling()->set_temperature(-1); }); }, C::INVALID_ARGUMENT},
      {"generate: top_p 2", [&] { return gen([](auto& r) { r.mutable_sampling()->set_top_p(2); }); },
       C::INVALID_ARGUMENT},
      {"generate: NaN top_p", [&] { return gen([&](auto& r) { r.mutable_sampling()->set_top_p(nan); }); },
       C::INVALID_ARGUMENT},
      {"generate: negative top_k", [&] { return gen([](auto& r) { r.mutable_sampling()->set_top_k(-4); }); },
       C::INVALID_ARGUMENT},
      {"generate: NaN repetition penalty",
       [&] { return gen([&](auto& r) { r.mutable_sampling()->set_repetition_penalty(nan); }); }, C::INVALID_ARGUMENT},
      {"generate: inf frequency penalty",
       [&] { return gen([&](auto& r) { r.mutable_sampling()->set_frequency_penalty(inf); }); }, C::INVALID_ARGUMENT},
      {"generate: NaN presence penalty",
       [&] { return gen([&](auto& r) { r.mutable_sampling()->set_presence_penalty(nan); }); }, C::INVALID_ARGUMENT},
      {"generate: NaN min_p", [&] { return gen([&](auto& r) { r.mutable_sampling()->set_min_p(nan); }); },
       C::INVALID_ARGUMENT},
      {"generate: min_p 5", [&] { return gen([](auto& r) { r.mutable_sampling()->set_min_p(5); }); },
       C::INVALID_ARGUMENT},
      {"generate: n 10000", [&] { return gen([](auto& r) { r.set_n(10000); }); }, C::INVALID_ARGUMENT},
      {"generate: top_logprobs 1000", [&] { return gen([](auto& r) { r.set_top_logprobs(1000); }); },
       C::INVALID_ARGUMENT},
      {"generate: 1000 stop strings",
       [&] {
         return gen([](auto& r) {
           for (int i = 0; i < 1000; ++i) r.add_stop("s" + std::to_string(i));
         });
       },
       C::INVALID_ARGUMENT},
      {"generate: huge stop string", [&] { return gen([](auto& r) { r.add_stop(std::string(100000, 'x')); }); },
       C::INVALID_ARGUMENT},
      {"generate: empty stop string", [&] { return gen([](auto& r) { r.add_stop(""); }); }, C::INVALID_ARGUMENT},
      {"generate: stop token id past vocab", [&] { return gen([](auto& r) { r.add_stop_token_ids(1 << 30); }); },
       C::INVALID_ARGUMENT},
      {"generate: min_tokens above max",
       [&] {
         return gen([](auto& r) {
           r.set_min_tokens(10);
           r.set_max_new_tokens(2);
         });
       },
       C::INVALID_ARGUMENT},
      {"generate: invalid UTF-8 prompt",
       [&] {
         return gen([](auto& r) {
           r.clear_input_ids();
           r.set_prompt("\xff\xfe bad");
         });
       },
       C::INVALID_ARGUMENT},
      {"embed: unknown model", [&] { return embed("nope", {{2, 5, 3}}); }, C::NOT_FOUND},
      {"embed: no inputs", [&] { return embed(embed_id, {}); }, C::INVALID_ARGUMENT},
      {"embed: id past vocab", [&] { return embed(embed_id, {{2, 1 << 30, 3}}); }, C::INVALID_ARGUMENT},
      {"embed: longer than seq_len", [&] { return embed(embed_id, {std::vector<int64_t>(100, 5)}); },
       C::INVALID_ARGUMENT},
      {"embed: unknown pooling", [&] { return embed(embed_id, {{2, 5, 3}}, "median"); }, C::INVALID_ARGUMENT},
      {"embed: causal model", [&] { return embed("gpt2", {{2, 5, 3}}); }, C::FAILED_PRECONDITION},
      {"tokenize: unknown model", [&] { return tok("nope", "hi"); }, C::NOT_FOUND},
      {"tokenize: invalid UTF-8", [&] { return tok("gpt2", "\xc3\x28"); }, C::INVALID_ARGUMENT},
      {"detokenize: id past vocab", [&] { return detok("gpt2", {1 << 30}); }, C::INVALID_ARGUMENT},
      {"detokenize: negative id", [&] { return detok("gpt2", {-1}); }, C::INVALID_ARGUMENT},
  };
  int failures = 0;
  for (const auto& c : grpc_cases) {
    grpc::Status s = c.call();
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": got " << s.error_code() << " " << s.error_message();
    EXPECT_GT(s.error_message().size(), 15u) << c.name << ": the message must explain: " << s.error_message();
    EXPECT_LT(s.error_message().size(), 2000u) << c.name << ": the message must stay bounded";
    failures += s.error_code() != c.code;
  }

  struct HttpCase {
    std::string name, method, path, body;
    int status;
    std::string content_type = "application/json";
  };
  const std::vector<HttpCase> http_cases = {
      {"completions: not JSON", "POST", "/v1/completions", "{not json", 400},
      {"completions: JSON array", "POST", "/v1/completions", "[1,2]", 400},
      {"completions: no model", "POST", "/v1/completions", R"({"prompt": "hi"})", 400},
      {"completions: unknown model", "POST", "/v1/completions", R"({"model": "nope", "prompt": "hi"})", 404},
      {"completions: prompt wrong type", "POST", "/v1/completions", R"({"model": "gpt2", "prompt": 5})", 400},
      {"completions: negative max_tokens", "POST", "/v1/completions",
       R"({"model": "gpt2", "prompt": "hi", "max_tokens": -5})", 400},
      {"completions: temperature 1e9", "POST", "/v1/completions",
       R"({"model": "gpt2", "prompt": "hi", "temperature": 1e9})", 400},
      {"completions: top_p -1", "POST", "/v1/completions", R"({"model": "gpt2", "prompt": "hi", "top_p": -1})",
       400},
      {"completions: n 0", "POST", "/v1/completions", R"({"model": "gpt2", "prompt": "hi", "n": 0})", 400},
      {"completions: stop wrong type", "POST", "/v1/completions", R"({"model": "gpt2", "prompt": "hi", "stop": 5})",
       400},
      {"completions: token id past vocab", "POST", "/v1/completions",
       R"({"model": "gpt2", "prompt": [1073741824]})", 400},
      {"chat: messages missing", "POST", "/v1/chat/completions", R"({"model": "gpt2"})", 400},
      {"chat: messages not a list", "POST", "/v1/chat/completions", R"({"model": "gpt2", "messages": "hi"})", 400},
      {"chat: bad role", "POST", "/v1/chat/completions",
       R"({"model": "gpt2", "messages": [{"role": "wizard", "content": "hi"}]})", 400},
      {"chat: content wrong type", "POST", "/v1/chat/completions",
       R"({"model": "gpt2", "messages": [{"role": "user", "content": 5}]})", 400},
      {"embeddings: input wrong type", "POST", "/v1/embeddings", R"({"model": "gpt2", "input": {"a": 1}})", 400},
      {"embeddings: unknown model", "POST", "/v1/embeddings", R"({"model": "nope", "input": "hi"})", 404},
      {"unknown route", "GET", "/v1/nothing", "", 404},
      {"wrong method", "GET", "/v1/completions", "", 404},
      {"body not JSON content type", "POST", "/v1/completions", "prompt=hi", 400, "text/plain"},
  };
  for (const auto& c : http_cases) {
    HttpResult h = Http(c.method, Url(c.path), c.body, c.content_type);
    EXPECT_EQ(h.status, c.status) << c.name << ": " << h.body;
    json j = json::parse(h.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << c.name << ": errors are JSON: " << h.body;
    ASSERT_TRUE(j.contains("error") && j["error"].contains("message")) << c.name << ": " << h.body;
    EXPECT_GT(j["error"]["message"].get<std::string>().size(), 15u) << c.name << ": " << h.body;
    failures += h.status != c.status;
  }
  EXPECT_GE(grpc_cases.size() + http_cases.size(), 60u);
  std::printf("bad-input cases: %zu gRPC + %zu HTTP, %d with an unexpected code\n", grpc_cases.size(),
              http_cases.size(), failures);

  // Still serving, both ways.
  EXPECT_TRUE(gen([](auto&) {}).ok());
  EXPECT_EQ(Http("GET", Url("/health"), "").status, 200);
  HttpResult ok = Http("POST", Url("/v1/completions"), R"({"model": "gpt2", "prompt": "Hello", "max_tokens": 2})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

}  // namespace
}  // namespace qeff::testing
