// Serving many users at once through the real qeffd on 127.0.0.1: continuous batching driven by
// qeffctl's --prompts-file and by concurrent Generate streams from separate gRPC clients, with a
// client that vanishes mid-stream, a deadline that expires, a full queue, and unloading.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "qeff/v1/runner.grpc.pb.h"
#include "tests/integration/hf_reference.h"
#include "tests/integration/process.h"

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

std::vector<int64_t> Synthetic(int length, int seed) {
  std::vector<int64_t> ids;
  uint32_t x = 977u * static_cast<uint32_t>(seed) + 3u;
  for (int i = 0; i < length; ++i) {
    x = x * 1664525u + 1013904223u;
    ids.push_back((x >> 8) % 50000);
  }
  return ids;
}

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    out.push_back(json::parse(line, nullptr, false));
  }
  return out;
}

class ServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() / ("qeff-serving-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_ / "cache");
  }
  void TearDown() override { fs::remove_all(work_); }

  void Start(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(qeffd_.Start(Binary("qeffd"), (work_ / "cache").string(), std::move(extra))) << qeffd_.error();
  }
  CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {Binary("qeffctl"), "--server", qeffd_.address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  json CtlJson(std::vector<std::string> args) {
    args.push_back("--json");
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }
  // Export (continuous batching) + compile + load; returns the model id.
  std::string LoadCb(const fs::path& model, int fbs, int ctx, const std::string& id) {
    json e = CtlJson({"export", "--model", model.string(), "--continuous-batching"});
    json c = CtlJson({"compile", "--export-key", e.value("export_key", ""), "--full-batch-size", std::to_string(fbs),
                      "--prefill-seq-len", "8", "--ctx-len", std::to_string(ctx)});
    json l = CtlJson({"load", "--qpc-key", c.value("qpc_key", ""), "--model-id", id});
    EXPECT_EQ(l.value("full_batch_size", 0), fbs);
    return l.value("model_id", "");
  }
  qeff::v1::ModelInfo Info(const std::string& id) {
    auto stub = qeff::v1::Runner::NewStub(grpc::CreateChannel(qeffd_.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    qeff::v1::ListResponse resp;
    EXPECT_TRUE(stub->List(&ctx, qeff::v1::ListRequest(), &resp).ok());
    for (const auto& m : resp.models()) {
      if (m.model_id() == id) return m;
    }
    ADD_FAILURE() << "model " << id << " is not listed";
    return {};
  }
  // Polls until the model has no active or queued requests (or 10 s pass).
  qeff::v1::ModelInfo WaitIdle(const std::string& id) {
    qeff::v1::ModelInfo m;
    for (int i = 0; i < 200; ++i) {
      m = Info(id);
      if (m.active_requests() == 0 && m.queued_requests() == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return m;
  }

  fs::path work_;
  ServerProcess qeffd_;
};

TEST_F(ServingTest, PromptsFileBatchesAndMatchesHfAndSoloRuns) {
  Start();
  const HfReference fx = LoadHfReference(kGpt2);
  // Eight prompts of different lengths: the fixture's two (ids and text) among synthetic ones.
  std::vector<std::vector<int64_t>> ids = {Synthetic(5, 1), fx.prompts[0], Synthetic(1, 2), Synthetic(21, 3),
                                           fx.prompts[1], Synthetic(9, 4), Synthetic(14, 5), {}};
  const fs::path file = work_ / "prompts.jsonl";
  {
    std::ofstream out(file);
    for (const auto& p : ids) {
      if (p.empty()) {
        out << json{{"prompt", fx.texts[0]}}.dump() << "\n";
      } else {
        out << json{{"input_ids", p}}.dump() << "\n";
      }
    }
  }
  CommandResult r = Ctl({"infer", "--model", kGpt2.string(), "--full-batch-size", "4", "--prompts-file",
                         file.string(), "--max-new-tokens", "16", "--prefill-seq-len", "8", "--ctx-len", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> lines = JsonLines(r.out);
  ASSERT_EQ(lines.size(), ids.size()) << r.out;
  EXPECT_NE(r.err.find("\"aggregate\""), std::string::npos) << r.err;
  for (size_t i = 0; i < lines.size(); ++i) {
    const json& j = lines[i];
    ASSERT_FALSE(j.is_discarded()) << r.out;
    for (const char* k : {"prompt_token_ids", "generated_token_ids", "text", "stats", "finish_reason", "qpc_key"}) {
      EXPECT_TRUE(j.contains(k)) << "line " << i << " lacks " << k;
    }
    const auto prompt = j["prompt_token_ids"].get<std::vector<int64_t>>();
    const auto got = j["generated_token_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(prompt, ids[i].empty() ? fx.prompts[0] : ids[i]) << "line " << i << " is out of input order";
    if (prompt == fx.prompts[0] || prompt == fx.prompts[1]) {
      EXPECT_EQ(got, fx.new_tokens[prompt == fx.prompts[0] ? 0 : 1]) << "line " << i << ": HF's greedy tokens";
      continue;
    }
    // The same prompt alone on a qpc without continuous batching.
    json solo = CtlJson({"infer", "--model", kGpt2.string(), "--input-ids", JoinIds(prompt), "--max-new-tokens", "16",
                         "--prefill-seq-len", "8", "--ctx-len", "64"});
    EXPECT_EQ(got, solo["generated_token_ids"].get<std::vector<int64_t>>()) << "line " << i;
  }
  // Without --json: each prompt and its completion, then the batch's stats.
  CommandResult text = Ctl({"infer", "--model", kGpt2.string(), "--full-batch-size", "4", "--prompts-file",
                            file.string(), "--max-new-tokens", "4", "--prefill-seq-len", "8", "--ctx-len", "64"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  size_t completions = 0;
  for (size_t at = text.out.find("Completion : "); at != std::string::npos; at = text.out.find("Completion : ", at + 1)) {
    ++completions;
  }
  EXPECT_EQ(completions, ids.size()) << text.out;
  EXPECT_NE(text.out.find("Decode is="), std::string::npos);
}

TEST_F(ServingTest, ConcurrentStreamsSurviveAVanishedClientAndAnExpiredDeadline) {
  Start();
  const HfReference fx = LoadHfReference(kGpt2);
  const std::string id = LoadCb(kGpt2, 4, 64, "gpt2-cb");
  ASSERT_FALSE(id.empty());
  constexpr int kStreams = 8, kVanishing = 2, kExpiring = 5;
  std::vector<std::vector<int64_t>> prompts;
  for (int i = 0; i < kStreams; ++i) prompts.push_back(i % 3 == 0 ? fx.prompts[i % 2] : Synthetic(3 + 2 * i, i));

  struct Outcome {
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
    std::vector<int64_t> tokens;
  };
  auto run = [&](const std::vector<int64_t>& prompt, int max_new, bool vanish, int deadline_ms) {
    // A client of its own: its own channel and connection.
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto channel = grpc::CreateCustomChannel(qeffd_.address(), grpc::InsecureChannelCredentials(), args);
    auto stub = qeff::v1::Runner::NewStub(channel);
    grpc::ClientContext ctx;
    if (deadline_ms > 0) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    qeff::v1::GenerateRequest req;
    req.set_model_id(id);
    for (int64_t t : prompt) req.add_input_ids(t);
    req.set_max_new_tokens(max_new);
    auto reader = stub->Generate(&ctx, req);
    Outcome o;
    qeff::v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
      o.tokens.insert(o.tokens.end(), ev.token_ids().begin(), ev.token_ids().end());
      if (vanish && !o.tokens.empty()) ctx.TryCancel();  // the client goes away mid-stream
    }
    o.code = reader->Finish().error_code();
    return o;
  };

  std::vector<Outcome> outcomes(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      // The expiring one asks for far more tokens than its deadline allows on a busy server.
      outcomes[i] = run(prompts[i], i == kExpiring ? 40 : 16, i == kVanishing, i == kExpiring ? 1 : 0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(outcomes[kVanishing].code, grpc::StatusCode::CANCELLED);
  EXPECT_EQ(outcomes[kExpiring].code, grpc::StatusCode::DEADLINE_EXCEEDED);
  // Every slot and queue entry is released.
  qeff::v1::ModelInfo m = WaitIdle(id);
  EXPECT_EQ(m.active_requests(), 0);
  EXPECT_EQ(m.queued_requests(), 0);
  EXPECT_EQ(m.slots(), 4);
  // The others finished with the tokens each gives when it runs alone.
  for (int i = 0; i < kStreams; ++i) {
    if (i == kVanishing || i == kExpiring) continue;
    ASSERT_EQ(outcomes[i].code, grpc::StatusCode::OK) << "stream " << i;
    const Outcome alone = run(prompts[i], 16, false, 0);
    ASSERT_EQ(alone.code, grpc::StatusCode::OK);
    EXPECT_EQ(outcomes[i].tokens, alone.tokens) << "stream " << i;
    for (int f = 0; f < 2; ++f) {
      if (prompts[i] == fx.prompts[f]) {
        EXPECT_EQ(outcomes[i].tokens, fx.new_tokens[f]) << "stream " << i << ": HF's greedy tokens";
      }
    }
  }
}

TEST_F(ServingTest, FullQueueIsResourceExhaustedAndUnloadEndsRequests) {
  // One slot and room for one waiting request: a long generation holds the slot.
  Start({"--max-queued-requests", "1", "--max-active-slots", "1"});
  const fs::path model = work_ / "model";
  CommandResult gen = RunCommand({Binary("qeff-make-random-model"), "--out", model.string(), "--n-layer", "4",
                                  "--n-embd", "256", "--n-head", "4", "--vocab", "50257", "--n-positions", "512"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string id = LoadCb(model, 2, 512, "busy");
  auto stub = qeff::v1::Runner::NewStub(grpc::CreateChannel(qeffd_.address(), grpc::InsecureChannelCredentials()));
  auto start = [&](grpc::ClientContext* ctx) {
    qeff::v1::GenerateRequest req;
    req.set_model_id(id);
    req.add_input_ids(464);  // then fill the whole context
    return stub->Generate(ctx, req);
  };
  grpc::ClientContext a_ctx, b_ctx, c_ctx;
  auto a = start(&a_ctx);
  qeff::v1::GenerateEvent ev;
  ASSERT_TRUE(a->Read(&ev));  // `a` holds the only slot
  auto b = start(&b_ctx);
  for (int i = 0; i < 100 && Info(id).queued_requests() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(Info(id).queued_requests(), 1);
  auto c = start(&c_ctx);
  while (c->Read(&ev)) {
  }
  grpc::Status cs = c->Finish();
  EXPECT_EQ(cs.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(cs.error_message().find("--max-queued-requests"), std::string::npos) << cs.error_message();

  // Unloading ends the running and the queued request with UNAVAILABLE; the server keeps serving.
  CommandResult u = Ctl({"unload", "--model-id", id});
  EXPECT_EQ(u.exit_code, 0) << u.err;
  while (a->Read(&ev)) {
  }
  while (b->Read(&ev)) {
  }
  EXPECT_EQ(a->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(b->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  json again = CtlJson({"infer", "--model", kGpt2.string(), "--input-ids", "464,3290", "--max-new-tokens", "3",
                        "--prefill-seq-len", "8", "--ctx-len", "64"});
  EXPECT_EQ(again["generated_token_ids"].size(), 3u);
}

}  // namespace
}  // namespace qeff::testing
