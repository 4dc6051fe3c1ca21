// Continuous batching end to end, in process, for every causal-LM fixture: a continuous-batching
// export compiled with full_batch_size 4, eight requests of different lengths and limits
// submitted at once to the runner's Scheduler (so four wait, then join as others leave
// mid-batch). The fixture's own two prompts must give HF's greedy tokens, and every other
// prompt exactly the tokens it gives alone on a non-batched qpc of the same model.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/runner/generator.h"
#include "services/runner/scheduler.h"
#include "tests/unit/pipeline/pipeline_util.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";

struct Case {
  std::vector<int32_t> prompt;
  int max_new = 0;
  std::vector<int64_t> want;  // HF's greedy tokens, empty for synthetic prompts
};

// Deterministic synthetic prompts of assorted lengths (not the fixture's).
std::vector<int32_t> SyntheticPrompt(int length, int vocab, uint32_t seed) {
  std::vector<int32_t> ids;
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 0; i < length; ++i) {
    x = x * 1664525u + 1013904223u;
    ids.push_back(static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(vocab)));
  }
  return ids;
}

class ContinuousBatchingTest : public ::testing::TestWithParam<std::string> {};

// 8 requests of assorted lengths (the fixture's prompts among them) on 4 slots: each gives
// exactly the tokens it gives alone on a non-batched qpc with the same KV cache type; with an
// fp32 cache the fixture prompts also give HF's greedy tokens.
void CheckBatchedEqualsAlone(const std::string& fixture, const std::string& kv_cache_dtype) {
  const fs::path dir = kFixtures / fixture;
  std::ifstream in(dir / "reference.json");
  ASSERT_TRUE(in) << dir;
  const nlohmann::json ref = nlohmann::json::parse(in);
  const bool hf_tokens = kv_cache_dtype == "fp32";

  testing::TempDir work("cb-" + fixture + "-" + kv_cache_dtype);
  constexpr int kPrefill = 8, kCtx = 64, kSlots = 4;
  auto plain = testing::ExportAndCompile(dir, work.path(), kPrefill, kCtx, "fp32", 0, kv_cache_dtype);
  auto batched = testing::ExportAndCompile(dir, work.path(), kPrefill, kCtx, "fp32", kSlots, kv_cache_dtype);
  ASSERT_TRUE(plain && batched);
  ASSERT_EQ(batched->full_batch_size(), kSlots);
  const int vocab = batched->vocab_size();

  std::vector<Case> cases;
  const int lengths[] = {1, 3, 13, 24, 6, 17};
  const int limits[] = {12, 5, 20, 9, 30, 2};
  for (int i = 0; i < 6; ++i) cases.push_back({SyntheticPrompt(lengths[i], vocab, 7u * i + 1), limits[i], {}});
  // The fixture prompts go in the middle, so they start while others run and outlive some.
  for (const auto& input : ref["inputs"]) {
    const int idx = input["index"];
    Case c;
    for (int64_t id : input["input_ids"].get<std::vector<int64_t>>()) c.prompt.push_back(static_cast<int32_t>(id));
    const auto hf = ref["outputs"]["generation"][idx]["new_tokens"].get<std::vector<int64_t>>();
    c.max_new = static_cast<int>(hf.size());
    if (hf_tokens) c.want = hf;
    cases.insert(cases.begin() + 2 + idx * 2, c);
  }
  ASSERT_EQ(cases.size(), 8u);

  // Alone, on the non-batched qpc.
  for (auto& c : cases) {
    if (!c.want.empty()) continue;
    runner::GenerationRequest req;
    req.prompt = c.prompt;
    req.max_new_tokens = c.max_new;
    auto r = runner::Generate(*plain, req, [](int32_t) { return true; });
    ASSERT_TRUE(r.ok()) << r.status();
    c.want.assign(r->tokens.begin(), r->tokens.end());
  }

  // All at once on the continuous-batching qpc.
  runner::SchedulerOptions options;
  options.model_id = fixture;
  auto scheduler = runner::Scheduler::Create(batched.get(), options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EXPECT_EQ((*scheduler)->load().slots, kSlots);
  std::vector<std::shared_ptr<runner::RequestHandle>> handles;
  for (const auto& c : cases) {
    runner::GenerationRequest req;
    req.prompt = c.prompt;
    req.max_new_tokens = c.max_new;
    auto h = (*scheduler)->Submit(req);
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*h);
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int32_t> streamed;
    while (!handles[i]->Wait(&streamed, std::chrono::milliseconds(200))) {
    }
    ASSERT_TRUE(handles[i]->status().ok()) << handles[i]->status();
    const auto& tokens = handles[i]->result().tokens;
    EXPECT_EQ(std::vector<int32_t>(tokens.begin(), tokens.end()), streamed) << "stream and result differ";
    EXPECT_EQ(std::vector<int64_t>(tokens.begin(), tokens.end()), cases[i].want)
        << fixture << " (kv " << kv_cache_dtype << ") request " << i << " (prompt length " << cases[i].prompt.size()
        << ")";
    EXPECT_EQ(handles[i]->result().finish_reason, "length");
  }
  const auto load = (*scheduler)->load();
  EXPECT_EQ(load.active, 0);
  EXPECT_EQ(load.queued, 0);
}

TEST_P(ContinuousBatchingTest, BatchedGreedyEqualsAloneAndHf) { CheckBatchedEqualsAlone(GetParam(), "fp32"); }

// Rounding into a bf16 cache happens per row as it is written, so batching changes nothing.
TEST_P(ContinuousBatchingTest, BatchedGreedyEqualsAloneWithBf16KvCache) { CheckBatchedEqualsAlone(GetParam(), "bf16"); }

// ResetSlot(slot, n) zeroes only cache positions [0, n) of that slot (what its last request can
// have written), every head of every state; without n, the whole slot.
TEST(SessionTest, ResetSlotZeroesTheWrittenPositionsOfOneSlot) {
  testing::TempDir work("reset-slot");
  auto session = testing::ExportAndCompile(kFixtures / "gpt2", work.path(), 8, 64, "fp32", 2);
  ASSERT_TRUE(session);
  const int prefill = testing::SpecIndex(*session, 8);
  std::vector<int64_t> ids = {5, 6, 7, 8, 9, 10, 11, 12}, pos = {0, 1, 2, 3, 4, 5, 6, 7}, slot = {1};
  ASSERT_TRUE(session
                  ->Run(prefill, {{"input_ids", device::HostTensor::I64(ids.data(), {1, 8})},
                                  {"position_ids", device::HostTensor::I64(pos.data(), {1, 8})},
                                  {"batch_index", device::HostTensor::I64(slot.data(), {1, 1})}})
                  .ok());
  const auto& proto = session->program().proto();
  // Nonzero bytes at (slot, every head, position p) of state i.
  auto nonzero = [&](int i, int b, int64_t p) {
    auto st = session->State(proto.states(i).name());
    EXPECT_TRUE(st.ok());
    const auto& sh = st->shape;  // [fbs, heads, ctx, head_dim]
    const float* f = static_cast<const float*>(st->data);
    int count = 0;
    for (int64_t h = 0; h < sh[1]; ++h)
      for (int64_t d = 0; d < sh[3]; ++d) count += f[((b * sh[1] + h) * sh[2] + p) * sh[3] + d] != 0.0f;
    return count;
  };
  for (int i = 0; i < proto.states_size(); ++i) {
    for (int64_t p = 0; p < 8; ++p) EXPECT_GT(nonzero(i, 1, p), 0) << "state " << i << " position " << p;
    EXPECT_EQ(nonzero(i, 0, 0), 0) << "slot 0 was never written";
  }
  ASSERT_TRUE(session->ResetSlot(1, 5).ok());
  for (int i = 0; i < proto.states_size(); ++i) {
    for (int64_t p = 0; p < 5; ++p) EXPECT_EQ(nonzero(i, 1, p), 0) << "state " << i << " position " << p;
    for (int64_t p = 5; p < 8; ++p) EXPECT_GT(nonzero(i, 1, p), 0) << "state " << i << " position " << p;
  }
  ASSERT_TRUE(session->ResetSlot(1).ok());
  for (int i = 0; i < proto.states_size(); ++i)
    for (int64_t p = 0; p < 8; ++p) EXPECT_EQ(nonzero(i, 1, p), 0) << "state " << i << " position " << p;
  EXPECT_EQ(session->ResetSlot(2).code(), absl::StatusCode::kInvalidArgument);
}

// The scheduler's request lifecycle on the GPT-2 fixture: expired deadlines, cancellation
// mid-generation, shutdown; every case releases its slot.
TEST(SchedulerTest, DeadlinesCancellationAndShutdownReleaseSlots) {
  testing::TempDir work("sched");
  auto session = testing::ExportAndCompile(kFixtures / "gpt2", work.path(), 8, 64, "fp32", 2);
  ASSERT_TRUE(session);
  runner::SchedulerOptions options;
  options.model_id = "gpt2";
  options.max_queued_requests = 8;
  auto scheduler = runner::Scheduler::Create(session.get(), options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  auto wait = [](runner::RequestHandle& h, std::vector<int32_t>* tokens) {
    while (!h.Wait(tokens, std::chrono::milliseconds(100))) {
    }
  };
  std::vector<int32_t> tokens;

  // Bad requests are refused before they queue.
  runner::GenerationRequest empty;
  EXPECT_EQ((*scheduler)->Submit(empty).status().code(), absl::StatusCode::kInvalidArgument);
  runner::GenerationRequest too_long;
  too_long.prompt.assign(64, 1);
  EXPECT_EQ((*scheduler)->Submit(too_long).status().code(), absl::StatusCode::kInvalidArgument);
  runner::GenerationRequest bad_id;
  bad_id.prompt = {session->vocab_size()};
  EXPECT_EQ((*scheduler)->Submit(bad_id).status().code(), absl::StatusCode::kInvalidArgument);

  // A deadline that has already passed ends the request without running it.
  runner::GenerationRequest expired;
  expired.prompt = {464, 3290};
  expired.deadline = runner::Clock::now() - std::chrono::milliseconds(1);
  auto h1 = (*scheduler)->Submit(expired);
  ASSERT_TRUE(h1.ok());
  wait(**h1, &tokens);
  EXPECT_EQ((*h1)->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(tokens.empty());

  // Cancelled after its first token: it stops early and frees the slot.
  runner::GenerationRequest longer;
  longer.prompt = {464, 3290};  // fills the context unless cancelled
  auto h2 = (*scheduler)->Submit(longer);
  ASSERT_TRUE(h2.ok());
  tokens.clear();
  while (tokens.empty()) (*h2)->Wait(&tokens, std::chrono::milliseconds(100));
  (*h2)->Cancel(absl::CancelledError("test"));
  wait(**h2, &tokens);
  EXPECT_EQ((*h2)->status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT((*h2)->result().tokens.size(), 62u);

  // The slots serve the next requests; nothing is left behind.
  runner::GenerationRequest ok = longer;
  ok.max_new_tokens = 5;
  auto h3 = (*scheduler)->Submit(ok);
  ASSERT_TRUE(h3.ok());
  tokens.clear();
  wait(**h3, &tokens);
  EXPECT_TRUE((*h3)->status().ok()) << (*h3)->status();
  EXPECT_EQ(tokens.size(), 5u);
  EXPECT_EQ((*scheduler)->load().active, 0);

  // Shutdown ends running and queued requests with its reason, and refuses new ones.
  std::vector<std::shared_ptr<runner::RequestHandle>> pending;
  for (int i = 0; i < 5; ++i) {
    auto h = (*scheduler)->Submit(longer);
    ASSERT_TRUE(h.ok());
    pending.push_back(*h);
  }
  (*scheduler)->Shutdown(absl::UnavailableError("unloaded"));
  for (auto& h : pending) {
    wait(*h, &tokens);
    EXPECT_TRUE(h->status().ok() || h->status().code() == absl::StatusCode::kUnavailable) << h->status();
  }
  EXPECT_EQ((*scheduler)->Submit(ok).status().code(), absl::StatusCode::kUnavailable);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ContinuousBatchingTest,
                         ::testing::Values("gpt2", "llama", "mistral", "qwen2", "phi3", "gptj", "falcon", "gemma2",
                                           "falcon_new_arch", "llama32", "llama_linear_rope", "mixtral", "qwen2_moe",
                                           "gpt_bigcode", "starcoder2", "phi", "gemma", "mpt", "codegen"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace qeff
