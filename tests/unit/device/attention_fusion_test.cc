// The compiler's FuseAttention pass on real exports: every fixture family's attention (plain,
// grouped-query, GPT-2 divisors, Gemma2 multiplier + soft-cap + sliding window) becomes one
// CachedAttention per layer in every specialization, reading the KV cache where CtxScatter wrote
// it in place (no Copy). With continuous batching (CtxScatterCB / CtxGatherCB) the same holds
// with batch_index as the fused op's 5th input, and a request decoded in a batch of KV slots gives
// bit-identical logits to the same request run alone on a non-batched qpc.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/session.h"
#include "qeff/v1/program.pb.h"
#include "services/compiler/compiler.h"
#include "services/compiler/ir.h"
#include "services/compiler/passes.h"
#include "services/exporter/exporter.h"
#include "tests/unit/temp_dir.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";

using qeff::testing::TempDir;

int NumLayers(const fs::path& model) {
  std::ifstream in(model / "config.json");
  const auto c = nlohmann::json::parse(in);
  return c.contains("num_hidden_layers") ? c["num_hidden_layers"].get<int>() : c["n_layer"].get<int>();
}

// Exports `model` (optionally for continuous batching) and compiles it for cpu into <dir>/qpc.
void ExportAndCompile(const fs::path& model, const fs::path& dir, bool cb, int full_batch_size) {
  auto folder = hf::ModelFolder::Open(model);
  ASSERT_TRUE(folder.ok()) << folder.status();
  exporter::ExportOptions eo;
  eo.continuous_batching = cb;
  fs::create_directories(dir / "export");
  fs::create_directories(dir / "qpc");
  auto e = exporter::ExportModel(*folder, eo, dir / "export", [](auto&&...) {});
  ASSERT_TRUE(e.ok()) << e.status();
  compiler::CompileOptions co;
  co.prefill_seq_len = 8;
  co.ctx_len = 64;
  co.full_batch_size = full_batch_size;
  auto c = compiler::CompileModel(dir / "export", co, dir / "qpc", [](auto&&...) {});
  ASSERT_TRUE(c.ok()) << c.status();
}

qeff::v1::Program ReadProgram(const fs::path& qpc) {
  auto bytes = util::ReadFile(qpc / "program.pb", 1ull << 30);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  qeff::v1::Program p;
  EXPECT_TRUE(bytes.ok() && p.ParseFromString(*bytes));
  return p;
}

// Checks one specialization: `layers` fused attentions reading the state buffers, none of the
// unfused chain left, and the new K/V written in place (no Copy into the state).
void ExpectFused(const qeff::v1::ProgramSpecialization& sp, int layers, bool cb, const std::string& what) {
  std::map<std::string, int> count;
  for (const auto& op : sp.ops()) ++count[op.type()];
  SCOPED_TRACE(what + " / " + sp.name());
  EXPECT_EQ(count["CachedAttention"], layers);
  for (const char* gone : {"Softmax", "Where", "CtxGather", "CtxGatherCB", "Copy"}) EXPECT_EQ(count[gone], 0) << gone;
  EXPECT_EQ(count[cb ? "CtxScatterCB" : "CtxScatter"], 2 * layers);
  int batch_index_tensor = -1;
  for (const auto& b : sp.inputs())
    if (b.name() == "batch_index") batch_index_tensor = b.tensor();
  EXPECT_EQ(cb, batch_index_tensor >= 0);
  std::vector<int64_t> k_states, v_states;
  for (const auto& op : sp.ops()) {
    if (op.type() == "CtxScatter" || op.type() == "CtxScatterCB") {
      // In place: the scatter writes the state buffer it read.
      const auto& in = sp.tensors(op.inputs(0));
      const auto& out = sp.tensors(op.outputs(0));
      EXPECT_EQ(in.storage(), qeff::v1::STATE);
      EXPECT_EQ(out.storage(), qeff::v1::STATE);
      EXPECT_EQ(in.offset(), out.offset());
    }
    if (op.type() != "CachedAttention") continue;
    ASSERT_EQ(op.inputs_size(), 5);
    if (k_states.empty()) {
      std::string attrs;
      for (const auto& a : op.attrs()) {
        attrs += " " + a.name() + "=";
        if (a.ints_size() > 0) {
          for (int64_t x : a.ints()) attrs += std::to_string(x) + ",";
        } else {
          char buf[32];
          std::snprintf(buf, sizeof(buf), "%g", a.name() == "mask_value" ? static_cast<double>(a.f())
                                                                          : static_cast<double>(a.i()));
          attrs += buf;
        }
      }
      std::printf("%s %s: %d ops, %d CachedAttention;%s\n", what.c_str(), sp.name().c_str(), sp.ops_size(),
                  count["CachedAttention"], attrs.c_str());
    }
    const auto& k = sp.tensors(op.inputs(1));
    const auto& v = sp.tensors(op.inputs(2));
    EXPECT_EQ(k.storage(), qeff::v1::STATE) << k.name();
    EXPECT_EQ(v.storage(), qeff::v1::STATE) << v.name();
    k_states.push_back(k.offset());
    v_states.push_back(v.offset());
    EXPECT_EQ(sp.tensors(op.inputs(3)).dtype(), qeff::v1::BOOL);
    EXPECT_EQ(op.inputs(4), cb ? batch_index_tensor : -1);
  }
  // Each layer reads its own cache.
  std::sort(k_states.begin(), k_states.end());
  EXPECT_EQ(std::unique(k_states.begin(), k_states.end()), k_states.end());
}

class AttentionFusionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AttentionFusionTest, EverySpecializationUsesCachedAttentionInPlace) {
  const fs::path model = kFixtures / GetParam();
  TempDir dir(GetParam());
  ASSERT_NO_FATAL_FAILURE(ExportAndCompile(model, dir.path(), /*cb=*/false, 0));
  const auto program = ReadProgram(dir.path() / "qpc");
  ASSERT_EQ(program.specializations_size(), 2);
  for (const auto& sp : program.specializations()) ExpectFused(sp, NumLayers(model), false, GetParam());
}

TEST_P(AttentionFusionTest, ContinuousBatchingFusesWithBatchIndex) {
  const fs::path model = kFixtures / GetParam();
  TempDir dir(GetParam() + "-cb");
  ASSERT_NO_FATAL_FAILURE(ExportAndCompile(model, dir.path(), /*cb=*/true, 3));
  const auto program = ReadProgram(dir.path() / "qpc");
  ASSERT_GE(program.specializations_size(), 2);
  for (const auto& sp : program.specializations()) ExpectFused(sp, NumLayers(model), true, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AttentionFusionTest,
                         ::testing::Values("gpt2", "llama", "mistral", "qwen2", "phi3", "gptj", "falcon", "gemma2"),
                         [](const auto& info) { return info.param; });

// CtxGatherCB over every slot is not a view of the cache: its rows come from batch_index at run
// time. CtxScatterCB into a retained-state buffer is written in place.
TEST(ContinuousBatchingPasses, GatherCBStaysAKernelAndScatterCBIsInPlace) {
  compiler::IrGraph g;
  const device::Shape cache = {3, 2, 5, 4};
  compiler::IrValue state;
  state.name = "past_key.0";
  state.dtype = qeff::v1::F32;
  state.shape = cache;
  state.state = 0;
  const int sv = g.AddValue(state);
  g.states.push_back({"past_key.0", "past_key.0_RetainedState", qeff::v1::F32, cache, sv});
  auto input = [&](const std::string& name, device::DType dt, device::Shape shape) {
    compiler::IrValue v;
    v.name = name;
    v.dtype = dt;
    v.shape = std::move(shape);
    v.host_input = true;
    const int i = g.AddValue(v);
    g.inputs.emplace_back(name, i);
    return i;
  };
  const int bi = input("batch_index", qeff::v1::I64, {2, 1});
  const int pos = input("position_ids", qeff::v1::I64, {2, 1});
  const int upd = input("k", qeff::v1::F32, {2, 2, 1, 4});
  auto slots = compiler::ConstTensor::Allocate(qeff::v1::I64, {1, 1, 5});
  for (int i = 0; i < 5; ++i) reinterpret_cast<int64_t*>(slots->mutable_data())[i] = i;
  compiler::IrValue idx;
  idx.name = "ctx_indices";
  idx.dtype = qeff::v1::I64;
  idx.shape = {1, 1, 5};
  idx.constant = slots;
  const int iv = g.AddValue(idx);
  auto node = [&](const std::string& type, std::vector<int> in, device::Shape shape) {
    compiler::IrValue v;
    v.name = type + ":out";
    v.dtype = qeff::v1::F32;
    v.shape = std::move(shape);
    v.producer = static_cast<int>(g.nodes.size());
    const int o = g.AddValue(v);
    compiler::IrNode n;
    n.op.set_type(type);
    n.in = std::move(in);
    n.out = {o};
    g.nodes.push_back(n);
    return o;
  };
  const int scattered = node("CtxScatterCB", {sv, bi, pos, upd}, cache);
  const int gathered = node("CtxGatherCB", {scattered, bi, iv}, {2, 2, 5, 4});
  g.outputs.emplace_back("gathered", gathered);
  g.outputs.emplace_back("past_key.0_RetainedState", scattered);
  compiler::ElideFullGather(g);
  compiler::RetainState(g);
  compiler::EliminateDeadCode(g);
  EXPECT_EQ(g.nodes[1].op.type(), "CtxGatherCB");
  EXPECT_FALSE(compiler::IsView(g, g.nodes[1]));
  EXPECT_EQ(g.Root(scattered), sv) << "CtxScatterCB writes the state buffer in place";
  for (const auto& n : g.nodes) EXPECT_NE(n.op.type(), "Copy");
}

// ---- continuous batching end to end: batched decode == each request alone -------------------

int FindSpec(const device::Session& s, int batch, int seq) {
  const auto& specs = s.specializations();
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].batch_size == batch && specs[i].seq_len == seq) return static_cast<int>(i);
  return -1;
}

// One call; rows are (ids, positions, slot) padded to the specialization's seq_len with pos -1.
// Returns logits [rows, vocab].
std::vector<float> Call(device::Session& s, int spec, const std::vector<std::vector<int64_t>>& ids,
                        const std::vector<std::vector<int64_t>>& pos, const std::vector<int64_t>& slots) {
  const auto& info = s.specializations()[spec];
  const int B = info.batch_size, S = info.seq_len;
  std::vector<int64_t> in(B * S, 0), p(B * S, -1), bi(slots);
  for (int b = 0; b < B; ++b)
    for (size_t t = 0; t < ids[b].size(); ++t) {
      in[b * S + t] = ids[b][t];
      p[b * S + t] = pos[b][t];
    }
  device::NamedInputs inputs = {{"input_ids", device::HostTensor::I64(in.data(), {B, S})},
                                {"position_ids", device::HostTensor::I64(p.data(), {B, S})}};
  if (!slots.empty()) inputs.emplace_back("batch_index", device::HostTensor::I64(bi.data(), {B, 1}));
  absl::Status st = s.Run(spec, inputs);
  EXPECT_TRUE(st.ok()) << st;
  auto out = s.Output("logits");
  EXPECT_TRUE(out.ok());
  if (!st.ok() || !out.ok()) return {};
  const float* l = static_cast<const float*>(out->data);
  return std::vector<float>(l, l + static_cast<size_t>(B) * s.vocab_size());
}

int64_t Argmax(const float* l, int n) { return std::max_element(l, l + n) - l; }

class ContinuousBatchingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ContinuousBatchingTest, BatchedDecodeIsBitIdenticalToRunningAlone) {
  const fs::path model = kFixtures / GetParam();
  TempDir solo_dir(GetParam() + "-solo"), cb_dir(GetParam() + "-cbrun");
  ASSERT_NO_FATAL_FAILURE(ExportAndCompile(model, solo_dir.path(), false, 0));
  ASSERT_NO_FATAL_FAILURE(ExportAndCompile(model, cb_dir.path(), true, 3));
  auto solo = device::Session::Load(solo_dir.path() / "qpc", 2);
  ASSERT_TRUE(solo.ok()) << solo.status();
  auto cb = device::Session::Load(cb_dir.path() / "qpc", 2);
  ASSERT_TRUE(cb.ok()) << cb.status();
  const int V = (*solo)->vocab_size();
  const int solo_prefill = FindSpec(**solo, 1, 8), solo_decode = FindSpec(**solo, 1, 1);
  const int cb_prefill = FindSpec(**cb, 1, 8), cb_decode = FindSpec(**cb, 3, 1);
  ASSERT_GE(solo_prefill, 0);
  ASSERT_GE(solo_decode, 0);
  ASSERT_GE(cb_prefill, 0);
  ASSERT_GE(cb_decode, 0);

  std::mt19937 rng(5);
  const std::vector<int> lengths = {11, 3, 6};
  const std::vector<int64_t> slot = {2, 0, 1};
  constexpr int kSteps = 5;
  std::vector<std::vector<int64_t>> prompts;
  for (int len : lengths) {
    std::vector<int64_t> p;
    for (int i = 0; i < len; ++i) p.push_back(static_cast<int64_t>(rng() % V));
    prompts.push_back(p);
  }
  auto prefill = [&](device::Session& s, int spec, const std::vector<int64_t>& prompt, bool batched, int64_t sl) {
    std::vector<float> last;
    for (size_t c = 0; c < prompt.size(); c += 8) {
      std::vector<int64_t> ids, pos;
      for (size_t t = c; t < std::min(prompt.size(), c + 8); ++t) {
        ids.push_back(prompt[t]);
        pos.push_back(static_cast<int64_t>(t));
      }
      last = Call(s, spec, {ids}, {pos}, batched ? std::vector<int64_t>{sl} : std::vector<int64_t>{});
    }
    return last;
  };
  // Alone: prefill, then greedy decode; logits of every step.
  std::vector<std::vector<std::vector<float>>> want(prompts.size());
  for (size_t r = 0; r < prompts.size(); ++r) {
    (*solo)->ResetState();
    auto l = prefill(**solo, solo_prefill, prompts[r], false, 0);
    want[r].push_back(l);
    int64_t pos = static_cast<int64_t>(prompts[r].size());
    for (int step = 0; step < kSteps; ++step) {
      l = Call(**solo, solo_decode, {{Argmax(l.data(), V)}}, {{pos++}}, {});
      want[r].push_back(l);
    }
  }
  // Batched: each prompt prefilled into its slot, then all decoded together, rows in another
  // order than the slots. In the last step request 0 has left: its row is padding (pos -1).
  (*cb)->ResetState();
  std::vector<int64_t> next(prompts.size()), pos(prompts.size());
  for (size_t r = 0; r < prompts.size(); ++r) {
    auto l = prefill(**cb, cb_prefill, prompts[r], true, slot[r]);
    ASSERT_EQ(0, std::memcmp(l.data(), want[r][0].data(), V * sizeof(float))) << "prefill of request " << r;
    next[r] = Argmax(l.data(), V);
    pos[r] = static_cast<int64_t>(prompts[r].size());
  }
  const std::vector<int> row_request = {1, 2, 0};
  for (int step = 0; step < kSteps; ++step) {
    const bool r0_left = step == kSteps - 1;
    std::vector<std::vector<int64_t>> ids, ps;
    std::vector<int64_t> slots;
    for (int r : row_request) {
      const bool pad = r0_left && r == 0;
      ids.push_back({pad ? 0 : next[r]});
      ps.push_back({pad ? -1 : pos[r]});
      slots.push_back(slot[r]);
    }
    auto l = Call(**cb, cb_decode, ids, ps, slots);
    ASSERT_EQ(l.size(), 3u * V);
    for (int row = 0; row < 3; ++row) {
      const int r = row_request[row];
      if (r0_left && r == 0) continue;
      ASSERT_EQ(0, std::memcmp(l.data() + row * V, want[r][step + 1].data(), V * sizeof(float)))
          << "request " << r << " decode step " << step;
      next[r] = Argmax(l.data() + row * V, V);
      ++pos[r];
    }
  }
}

// GQA + untied head (llama), soft-cap + sliding window (gemma2), divisors + tied head (gpt2).
INSTANTIATE_TEST_SUITE_P(Fixtures, ContinuousBatchingTest, ::testing::Values("llama", "gemma2", "gpt2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace qeff
