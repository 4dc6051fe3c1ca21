// services/exporter/models/{phi3,gptj,falcon}.cc: Phi3ForCausalLM, GPTJForCausalLM and
// FalconForCausalLM export graphs that pass onnx's checker, follow QEff's IO contract (KV cache
// with the model's kv heads: Falcon multi-query keeps ONE whatever num_kv_heads says), use only
// the compiler's ops (+ CtxScatter/CtxGather/CustomRMSNorm), count HF's parameters, and run in
// onnxruntime (tests/node/check_gpt2.js, given the KV cache shape) reproducing HF's logits and
// greedy tokens. Unsupported configs get UNIMPLEMENTED naming the field.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "common/hf/model_folder.h"
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
  bool rms_norm;  // CustomRMSNorm (phi3) vs LayerNormalization (gptj, falcon)
  int layer_norms;
};

class MoreModelsExportTest : public ::testing::TestWithParam<Case> {};

TEST_P(MoreModelsExportTest, FollowsTheContractAndPassesTheChecker) {
  const Case& c = GetParam();
  const fs::path dir = kFixtures / c.name;
  const json ref = ReadJson(dir / "reference.json");
  TempDir tmp;
  auto s = Export(dir, tmp.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->architecture, c.architecture);
  EXPECT_EQ(s->num_layers, 2);
  EXPECT_EQ(s->num_parameters, ref["model"]["num_parameters"].get<int64_t>());
  EXPECT_EQ(s->manifest_extra["num_kv_heads"], c.kv_heads);
  EXPECT_EQ(s->manifest_extra["tied_lm_head"], ref["model"]["tie_word_embeddings"].get<bool>());

  const fs::path model_path = tmp.path() / "model.onnx";
  onnx::ModelProto m;
  ASSERT_TRUE(CheckedModel(model_path, &m));
  std::set<std::string> functions;
  for (const auto& f : m.functions()) functions.insert(f.domain() + "::" + f.name());
  std::set<std::string> want_functions = {"com.qualcomm.cloud::CtxScatter", "com.qualcomm.cloud::CtxGather"};
  if (c.rms_norm) want_functions.insert("com.qti.aisw.onnx::CustomRMSNorm");
  EXPECT_EQ(functions, want_functions);
  std::vector<std::string> inputs, outputs;
  for (const auto& v : m.graph().input()) inputs.push_back(v.name());
  for (const auto& v : m.graph().output()) outputs.push_back(v.name());
  EXPECT_EQ(inputs, (std::vector<std::string>{"input_ids", "position_ids", "past_key.0", "past_value.0", "past_key.1",
                                               "past_value.1"}));
  EXPECT_EQ(outputs, (std::vector<std::string>{"logits", "past_key.0_RetainedState", "past_value.0_RetainedState",
                                                "past_key.1_RetainedState", "past_value.1_RetainedState"}));
  const std::vector<std::string> kv = {"batch_size", std::to_string(c.kv_heads), "ctx_len", std::to_string(c.head_dim)};
  for (int i = 2; i < m.graph().input_size(); ++i) EXPECT_EQ(Dims(m.graph().input(i)), kv);
  for (int i = 1; i < m.graph().output_size(); ++i) EXPECT_EQ(Dims(m.graph().output(i)), kv);
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
  EXPECT_EQ(counts["CustomRMSNorm"], c.rms_norm ? 5 : 0);
  EXPECT_EQ(counts["LayerNormalization"], c.layer_norms);
  EXPECT_EQ(counts["Cos"], 0) << "RoPE tables are precomputed";
}

// onnxruntime (an independent executor of the same graph, custom ops through their function
// bodies) reproduces HF: prefill, token by token, greedy, chunked prefill, padded batch.
TEST_P(MoreModelsExportTest, OnnxRuntimeMatchesHf) {
  if (!HaveOnnxRuntime()) GTEST_SKIP() << "onnxruntime-node is not installed";
  ExpectOnnxRuntimeMatchesHf(GetParam().name, GetParam().kv_heads, GetParam().head_dim);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MoreModelsExportTest,
                         ::testing::Values(Case{"phi3", "Phi3ForCausalLM", 4, 16, true, 0},
                                           Case{"gptj", "GPTJForCausalLM", 4, 16, false, 3},
                                           Case{"falcon", "FalconForCausalLM", 1, 16, false, 3}),
                         [](const auto& info) { return info.param.name; });

void ExpectUnimplemented(const absl::StatusOr<ExportSummary>& s, const std::string& field) {
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnimplemented) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr(field));
}

TEST(MoreModelsExport, UnsupportedConfigsAreUnimplementedNamingTheField) {
  TempDir tmp;
  int n = 0;
  auto run = [&](const std::string& fixture, const std::function<void(json&)>& edit) {
    const fs::path base = tmp.path() / std::to_string(n++);
    return Export(EditedCopy(base / "in", fixture, edit), base / "out");
  };
  ExpectUnimplemented(run("phi3", [](json& c) { c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; }),
                      "rope_scaling");
  ExpectUnimplemented(run("phi3", [](json& c) { c["hidden_act"] = "relu"; }), "hidden_act");
  ExpectUnimplemented(run("gptj", [](json& c) { c["rotary_dim"] = nullptr; }), "rotary_dim");
  ExpectUnimplemented(run("gptj", [](json& c) { c["activation_function"] = "relu"; }), "activation_function");
  ExpectUnimplemented(run("falcon", [](json& c) { c["alibi"] = true; }), "alibi");
  ExpectUnimplemented(run("falcon", [](json& c) { c["rope_scaling"] = {{"type", "ntk-by-parts"}, {"factor", 2.0}}; }),
                      "ntk-by-parts");
  // longrope with the wrong number of factors (head_dim / 2 are needed).
  auto longrope = run("phi3", [](json& c) {
    c["rope_scaling"] = {{"type", "longrope"}, {"short_factor", json::array({1.0, 1.0})},
                         {"long_factor", json::array({1.0, 1.0})}};
  });
  EXPECT_EQ(longrope.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(longrope.status().message()), HasSubstr("short_factor"));
  // A falcon-7b checkpoint declared as the new layout: the missing tensor is named.
  auto falcon_new = run("falcon", [](json& c) { c["new_decoder_architecture"] = true; });
  EXPECT_EQ(falcon_new.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(falcon_new.status().message()), HasSubstr("ln_attn"));

  // Inconsistent with the checkpoint: the weight shape check names the tensor.
  auto gptj_dim = run("gptj", [](json& c) { c["n_inner"] = 128; });
  EXPECT_EQ(gptj_dim.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(gptj_dim.status().message()), HasSubstr("fc_in.weight"));
  // Falcon without multi_query expects a [3·hidden, hidden] fused projection.
  auto falcon_mq = run("falcon", [](json& c) { c["multi_query"] = false; });
  EXPECT_EQ(falcon_mq.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(falcon_mq.status().message()), HasSubstr("query_key_value.weight"));
}

}  // namespace
}  // namespace qeff::exporter
