// services/exporter: the GPT-2 graph passes onnx's checker, follows QEff's IO contract and op
// list, and onnxruntime (tests/node/check_gpt2.js) reproduces HF's logits and greedy tokens.
#include "services/exporter/exporter.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "services/exporter/custom_ops.h"
#include "services/exporter/graph_builder.h"
#include "tests/unit/exporter/export_test_util.h"

namespace qeff::exporter {
namespace {

using ::testing::HasSubstr;
using namespace test_util;

const fs::path kGpt2 = kFixtures / "gpt2";
const fs::path kGenerator = fs::path(QEFF_BINARY_DIR) / "bench/qeff-make-random-model";

// The contract ops plus Constant.
const std::set<std::string>& kAllowedOps = AllowedOps(/*allow_constant=*/true);

onnx::ModelProto Load(const fs::path& path) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in));
  return m;
}

std::string Metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props()) {
    if (p.key() == key) return p.value();
  }
  return "";
}

// Runs the node checker on the GPT-2 export; prints and returns its JSON report.
json CheckGpt2WithOnnxRuntime(const fs::path& export_dir, const fs::path& hf_dir, bool with_reference) {
  if (!HaveOnnxRuntime()) {
    ADD_FAILURE() << "onnxruntime-node is not installed: run `cd tests/node && npm install --ignore-scripts`";
    return json();
  }
  RunResult r = RunCheckGpt2(export_dir, hf_dir / "config.json", with_reference ? hf_dir : fs::path());
  std::printf("%s", r.out.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::optional<json> j = ParseReport(r.out);
  if (!j) {
    ADD_FAILURE() << "no JSON report from check_gpt2.js";
    return json();
  }
  EXPECT_TRUE(j->is_object() && j->value("ok", false)) << r.out;
  return *j;
}

double MaxDiff(const json& report) {
  double worst = 0;
  for (const auto& [name, c] : report["checks"].items()) {
    if (c.contains("max_abs_diff")) worst = std::max(worst, c["max_abs_diff"].get<double>());
  }
  return worst;
}

RunResult Generate(const fs::path& out, const std::vector<std::string>& args) {
  std::string cmd = Quote(kGenerator.string()) + " --out " + Quote(out.string());
  for (const auto& a : args) cmd += " " + Quote(a);
  return Run(cmd);
}

TEST(Exporter, Gpt2FixtureFollowsTheContractAndPassesTheChecker) {
  TempDir tmp;
  std::vector<std::string> progress;
  auto folder = hf::ModelFolder::Open(kGpt2);
  ASSERT_TRUE(folder.ok()) << folder.status();
  auto s = ExportModel(*folder, {}, tmp.path(), [&](const std::string& stage, const std::string& msg, int64_t done,
                                                    int64_t total) { progress.push_back(stage + ":" + msg); });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->architecture, "GPT2LMHeadModel");
  EXPECT_EQ(s->num_layers, 2);
  EXPECT_EQ(s->num_parameters, 1637792);  // reference.json model.num_parameters (tied lm_head counted once)
  EXPECT_THAT(progress, ::testing::Contains("export:layer 2 of 2"));

  const fs::path model_path = tmp.path() / "model.onnx";
  ASSERT_TRUE(fs::exists(tmp.path() / "model.onnx.data"));
  EXPECT_LT(fs::file_size(model_path), 64u << 10);  // weights live in the external file
  try {
    onnx::checker::check_model(model_path.string());
  } catch (const std::exception& e) {
    FAIL() << "checker: " << e.what();
  }

  onnx::ModelProto m = Load(model_path);
  EXPECT_EQ(m.ir_version(), 8);
  std::map<std::string, int64_t> opsets;
  for (const auto& o : m.opset_import()) opsets[o.domain()] = o.version();
  EXPECT_EQ(opsets[""], 17);
  EXPECT_EQ(opsets["com.qualcomm.cloud"], 1);
  std::set<std::string> functions;
  for (const auto& f : m.functions()) functions.insert(f.domain() + "::" + f.name());
  EXPECT_EQ(functions, (std::set<std::string>{"com.qualcomm.cloud::CtxScatter", "com.qualcomm.cloud::CtxGather"}));

  std::vector<std::string> inputs, outputs;
  for (const auto& v : m.graph().input()) inputs.push_back(v.name());
  for (const auto& v : m.graph().output()) outputs.push_back(v.name());
  EXPECT_EQ(inputs, (std::vector<std::string>{"input_ids", "position_ids", "past_key.0", "past_value.0", "past_key.1",
                                               "past_value.1"}));
  EXPECT_EQ(outputs, (std::vector<std::string>{"logits", "past_key.0_RetainedState", "past_value.0_RetainedState",
                                                "past_key.1_RetainedState", "past_value.1_RetainedState"}));
  EXPECT_EQ(Dims(m.graph().input(0)), (std::vector<std::string>{"batch_size", "seq_len"}));
  EXPECT_EQ(m.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::INT64);
  EXPECT_EQ(m.graph().input(1).type().tensor_type().elem_type(), onnx::TensorProto::INT64);
  EXPECT_EQ(Dims(m.graph().input(2)), (std::vector<std::string>{"batch_size", "2", "ctx_len", "16"}));
  EXPECT_EQ(Dims(m.graph().output(0)), (std::vector<std::string>{"batch_size", "1", "50257"}));
  EXPECT_EQ(Dims(m.graph().output(1)), (std::vector<std::string>{"batch_size", "2", "ctx_len", "16"}));

  // Only contract ops (plus the two custom ops) in the main graph; the retained-state outputs
  // come straight from CtxScatter.
  std::map<std::string, std::string> producer;
  for (const auto& n : m.graph().node()) {
    if (n.domain() == "com.qualcomm.cloud") {
      EXPECT_TRUE(n.op_type() == "CtxScatter" || n.op_type() == "CtxGather") << n.op_type();
    } else {
      EXPECT_EQ(n.domain(), "");
      EXPECT_TRUE(kAllowedOps.count(n.op_type())) << "op outside the contract: " << n.op_type();
    }
    for (const auto& o : n.output()) producer[o] = n.op_type();
  }
  for (int i = 1; i < m.graph().output_size(); ++i) EXPECT_EQ(producer[m.graph().output(i).name()], "CtxScatter");

  // Weights: external, float32, named after the HF tensors, 64-byte aligned.
  int external = 0;
  for (const auto& t : m.graph().initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    ++external;
    EXPECT_EQ(t.data_type(), onnx::TensorProto::FLOAT);
    EXPECT_EQ(t.name().rfind("transformer.", 0), 0u) << t.name();
    for (const auto& e : t.external_data()) {
      if (e.key() == "location") {
        EXPECT_EQ(e.value(), "model.onnx.data");
      } else if (e.key() == "offset") {
        EXPECT_EQ(std::stoull(e.value()) % 64, 0u) << t.name();
      }
    }
  }
  EXPECT_EQ(external, 28);
  auto st = hf::SafetensorsFile::Open(kGpt2 / "model.safetensors");
  ASSERT_TRUE(st.ok());
  auto want = hf::ToFloatVector(*st->Find("transformer.h.1.mlp.c_fc.weight"));
  EXPECT_EQ(ReadInitializer(m, tmp.path(), "transformer.h.1.mlp.c_fc.weight"), *want);

  EXPECT_EQ(Metadata(m, "qeff_transforms"), "KVCacheTransform,CustomOpsTransform");
  EXPECT_EQ(Metadata(m, "architecture"), "GPT2LMHeadModel");
  EXPECT_EQ(Metadata(m, "num_layers"), "2");
  EXPECT_EQ(s->manifest_extra["num_heads"], 2);
  // QEfficient's names for what was applied (read by the compiler for qconfig.json).
  EXPECT_EQ(s->manifest_extra["transforms"], json({"CustomOpsTransform", "KVCacheTransform"}));
  EXPECT_EQ(s->manifest_extra["onnx_transforms"], json::array());
  EXPECT_EQ(s->manifest_extra["continuous_batching"], false);

  // Deterministic: the same inputs give the same bytes (the cache key relies on it).
  TempDir again;
  ASSERT_TRUE(Export(kGpt2, again.path()).ok());
  std::ifstream a(model_path, std::ios::binary), b(again.path() / "model.onnx", std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
}

TEST(Exporter, OnnxRuntimeMatchesHfOnTheGpt2Fixture) {
  TempDir tmp;
  ASSERT_TRUE(Export(kGpt2, tmp.path()).ok());
  json report = CheckGpt2WithOnnxRuntime(tmp.path(), kGpt2, /*with_reference=*/true);
  ASSERT_TRUE(report.is_object());
  for (const char* check : {"prefill_0", "prefill_1", "token_by_token_0", "token_by_token_1", "greedy_0", "greedy_1",
                            "chunked_prefill_0", "chunked_prefill_1", "chunked_greedy_1", "batch_padded"}) {
    EXPECT_TRUE(report["checks"].contains(check)) << check;
    EXPECT_TRUE(report["checks"][check].value("pass", false)) << check << ": " << report["checks"][check];
  }
  std::printf("max abs logits diff vs HF: %.3g\n", MaxDiff(report));
  EXPECT_LE(MaxDiff(report), 1e-4);
}

struct RandomShape {
  std::vector<std::string> args;
  bool prefixed;
};

TEST(Exporter, RandomGpt2ShapesRunInOnnxRuntime) {
  ASSERT_TRUE(fs::exists(kGenerator)) << kGenerator;
  const std::vector<RandomShape> shapes = {
      {{"--n-layer", "3", "--n-embd", "48", "--n-head", "4", "--vocab", "300", "--n-positions", "64", "--seed", "7"},
       true},
      {{"--n-layer", "1", "--n-embd", "64", "--n-head", "2", "--vocab", "1000", "--n-positions", "40", "--seed", "3",
        "--dtype", "bf16", "--no-prefix"},
       false},
      {{"--n-layer", "4", "--n-embd", "96", "--n-head", "8", "--vocab", "777", "--n-positions", "128", "--seed", "11",
        "--dtype", "f16"},
       true},
  };
  for (const auto& shape : shapes) {
    TempDir tmp;
    RunResult gen = Generate(tmp.path() / "hf", shape.args);
    ASSERT_EQ(gen.exit_code, 0) << gen.out;
    EXPECT_THAT(gen.out, HasSubstr((tmp.path() / "hf").string()));
    auto s = Export(tmp.path() / "hf", tmp.path() / "export");
    ASSERT_TRUE(s.ok()) << s.status();
    try {
      onnx::checker::check_model((tmp.path() / "export/model.onnx").string());
    } catch (const std::exception& e) {
      FAIL() << "checker: " << e.what();
    }
    EXPECT_EQ(s->manifest_extra["weight_prefix"], shape.prefixed ? "transformer." : "");
    json report = CheckGpt2WithOnnxRuntime(tmp.path() / "export", tmp.path() / "hf", /*with_reference=*/false);
    std::printf("random GPT-2 [%s]: max abs diff decode/chunked/batch vs full prefill: %.3g\n",
                ::testing::PrintToString(shape.args).c_str(), MaxDiff(report));
  }
}

TEST(Exporter, PrefixedAndUnprefixedCheckpointsExportTheSameWeights) {
  TempDir tmp;
  const std::vector<std::string> args = {"--n-layer", "2", "--n-embd", "32", "--n-head", "4", "--vocab", "100",
                                         "--n-positions", "32", "--seed", "5"};
  std::vector<std::string> no_prefix = args;
  no_prefix.push_back("--no-prefix");
  ASSERT_EQ(Generate(tmp.path() / "a", args).exit_code, 0);
  ASSERT_EQ(Generate(tmp.path() / "b", no_prefix).exit_code, 0);
  auto b = hf::ModelFolder::Open(tmp.path() / "b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->HasTensor("h.0.attn.bias"));  // the hub layout's mask buffers are present...
  ASSERT_TRUE(Export(tmp.path() / "a", tmp.path() / "ea").ok());
  ASSERT_TRUE(Export(tmp.path() / "b", tmp.path() / "eb").ok());
  std::ifstream da(tmp.path() / "ea/model.onnx.data", std::ios::binary), db(tmp.path() / "eb/model.onnx.data", std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(da), {}, std::istreambuf_iterator<char>(db)));
  onnx::ModelProto mb = Load(tmp.path() / "eb/model.onnx");
  for (const auto& t : mb.graph().initializer()) {
    EXPECT_EQ(t.name().find(".attn.bias"), std::string::npos) << t.name();  // ...and ignored
    EXPECT_EQ(t.name().find("masked_bias"), std::string::npos) << t.name();
    EXPECT_EQ(t.name().rfind("transformer.", 0), std::string::npos);
  }
}

TEST(Exporter, HalfPrecisionCheckpointsBecomeFloat32) {
  TempDir tmp;
  ASSERT_EQ(Generate(tmp.path() / "hf", {"--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--vocab", "50",
                                         "--n-positions", "16", "--dtype", "f16"})
                .exit_code,
            0);
  ASSERT_TRUE(Export(tmp.path() / "hf", tmp.path() / "e").ok());
  auto st = hf::SafetensorsFile::Open(tmp.path() / "hf/model.safetensors");
  ASSERT_TRUE(st.ok());
  const hf::TensorView* v = st->Find("transformer.h.0.attn.c_attn.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, hf::DType::kF16);
  onnx::ModelProto m = Load(tmp.path() / "e/model.onnx");
  EXPECT_EQ(ReadInitializer(m, tmp.path() / "e", "transformer.h.0.attn.c_attn.weight"), *hf::ToFloatVector(*v));
}

TEST(Exporter, Fp16ClipClampsWeightsButKeepsInfinities) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "hf");
  fs::copy_file(kGpt2 / "config.json", tmp.path() / "hf/config.json");
  auto st = hf::SafetensorsFile::Open(kGpt2 / "model.safetensors");
  ASSERT_TRUE(st.ok());
  std::vector<hf::TensorToWrite> tensors;
  for (const auto& [name, v] : st->tensors()) {
    std::vector<float> f = *hf::ToFloatVector(v);
    if (name == "transformer.ln_f.bias") {
      f[0] = 1e6f;
      f[1] = -1e6f;
      f[2] = std::numeric_limits<float>::infinity();
      f[3] = -std::numeric_limits<float>::infinity();
    }
    tensors.push_back({name, hf::DType::kF32, v.shape, std::string(reinterpret_cast<const char*>(f.data()), f.size() * 4)});
  }
  ASSERT_TRUE(hf::WriteSafetensors(tmp.path() / "hf/model.safetensors", tensors).ok());
  ExportOptions options;
  options.fp16_clip = true;
  ASSERT_TRUE(Export(tmp.path() / "hf", tmp.path() / "e", options).ok());
  onnx::ModelProto m = Load(tmp.path() / "e/model.onnx");
  std::vector<float> b = ReadInitializer(m, tmp.path() / "e", "transformer.ln_f.bias");
  ASSERT_GE(b.size(), 5u);
  EXPECT_EQ(b[0], 65504.0f);
  EXPECT_EQ(b[1], -65504.0f);
  EXPECT_EQ(b[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(b[3], -std::numeric_limits<float>::infinity());
  EXPECT_THAT(Metadata(m, "qeff_transforms"), HasSubstr("FP16ClipTransform"));
  // Inline float constants are clipped too (the attention mask value).
  for (const auto& t : m.graph().initializer()) {
    if (t.data_type() != onnx::TensorProto::FLOAT || t.data_location() == onnx::TensorProto::EXTERNAL) continue;
    float x;
    ASSERT_EQ(t.raw_data().size(), 4u);
    std::memcpy(&x, t.raw_data().data(), 4);
    EXPECT_LE(std::fabs(x), 65504.0f) << t.name();
  }
}

// Runs `model` once with onnxruntime (tests/node/run_model.js) and returns its outputs.
json RunOnnx(const fs::path& model, const json& inputs) {
  const fs::path in = model.parent_path() / "inputs.json";
  std::ofstream(in) << inputs.dump();
  RunResult r = Run("cd " + Quote(kNodeDir.string()) + " && node run_model.js " + Quote(model.string()) + " " +
                    Quote(in.string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r.out;
  return j;
}

TEST(CustomOps, CtxScatterAndCtxGatherFunctionBodiesRunInOnnxRuntime) {
  TempDir tmp;
  auto g = GraphBuilder::Open(tmp.path() / "model.onnx.data", false);
  ASSERT_TRUE(g.ok());
  g->Input("data", onnx::TensorProto::FLOAT, {"b", 2, "c", 3});
  g->Input("position_ids", onnx::TensorProto::INT64, {"b", "s"});
  g->Input("updates", onnx::TensorProto::FLOAT, {"b", 2, "s", 3});
  g->Input("ctx_indices", onnx::TensorProto::INT64, {1, 1, "l"});
  g->Output("scattered", onnx::TensorProto::FLOAT, {"b", 2, "c", 3});
  g->Output("gathered", onnx::TensorProto::FLOAT, {"b", 2, "l", 3});
  CtxScatter(*g, "data", "position_ids", "updates", "scattered");
  std::string gathered = CtxGather(*g, "scattered", "ctx_indices");
  g->NodeNamed("Identity", {gathered}, {"gathered"});
  ASSERT_TRUE(g->Finish(tmp.path() / "model.onnx").ok());
  try {
    onnx::checker::check_model((tmp.path() / "model.onnx").string());
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }

  // B=2, H=2, C=4, D=3, S=3. Row 0 writes slots 2, C-1 (padding -1) and 0; row 1 slots 1, 2, 3.
  const int B = 2, H = 2, C = 4, D = 3, S = 3;
  std::vector<float> data(B * H * C * D), updates(B * H * S * D);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  for (size_t i = 0; i < updates.size(); ++i) updates[i] = 1000.0f + static_cast<float>(i);
  const std::vector<int64_t> pos = {2, -1, 0, 1, 2, 3};
  json inputs = {{"data", {{"type", "float32"}, {"dims", {B, H, C, D}}, {"data", data}}},
                 {"position_ids", {{"type", "int64"}, {"dims", {B, S}}, {"data", pos}}},
                 {"updates", {{"type", "float32"}, {"dims", {B, H, S, D}}, {"data", updates}}},
                 {"ctx_indices", {{"type", "int64"}, {"dims", {1, 1, 3}}, {"data", {3, 0, 1}}}}};
  json out = RunOnnx(tmp.path() / "model.onnx", inputs);
  std::vector<float> want = data;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int s = 0; s < S; ++s) {
        int64_t p = pos[b * S + s];
        if (p < 0) p += C;
        for (int d = 0; d < D; ++d) want[((b * H + h) * C + p) * D + d] = updates[((b * H + h) * S + s) * D + d];
      }
    }
  }
  EXPECT_EQ(out["scattered"]["data"].get<std::vector<float>>(), want);
  std::vector<float> want_gathered;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int idx : {3, 0, 1}) {
        for (int d = 0; d < D; ++d) want_gathered.push_back(want[((b * H + h) * C + idx) * D + d]);
      }
    }
  }
  EXPECT_EQ(out["gathered"]["dims"], json({B, H, 3, D}));
  EXPECT_EQ(out["gathered"]["data"].get<std::vector<float>>(), want_gathered);
}

TEST(CustomOps, CtxScatterCBAndCtxGatherCBFunctionBodiesRunInOnnxRuntime) {
  TempDir tmp;
  auto g = GraphBuilder::Open(tmp.path() / "model.onnx.data", false);
  ASSERT_TRUE(g.ok());
  g->Input("data", onnx::TensorProto::FLOAT, {"f", 2, "c", 3});
  g->Input("batch_index", onnx::TensorProto::INT64, {"b", 1});
  g->Input("position_ids", onnx::TensorProto::INT64, {"b", "s"});
  g->Input("updates", onnx::TensorProto::FLOAT, {"b", 2, "s", 3});
  g->Input("ctx_indices", onnx::TensorProto::INT64, {1, 1, "l"});
  g->Output("scattered", onnx::TensorProto::FLOAT, {"f", 2, "c", 3});
  g->Output("gathered", onnx::TensorProto::FLOAT, {"b", 2, "l", 3});
  CtxScatterCB(*g, "data", "batch_index", "position_ids", "updates", "scattered");
  std::string gathered = CtxGatherCB(*g, "scattered", "batch_index", "ctx_indices");
  g->NodeNamed("Identity", {gathered}, {"gathered"});
  ASSERT_TRUE(g->Finish(tmp.path() / "model.onnx").ok());
  try {
    onnx::checker::check_model((tmp.path() / "model.onnx").string());
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }

  // F=3 slots, H=2, C=4, D=3; B=2 rows in slots 2 and 0 (slot 1 is never named), S=3. Row 0
  // writes slots 2, C-1 (padding -1) and 0; row 1 slots 1, 2, 3.
  const int F = 3, B = 2, H = 2, C = 4, D = 3, S = 3;
  const std::vector<int64_t> slot = {2, 0};
  std::vector<float> data(F * H * C * D), updates(B * H * S * D);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  for (size_t i = 0; i < updates.size(); ++i) updates[i] = 1000.0f + static_cast<float>(i);
  const std::vector<int64_t> pos = {2, -1, 0, 1, 2, 3};
  json inputs = {{"data", {{"type", "float32"}, {"dims", {F, H, C, D}}, {"data", data}}},
                 {"batch_index", {{"type", "int64"}, {"dims", {B, 1}}, {"data", slot}}},
                 {"position_ids", {{"type", "int64"}, {"dims", {B, S}}, {"data", pos}}},
                 {"updates", {{"type", "float32"}, {"dims", {B, H, S, D}}, {"data", updates}}},
                 {"ctx_indices", {{"type", "int64"}, {"dims", {1, 1, 3}}, {"data", {3, 0, 1}}}}};
  json out = RunOnnx(tmp.path() / "model.onnx", inputs);
  std::vector<float> want = data;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int s = 0; s < S; ++s) {
        int64_t p = pos[b * S + s];
        if (p < 0) p += C;
        for (int d = 0; d < D; ++d) {
          want[((slot[b] * H + h) * C + p) * D + d] = updates[((b * H + h) * S + s) * D + d];
        }
      }
    }
  }
  EXPECT_EQ(out["scattered"]["dims"], json({F, H, C, D}));
  EXPECT_EQ(out["scattered"]["data"].get<std::vector<float>>(), want);
  std::vector<float> want_gathered;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int idx : {3, 0, 1}) {
        for (int d = 0; d < D; ++d) want_gathered.push_back(want[((slot[b] * H + h) * C + idx) * D + d]);
      }
    }
  }
  EXPECT_EQ(out["gathered"]["dims"], json({B, H, 3, D}));
  EXPECT_EQ(out["gathered"]["data"].get<std::vector<float>>(), want_gathered);
}

TEST(CustomOps, CustomRMSNormFunctionBodyRunsInOnnxRuntime) {
  TempDir tmp;
  auto g = GraphBuilder::Open(tmp.path() / "model.onnx.data", false);
  ASSERT_TRUE(g.ok());
  g->Input("x", onnx::TensorProto::FLOAT, {"b", "s", 8});
  g->Input("w", onnx::TensorProto::FLOAT, {8});
  g->Output("y", onnx::TensorProto::FLOAT, {"b", "s", 8});
  std::string y = CustomRMSNorm(*g, "x", "w", 1e-3f);
  g->NodeNamed("Identity", {y}, {"y"});
  ASSERT_TRUE(g->Finish(tmp.path() / "model.onnx").ok());
  try {
    onnx::checker::check_model((tmp.path() / "model.onnx").string());
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  std::vector<float> x(2 * 3 * 8), w(8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f + 0.1f * static_cast<float>(i);
  json out = RunOnnx(tmp.path() / "model.onnx",
                     {{"x", {{"type", "float32"}, {"dims", {2, 3, 8}}, {"data", x}}},
                      {"w", {{"type", "float32"}, {"dims", {8}}, {"data", w}}}});
  std::vector<float> got = out["y"]["data"].get<std::vector<float>>();
  ASSERT_EQ(got.size(), x.size());
  for (int row = 0; row < 6; ++row) {
    double ms = 0;
    for (int j = 0; j < 8; ++j) ms += static_cast<double>(x[row * 8 + j]) * x[row * 8 + j];
    const double inv = 1.0 / std::sqrt(ms / 8 + 1e-3);
    for (int j = 0; j < 8; ++j) EXPECT_NEAR(got[row * 8 + j], w[j] * x[row * 8 + j] * inv, 1e-5);
  }
}

// ---- bad input ----

void WriteFile(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

TEST(Exporter, BadInputGetsTheRightStatus) {
  TempDir tmp;
  const fs::path root = tmp.path();

  fs::create_directories(root / "no-config");
  EXPECT_EQ(hf::ModelFolder::Open(root / "no-config").status().code(), absl::StatusCode::kNotFound);

  fs::create_directories(root / "unknown");
  WriteFile(root / "unknown/config.json", R"({"architectures": ["FooForCausalLM"], "model_type": "foo"})");
  auto unknown = Export(root / "unknown", root / "out-unknown");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("FooForCausalLM"));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("GPT2LMHeadModel"));

  fs::create_directories(root / "truncated");
  fs::copy_file(kGpt2 / "config.json", root / "truncated/config.json");
  {
    std::ifstream in(kGpt2 / "model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    WriteFile(root / "truncated/model.safetensors", bytes.substr(0, bytes.size() - 100));
  }
  EXPECT_EQ(hf::ModelFolder::Open(root / "truncated").status().code(), absl::StatusCode::kInvalidArgument);

  // Config problems.
  auto with_config = [&](const std::string& name, const std::function<void(json&)>& edit) {
    fs::create_directories(root / name);
    json c = json::parse(std::ifstream(kGpt2 / "config.json"));
    edit(c);
    WriteFile(root / name / "config.json", c.dump());
    fs::copy_file(kGpt2 / "model.safetensors", root / name / "model.safetensors");
    return Export(root / name, root / ("out-" + name)).status();
  };
  absl::Status indivisible = with_config("indivisible", [](json& c) { c["n_head"] = 3; });
  EXPECT_EQ(indivisible.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(indivisible.message()), HasSubstr("divisible"));
  absl::Status zero = with_config("zero-heads", [](json& c) { c["n_head"] = 0; });
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.message()), HasSubstr("n_head"));
  absl::Status str = with_config("string-layers", [](json& c) { c["n_layer"] = "2"; });
  EXPECT_EQ(str.code(), absl::StatusCode::kInvalidArgument);
  absl::Status huge = with_config("huge-vocab", [](json& c) { c["vocab_size"] = 1ll << 40; });
  EXPECT_EQ(huge.code(), absl::StatusCode::kInvalidArgument);
  // Shapes that disagree with the weights name the tensor.
  absl::Status wide = with_config("wrong-width", [](json& c) { c["n_embd"] = 64; });
  EXPECT_EQ(wide.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wide.message()), HasSubstr("transformer.wte.weight"));
  absl::Status deep = with_config("too-deep", [](json& c) { c["n_layer"] = 3; });
  EXPECT_EQ(deep.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(deep.message()), HasSubstr("transformer.h.2."));
  absl::Status untied = with_config("untied", [](json& c) { c["tie_word_embeddings"] = false; });
  EXPECT_EQ(untied.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(untied.message()), HasSubstr("lm_head.weight"));

  // A missing weight.
  fs::create_directories(root / "missing-weight");
  fs::copy_file(kGpt2 / "config.json", root / "missing-weight/config.json");
  {
    auto st = hf::SafetensorsFile::Open(kGpt2 / "model.safetensors");
    std::vector<hf::TensorToWrite> tensors;
    for (const auto& [name, v] : st->tensors()) {
      if (name == "transformer.h.1.mlp.c_fc.bias") continue;
      tensors.push_back({name, v.dtype, v.shape, std::string(reinterpret_cast<const char*>(v.data), v.bytes)});
    }
    ASSERT_TRUE(hf::WriteSafetensors(root / "missing-weight/model.safetensors", tensors).ok());
  }
  absl::Status missing = Export(root / "missing-weight", root / "out-missing").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("transformer.h.1.mlp.c_fc.bias"));
}

}  // namespace
}  // namespace qeff::exporter
