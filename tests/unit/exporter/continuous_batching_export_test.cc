// ExportOptions.continuous_batching (QEfficient's CB export) for every causal-LM fixture: the
// KV cache has full_batch_size rows, batch_index comes after the cache inputs, and the graph is
// the non-CB graph with CtxScatter/CtxGather swapped for CtxScatterCB/CtxGatherCB and nothing
// else changed (the compiler pattern-matches that attention chain). onnxruntime
// (tests/node/check_cb.js) prefills the fixture's two prompts into different slots, one per
// call, then decodes both in one call per step, and reproduces HF's logits and greedy tokens.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "services/exporter/exporter.h"
#include "tests/unit/exporter/export_test_util.h"

namespace qeff::exporter {
namespace {

using namespace test_util;

struct Case {
  std::string name;
  int fbs;            // KV slots
  std::string slots;  // the slots of prompts 0 and 1
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " (fbs " << c.fbs << ", slots " << c.slots << ")"; }

onnx::ModelProto Load(const fs::path& path) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in)) << path;
  return m;
}

std::string Metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props()) {
    if (p.key() == key) return p.value();
  }
  return "";
}

// The CB name of a cache op; every other op keeps its name.
std::string CbOp(const std::string& op) {
  if (op == "CtxScatter") return "CtxScatterCB";
  if (op == "CtxGather") return "CtxGatherCB";
  return op;
}

class ContinuousBatchingExportTest : public ::testing::TestWithParam<Case> {};

TEST_P(ContinuousBatchingExportTest, IsTheNonCbGraphWithCbCacheOps) {
  const fs::path dir = kFixtures / GetParam().name;
  TempDir tmp;
  ExportOptions cb_options;
  cb_options.continuous_batching = true;
  auto plain_summary = Export(dir, tmp.path() / "plain");
  ASSERT_TRUE(plain_summary.ok()) << plain_summary.status();
  auto s = Export(dir, tmp.path() / "cb", cb_options);  // runs the ONNX checker too
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->manifest_extra["continuous_batching"], true);
  EXPECT_EQ(plain_summary->manifest_extra["continuous_batching"], false);
  const json transforms = {"CustomOpsTransform", "KVCacheTransform"};
  EXPECT_EQ(s->manifest_extra["transforms"], transforms);
  EXPECT_EQ(plain_summary->manifest_extra["transforms"], transforms);
  EXPECT_EQ(s->manifest_extra["onnx_transforms"], json::array());
  EXPECT_EQ(s->num_parameters, plain_summary->num_parameters);

  const onnx::ModelProto plain = Load(tmp.path() / "plain/model.onnx");
  const onnx::ModelProto m = Load(tmp.path() / "cb/model.onnx");
  EXPECT_EQ(Metadata(m, "continuous_batching"), "true");
  EXPECT_EQ(Metadata(plain, "continuous_batching"), "");
  EXPECT_EQ(Metadata(m, "qeff_transforms"), Metadata(plain, "qeff_transforms"));

  // Inputs: the plain ones (cache axis 0 = full_batch_size), then batch_index [batch_size, 1].
  const auto& gin = m.graph().input();
  ASSERT_EQ(gin.size(), plain.graph().input_size() + 1);
  for (int i = 0; i < plain.graph().input_size(); ++i) {
    const auto& want = plain.graph().input(i);
    EXPECT_EQ(gin[i].name(), want.name());
    EXPECT_EQ(gin[i].type().tensor_type().elem_type(), want.type().tensor_type().elem_type());
    std::vector<std::string> dims = Dims(want);
    if (want.name().rfind("past_", 0) == 0) {
      ASSERT_EQ(dims[0], "batch_size");
      dims[0] = "full_batch_size";
    }
    EXPECT_EQ(Dims(gin[i]), dims) << want.name();
  }
  EXPECT_EQ(gin[0].name(), "input_ids");
  EXPECT_EQ(Dims(gin[0]), (std::vector<std::string>{"batch_size", "seq_len"}));
  EXPECT_EQ(Dims(gin[1]), (std::vector<std::string>{"batch_size", "seq_len"}));
  const auto& batch_index = gin[gin.size() - 1];
  EXPECT_EQ(batch_index.name(), "batch_index");
  EXPECT_EQ(batch_index.type().tensor_type().elem_type(), onnx::TensorProto::INT64);
  EXPECT_EQ(Dims(batch_index), (std::vector<std::string>{"batch_size", "1"}));

  // Outputs: the same names; logits per batch row, the retained state per slot.
  ASSERT_EQ(m.graph().output_size(), plain.graph().output_size());
  EXPECT_EQ(m.graph().output(0).name(), "logits");
  EXPECT_EQ(Dims(m.graph().output(0)), Dims(plain.graph().output(0)));
  for (int i = 1; i < m.graph().output_size(); ++i) {
    EXPECT_EQ(m.graph().output(i).name(), plain.graph().output(i).name());
    std::vector<std::string> dims = Dims(plain.graph().output(i));
    dims[0] = "full_batch_size";
    EXPECT_EQ(Dims(m.graph().output(i)), dims);
  }

  // Functions: the CB cache ops instead of the plain ones.
  std::set<std::string> want_functions, functions;
  for (const auto& f : plain.functions()) want_functions.insert(f.domain() + "::" + CbOp(f.name()));
  for (const auto& f : m.functions()) functions.insert(f.domain() + "::" + f.name());
  EXPECT_EQ(functions, want_functions);
  EXPECT_TRUE(functions.count("com.qualcomm.cloud::CtxScatterCB"));
  EXPECT_TRUE(functions.count("com.qualcomm.cloud::CtxGatherCB"));

  // Node by node: the same graph, the cache ops renamed and taking batch_index second.
  ASSERT_EQ(m.graph().node_size(), plain.graph().node_size());
  int scatters = 0, gathers = 0;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const auto& n = m.graph().node(i);
    const auto& p = plain.graph().node(i);
    EXPECT_EQ(n.op_type(), CbOp(p.op_type())) << i;
    EXPECT_EQ(n.domain(), p.domain()) << i;
    std::vector<std::string> inputs(n.input().begin(), n.input().end());
    if (n.op_type() == "CtxScatterCB" || n.op_type() == "CtxGatherCB") {
      scatters += n.op_type() == "CtxScatterCB";
      gathers += n.op_type() == "CtxGatherCB";
      ASSERT_GE(inputs.size(), 2u);
      EXPECT_EQ(inputs[1], "batch_index");
      inputs.erase(inputs.begin() + 1);
    } else {
      EXPECT_EQ(std::count(inputs.begin(), inputs.end(), "batch_index"), 0) << n.op_type();
    }
    EXPECT_EQ(inputs, std::vector<std::string>(p.input().begin(), p.input().end())) << i << " " << n.op_type();
    EXPECT_EQ(std::vector<std::string>(n.output().begin(), n.output().end()),
              std::vector<std::string>(p.output().begin(), p.output().end()));
    ASSERT_EQ(n.attribute_size(), p.attribute_size());
    for (int a = 0; a < n.attribute_size(); ++a) {
      EXPECT_EQ(n.attribute(a).SerializeAsString(), p.attribute(a).SerializeAsString()) << n.op_type();
    }
  }
  EXPECT_EQ(scatters, 2 * s->num_layers);
  EXPECT_EQ(gathers, 2 * s->num_layers);
  ASSERT_EQ(m.graph().initializer_size(), plain.graph().initializer_size());
  for (int i = 0; i < m.graph().initializer_size(); ++i) {
    EXPECT_EQ(m.graph().initializer(i).SerializeAsString(), plain.graph().initializer(i).SerializeAsString());
  }

  // The chain the compiler matches: CtxGatherCB (K) -> Transpose -> MatMul, CtxGatherCB (V) -> MatMul.
  std::map<std::string, std::vector<std::string>> consumers;
  for (const auto& n : m.graph().node()) {
    for (const auto& in : n.input()) consumers[in].push_back(n.op_type());
  }
  std::map<std::string, std::string> first_output_op;
  for (const auto& n : m.graph().node()) first_output_op[n.output(0)] = n.op_type();
  int k_chains = 0, v_chains = 0;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "CtxGatherCB") continue;
    const auto& c = consumers[n.output(0)];
    ASSERT_EQ(c.size(), 1u);
    if (c[0] == "Transpose") {
      for (const auto& t : m.graph().node()) {
        if (t.op_type() == "Transpose" && t.input(0) == n.output(0)) {
          EXPECT_EQ(consumers[t.output(0)], std::vector<std::string>{"MatMul"});
        }
      }
      ++k_chains;
    } else {
      EXPECT_EQ(c[0], "MatMul");
      ++v_chains;
    }
  }
  EXPECT_EQ(k_chains, s->num_layers);
  EXPECT_EQ(v_chains, s->num_layers);
  // The retained state comes straight from CtxScatterCB.
  for (int i = 1; i < m.graph().output_size(); ++i) {
    EXPECT_EQ(first_output_op[m.graph().output(i).name()], "CtxScatterCB");
  }
}

// QEfficient's CB loop in onnxruntime: each prompt prefilled alone (batch 1, chunked, right
// padded) into its own slot of a cache full of random values, then both decoded together.
TEST_P(ContinuousBatchingExportTest, OnnxRuntimeMatchesHfWithPromptsInDifferentSlots) {
  if (!HaveOnnxRuntime()) GTEST_SKIP() << "onnxruntime-node is not installed";
  const Case& c = GetParam();
  const fs::path dir = kFixtures / c.name;
  TempDir tmp;
  ExportOptions options;
  options.continuous_batching = true;
  auto s = Export(dir, tmp.path(), options);
  ASSERT_TRUE(s.ok()) << s.status();
  RunResult r = RunCheckCb(tmp.path(), dir, c.fbs, c.slots, /*chunk=*/6);
  std::optional<json> report = ParseReport(r.out);
  ASSERT_TRUE(report && report->is_object()) << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(report->value("ok", false)) << r.out;
  double worst = 0;
  for (const char* check : {"prefill_0", "prefill_1", "decode", "tokens_0", "tokens_1", "untouched_slots"}) {
    ASSERT_TRUE((*report)["checks"].contains(check)) << check << ": " << r.out;
    const json& got = (*report)["checks"][check];
    EXPECT_TRUE(got.value("pass", false)) << check << ": " << got;
    if (got.contains("max_abs_diff") && std::string(check) != "untouched_slots") {
      worst = std::max(worst, got["max_abs_diff"].get<double>());
    }
  }
  EXPECT_EQ((*report)["checks"]["decode"].value("steps", 0), 15);
  std::printf("%s (full_batch_size %d, slots %s): onnxruntime max abs logits diff vs HF: %.3g\n", c.name.c_str(),
              c.fbs, c.slots.c_str(), worst);
  EXPECT_LE(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ContinuousBatchingExportTest,
                         ::testing::Values(Case{"gpt2", 4, "2,0"}, Case{"llama", 4, "3,1"}, Case{"mistral", 3, "1,2"},
                                           Case{"qwen2", 4, "0,3"}, Case{"phi3", 3, "2,1"}, Case{"gptj", 4, "1,0"},
                                           Case{"falcon", 3, "0,2"}, Case{"gemma2", 4, "2,0"}),
                         [](const auto& info) { return info.param.name; });

// An encoder has no KV cache to batch: a clear INVALID_ARGUMENT, not a graph without batch_index.
TEST(ContinuousBatchingExport, EncodersAreRejected) {
  TempDir tmp;
  ExportOptions options;
  options.continuous_batching = true;
  auto s = Export(kFixtures / "bert", tmp.path(), options);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  EXPECT_NE(std::string(s.status().message()).find("continuous batching"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace qeff::exporter
