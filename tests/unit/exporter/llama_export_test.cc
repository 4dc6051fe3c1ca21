// services/exporter/models/llama.cc: LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM
// export graphs that pass onnx's checker, follow QEff's IO contract (KV cache with
// num_kv_heads), use only the compiler's ops (+ CtxScatter/CtxGather/CustomRMSNorm), store
// nn.Linear weights transposed to [in, out], and run in onnxruntime (tests/node/check_gpt2.js,
// given the KV cache shape) reproducing HF's logits and greedy tokens. Unsupported configs get
// clear statuses.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "services/exporter/exporter.h"
#include "tests/unit/exporter/export_test_util.h"

namespace qeff::exporter {
namespace {

using ::testing::HasSubstr;
using namespace test_util;

const std::set<std::string>& kAllowedOps = AllowedOps(/*allow_constant=*/false);

struct Case {
  std::string name, architecture;
  int64_t kv_heads, head_dim;
  bool tied, qkv_bias, sliding;
};

class LlamaExportTest : public ::testing::TestWithParam<Case> {};

TEST_P(LlamaExportTest, FollowsTheContractAndPassesTheChecker) {
  const Case& c = GetParam();
  const fs::path dir = kFixtures / c.name;
  const json ref = ReadJson(dir / "reference.json");
  TempDir tmp;
  auto s = Export(dir, tmp.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->architecture, c.architecture);
  EXPECT_EQ(s->num_layers, 2);
  // HF counts the tied lm_head once; the RoPE tables are constants, not parameters.
  EXPECT_EQ(s->num_parameters, ref["model"]["num_parameters"].get<int64_t>());
  EXPECT_EQ(s->manifest_extra["num_kv_heads"], c.kv_heads);
  EXPECT_EQ(s->manifest_extra["tied_lm_head"], c.tied);
  EXPECT_EQ(s->manifest_extra["sliding_window"], c.sliding ? 12 : 0);

  const fs::path model_path = tmp.path() / "model.onnx";
  onnx::ModelProto m;
  ASSERT_TRUE(CheckedModel(model_path, &m));
  std::set<std::string> functions;
  for (const auto& f : m.functions()) functions.insert(f.domain() + "::" + f.name());
  EXPECT_EQ(functions, (std::set<std::string>{"com.qualcomm.cloud::CtxScatter", "com.qualcomm.cloud::CtxGather",
                                              "com.qti.aisw.onnx::CustomRMSNorm"}));
  std::vector<std::string> inputs, outputs;
  for (const auto& v : m.graph().input()) inputs.push_back(v.name());
  for (const auto& v : m.graph().output()) outputs.push_back(v.name());
  EXPECT_EQ(inputs, (std::vector<std::string>{"input_ids", "position_ids", "past_key.0", "past_value.0", "past_key.1",
                                               "past_value.1"}));
  EXPECT_EQ(outputs, (std::vector<std::string>{"logits", "past_key.0_RetainedState", "past_value.0_RetainedState",
                                                "past_key.1_RetainedState", "past_value.1_RetainedState"}));
  const std::vector<std::string> kv = {"batch_size", std::to_string(c.kv_heads), "ctx_len", std::to_string(c.head_dim)};
  EXPECT_EQ(Dims(m.graph().input(2)), kv);
  EXPECT_EQ(Dims(m.graph().output(1)), kv);
  EXPECT_EQ(Dims(m.graph().output(0)), (std::vector<std::string>{"batch_size", "1", "512"}));

  std::map<std::string, std::string> producer;
  std::map<std::string, int> counts;
  for (const auto& n : m.graph().node()) {
    if (n.domain() == "com.qualcomm.cloud") {
      EXPECT_TRUE(n.op_type() == "CtxScatter" || n.op_type() == "CtxGather") << n.op_type();
    } else if (n.domain() == "com.qti.aisw.onnx") {
      EXPECT_EQ(n.op_type(), "CustomRMSNorm");
    } else {
      EXPECT_EQ(n.domain(), "");
      EXPECT_TRUE(kAllowedOps.count(n.op_type())) << "op outside the contract: " << n.op_type();
    }
    ++counts[n.op_type()];
    for (const auto& o : n.output()) producer[o] = n.op_type();
  }
  for (int i = 1; i < m.graph().output_size(); ++i) EXPECT_EQ(producer[m.graph().output(i).name()], "CtxScatter");
  EXPECT_EQ(counts["CustomRMSNorm"], 5);  // 2 per layer + final norm
  EXPECT_EQ(counts["Cos"], 0) << "RoPE tables are precomputed";
  // GQA folds the query heads of each kv head into its rows (reshapes), so the cache is never
  // repeated: the only Expand is the logits gather index.
  EXPECT_EQ(counts["Expand"], 1) << "no repeat of K/V for grouped-query attention";

  // nn.Linear weights are stored as [in, out] = HF's [out, in] transposed; the rest as is.
  auto st = hf::SafetensorsFile::Open(dir / "model.safetensors");
  ASSERT_TRUE(st.ok());
  const hf::TensorView* k = st->Find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  const std::vector<float> hf_k = *hf::ToFloatVector(*k);
  const std::vector<float> got_k = ReadInitializer(m, tmp.path(), "model.layers.1.self_attn.k_proj.weight");
  const int64_t out = k->shape[0], in = k->shape[1];
  ASSERT_EQ(got_k.size(), hf_k.size());
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) ASSERT_EQ(got_k[i * out + o], hf_k[o * in + i]);
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == "model.layers.1.self_attn.k_proj.weight") {
      EXPECT_EQ(std::vector<int64_t>(t.dims().begin(), t.dims().end()), (std::vector<int64_t>{in, out}));
    }
  }
  EXPECT_EQ(ReadInitializer(m, tmp.path(), "model.norm.weight"), *hf::ToFloatVector(*st->Find("model.norm.weight")));
  bool has_head = false, has_qbias = false;
  for (const auto& t : m.graph().initializer()) {
    has_head |= t.name() == "lm_head.weight";
    has_qbias |= t.name() == "model.layers.0.self_attn.q_proj.bias";
  }
  EXPECT_EQ(has_head, !c.tied);
  EXPECT_EQ(has_qbias, c.qkv_bias);
}

// onnxruntime (an independent executor of the same graph, custom ops through their function
// bodies) reproduces HF: prefill, token by token, greedy, chunked prefill, padded batch.
TEST_P(LlamaExportTest, OnnxRuntimeMatchesHf) {
  if (!HaveOnnxRuntime()) GTEST_SKIP() << "onnxruntime-node is not installed";
  ExpectOnnxRuntimeMatchesHf(GetParam().name, GetParam().kv_heads, GetParam().head_dim);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaExportTest,
                         ::testing::Values(Case{"llama", "LlamaForCausalLM", 2, 16, false, false, false},
                                           Case{"mistral", "MistralForCausalLM", 1, 16, false, false, true},
                                           Case{"qwen2", "Qwen2ForCausalLM", 2, 16, true, true, false}),
                         [](const auto& info) { return info.param.name; });

// The mistral fixture's prompt 1 (17 tokens) is longer than its window (12): without the
// sliding-window mask it no longer matches HF, while prompt 0 (8 tokens) still does.
TEST(LlamaExport, MistralSlidingWindowIsWhatMakesLongPromptsMatch) {
  if (!HaveOnnxRuntime()) GTEST_SKIP() << "onnxruntime-node is not installed";
  TempDir tmp;
  const fs::path no_window = EditedCopy(tmp.path() / "a", "mistral", [](json& c) { c["sliding_window"] = nullptr; });
  ASSERT_TRUE(Export(no_window, tmp.path() / "e").ok());
  std::string log;
  json report = CheckWithOnnxRuntime(tmp.path() / "e", kFixtures / "mistral", 1, 16, &log);
  ASSERT_TRUE(report.is_object() && report.contains("checks")) << log;
  EXPECT_TRUE(report["checks"]["token_by_token_0"].value("pass", false)) << log;
  EXPECT_FALSE(report["checks"]["token_by_token_1"].value("pass", true)) << log;
  std::printf("mistral without its window: prompt 1 max abs diff %.3g\n",
              report["checks"]["token_by_token_1"].value("max_abs_diff", 0.0));
}

TEST(LlamaExport, UnsupportedOrInconsistentConfigsGetClearStatuses) {
  TempDir tmp;
  // llama3 scaling without its frequency factors: the missing field is named.
  auto scaled = Export(EditedCopy(tmp.path() / "a", "llama",
                                  [](json& c) { c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; }),
                       tmp.path() / "ea");
  EXPECT_EQ(scaled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(scaled.status().message()), HasSubstr("rope_scaling"));
  EXPECT_THAT(std::string(scaled.status().message()), HasSubstr("low_freq_factor"));
  // An unknown scaling type is refused by name.
  auto unknown = Export(EditedCopy(tmp.path() / "a2", "llama",
                                   [](json& c) { c["rope_scaling"] = {{"rope_type", "su-mix"}, {"factor", 8.0}}; }),
                        tmp.path() / "ea2");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("su-mix"));

  auto act = Export(EditedCopy(tmp.path() / "b", "llama", [](json& c) { c["hidden_act"] = "relu"; }),
                    tmp.path() / "eb");
  EXPECT_EQ(act.status().code(), absl::StatusCode::kUnimplemented);

  auto window = Export(EditedCopy(tmp.path() / "c", "qwen2",
                                  [](json& c) {
                                    c["use_sliding_window"] = true;
                                    c["sliding_window"] = 8;
                                  }),
                       tmp.path() / "ec");
  EXPECT_EQ(window.status().code(), absl::StatusCode::kUnimplemented);

  // kv heads that do not match the checkpoint: the weight shape check names the tensor.
  auto kv = Export(EditedCopy(tmp.path() / "d", "llama", [](json& c) { c["num_key_value_heads"] = 4; }),
                   tmp.path() / "ed");
  EXPECT_EQ(kv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(kv.status().message()), HasSubstr("k_proj.weight"));

  auto groups = Export(EditedCopy(tmp.path() / "e", "llama", [](json& c) { c["num_key_value_heads"] = 3; }),
                       tmp.path() / "ee");
  EXPECT_EQ(groups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(groups.status().message()), HasSubstr("num_key_value_heads"));

  // An untied model whose lm_head.weight is missing.
  auto untied = Export(EditedCopy(tmp.path() / "f", "qwen2", [](json& c) { c["tie_word_embeddings"] = false; }),
                       tmp.path() / "ef");
  EXPECT_FALSE(untied.ok());
  EXPECT_THAT(std::string(untied.status().message()), HasSubstr("lm_head.weight"));
}

}  // namespace
}  // namespace qeff::exporter
