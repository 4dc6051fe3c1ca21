// Stop criteria, log-probabilities, n choices and seeds through runner::Completion (what the gRPC
// and HTTP front ends use) on the GPT-2 fixture with its real tokenizer, plus the stop-string
// matcher on its own.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "common/tokenizer/tokenizer.h"
#include "services/runner/completion.h"
#include "services/runner/stop_strings.h"
#include "tests/unit/pipeline/pipeline_util.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;
using runner::Completion;
using runner::CompletionChunk;
using runner::CompletionOptions;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

TEST(StopStringMatcherTest, MatchesAcrossPushesAndHoldsBackPrefixes) {
  runner::StopStringMatcher m({"o w", "zz"}, false);
  EXPECT_EQ(m.Push("Hel"), "Hel");
  EXPECT_EQ(m.Push("lo"), "l");  // "o" may start "o w"
  EXPECT_EQ(m.Push(" wor"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");

  runner::StopStringMatcher inc({"o w"}, true);
  EXPECT_EQ(inc.Push("Hello world"), "Hello w");

  runner::StopStringMatcher none({"xyz"}, false);
  EXPECT_EQ(none.Push("abx"), "ab");
  EXPECT_EQ(none.Push("y"), "");
  EXPECT_EQ(none.Push("!"), "xy!");
  EXPECT_EQ(none.Push("xy"), "");
  EXPECT_EQ(none.Flush(), "xy");
  EXPECT_FALSE(none.stopped());

  runner::StopStringMatcher earliest({"world", "lo"}, false);
  EXPECT_EQ(earliest.Push("hello world"), "hel");
}

class CompletionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new testing::TempDir("completion");
    session_ = testing::ExportAndCompile(kGpt2, work_->path(), 8, 64, "fp32", 4).release();
    auto tok = tokenizer::Tokenizer::FromDirectory(kGpt2);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = tok->release();
    runner::SchedulerOptions o;
    o.model_id = "gpt2";
    auto s = runner::Scheduler::Create(session_, o);
    ASSERT_TRUE(s.ok()) << s.status();
    scheduler_ = s->release();
  }
  static void TearDownTestSuite() {
    delete scheduler_;
    delete tokenizer_;
    delete session_;
    delete work_;
  }

  struct Choice {
    std::vector<int32_t> tokens;
    std::string text;
    std::vector<runner::TokenLogprob> logprobs;
    std::string finish_reason;
  };
  static std::vector<Choice> Run(CompletionOptions o, uint64_t* seed = nullptr) {
    auto c = Completion::Start(*scheduler_, tokenizer_, std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    std::vector<Choice> out((*c)->n());
    std::vector<CompletionChunk> chunks;
    while ((*c)->Next(&chunks, std::chrono::milliseconds(100))) {
      for (auto& ch : chunks) {
        Choice& r = out[ch.index];
        r.tokens.insert(r.tokens.end(), ch.tokens.begin(), ch.tokens.end());
        r.text += ch.text;
        r.logprobs.insert(r.logprobs.end(), ch.logprobs.begin(), ch.logprobs.end());
        EXPECT_EQ(ch.token_times.size(), ch.tokens.size());
        if (ch.done) r.finish_reason = ch.finish_reason;
      }
      chunks.clear();
    }
    for (auto& ch : chunks) {
      Choice& r = out[ch.index];
      r.tokens.insert(r.tokens.end(), ch.tokens.begin(), ch.tokens.end());
      r.text += ch.text;
      r.logprobs.insert(r.logprobs.end(), ch.logprobs.begin(), ch.logprobs.end());
      if (ch.done) r.finish_reason = ch.finish_reason;
    }
    EXPECT_TRUE((*c)->status().ok()) << (*c)->status();
    if (seed != nullptr) *seed = (*c)->seed();
    return out;
  }
  static CompletionOptions Greedy(int max_new) {
    CompletionOptions o;
    o.request.prompt = {7454, 2402, 257, 640, 11, 612, 373, 257};  // "Once upon a time, there was a"
    o.request.max_new_tokens = max_new;
    return o;
  }

  static testing::TempDir* work_;
  static device::Session* session_;
  static tokenizer::Tokenizer* tokenizer_;
  static runner::Scheduler* scheduler_;
};
testing::TempDir* CompletionTest::work_ = nullptr;
device::Session* CompletionTest::session_ = nullptr;
tokenizer::Tokenizer* CompletionTest::tokenizer_ = nullptr;
runner::Scheduler* CompletionTest::scheduler_ = nullptr;

TEST_F(CompletionTest, StopStringsEndTheTextBeforeTheMatch) {
  const auto full = Run(Greedy(16));
  ASSERT_EQ(full.size(), 1u);
  ASSERT_EQ(full[0].finish_reason, "length");
  ASSERT_EQ(full[0].text, tokenizer_->Decode(full[0].tokens, false));
  // A stop string spanning the boundary of the 3rd and 4th tokens' text.
  const std::string head = tokenizer_->Decode({full[0].tokens.begin(), full[0].tokens.begin() + 3}, false);
  ASSERT_GT(full[0].text.size(), head.size() + 2);
  const std::string stop = full[0].text.substr(head.size() - 1, 3);
  const size_t at = full[0].text.find(stop);
  CompletionOptions o = Greedy(16);
  o.stop = {stop};
  const auto cut = Run(o);
  EXPECT_EQ(cut[0].finish_reason, "stop");
  EXPECT_EQ(cut[0].text, full[0].text.substr(0, at));
  EXPECT_LT(cut[0].tokens.size(), full[0].tokens.size());
  o.include_stop_str_in_output = true;
  EXPECT_EQ(Run(o)[0].text, full[0].text.substr(0, at + stop.size()));
}

TEST_F(CompletionTest, StopTokenIdsEosAndMinTokens) {
  const auto full = Run(Greedy(12));
  const int32_t third = full[0].tokens[2];
  CompletionOptions o = Greedy(12);
  o.request.stop_token_ids = {third};
  auto r = Run(o);
  EXPECT_EQ(r[0].finish_reason, "stop");
  ASSERT_GE(r[0].tokens.size(), 1u);
  EXPECT_EQ(r[0].tokens.back(), third);
  // As an EOS id: ignored unless stop_at_eos, and not before min_tokens.
  o = Greedy(12);
  o.request.eos_token_ids = {third};
  EXPECT_EQ(Run(o)[0].finish_reason, "length");
  o.request.stop_at_eos = true;
  EXPECT_EQ(Run(o)[0].finish_reason, "eos");
  o.request.min_tokens = 12;
  EXPECT_EQ(Run(o)[0].tokens, full[0].tokens);
}

TEST_F(CompletionTest, LogprobsAreLogSoftmaxWithTopAlternatives) {
  CompletionOptions o = Greedy(6);
  o.request.top_logprobs = 3;
  const auto r = Run(o);
  ASSERT_EQ(r[0].logprobs.size(), r[0].tokens.size());
  for (size_t i = 0; i < r[0].logprobs.size(); ++i) {
    const auto& lp = r[0].logprobs[i];
    EXPECT_EQ(lp.token, r[0].tokens[i]);
    EXPECT_LE(lp.logprob, 0.0f);
    ASSERT_EQ(lp.top.size(), 3u);
    // Greedy picks the most likely token.
    EXPECT_EQ(lp.top[0].first, lp.token);
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    EXPECT_GE(lp.top[0].second, lp.top[1].second);
    EXPECT_GE(lp.top[1].second, lp.top[2].second);
  }
}

TEST_F(CompletionTest, ChoicesSeedsAndReplays) {
  CompletionOptions o = Greedy(10);
  o.request.sampling.temperature = 1.5f;
  o.n = 3;
  o.seeded = true;
  o.request.sampling.seed = 42;
  uint64_t seed = 0;
  const auto a = Run(o, &seed);
  EXPECT_EQ(seed, 42u);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_FALSE(a[0].tokens == a[1].tokens && a[1].tokens == a[2].tokens) << "choices use different seeds";
  const auto b = Run(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a[i].tokens, b[i].tokens) << "same seed, same tokens";
  // Unseeded: a fresh seed each time, and replaying it reproduces the text.
  CompletionOptions u = Greedy(10);
  u.request.sampling.temperature = 1.5f;
  uint64_t s1 = 0, s2 = 0;
  const auto u1 = Run(u, &s1);
  Run(u, &s2);
  EXPECT_NE(s1, s2);
  u.seeded = true;
  u.request.sampling.seed = s1;
  EXPECT_EQ(Run(u)[0].tokens, u1[0].tokens);
  // All-or-nothing validation.
  o.n = 0;
  EXPECT_EQ(Completion::Start(*scheduler_, tokenizer_, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qeff
