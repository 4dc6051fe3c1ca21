// Bad ONNX input to the compiler: clear statuses, never a crash or a write outside the qpc dir.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "onnx/onnx_pb.h"
#include "common/hf/model_folder.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"

namespace qeff::compiler {
namespace {
namespace fs = std::filesystem;

class CompilerErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qeff-cerr-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "export");
    fs::create_directories(dir_ / "qpc");
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::Status Compile(const onnx::ModelProto& m) {
    std::ofstream out(dir_ / "export/model.onnx", std::ios::binary);
    m.SerializeToOstream(&out);
    out.close();
    CompileOptions opt;
    opt.prefill_seq_len = 4;
    opt.ctx_len = 16;
    return CompileModel(dir_ / "export", opt, dir_ / "qpc", [](auto&&...) {}).status();
  }

  // y = op(x) over a float input [batch_size, seq_len].
  static onnx::ModelProto OneNode(const std::string& op, const std::string& domain = "") {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    auto* in = g->add_input();
    in->set_name("x");
    in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = in->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->add_dim()->set_dim_param("batch_size");
    shape->add_dim()->set_dim_param("seq_len");
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_domain(domain);
    n->add_input("x");
    n->add_output("y");
    auto* out = g->add_output();
    out->set_name("y");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    return m;
  }

  fs::path dir_;
};

TEST_F(CompilerErrorsTest, SupportedGraphCompiles) { EXPECT_TRUE(Compile(OneNode("Tanh")).ok()); }

TEST_F(CompilerErrorsTest, GarbageFileIsInvalidArgument) {
  std::ofstream(dir_ / "export/model.onnx") << "this is not a protobuf \xff\xff\xff\xff";
  CompileOptions opt;
  auto r = CompileModel(dir_ / "export", opt, dir_ / "qpc", [](auto&&...) {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

TEST_F(CompilerErrorsTest, UnsupportedOpsAreUnimplementedAndNamed) {
  absl::Status s = Compile(OneNode("Mish"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("Mish"), std::string::npos) << s;
  s = Compile(OneNode("Frobnicate", "com.example"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("com.example"), std::string::npos) << s;
}

TEST_F(CompilerErrorsTest, UnboundSymbolIsInvalidArgument) {
  onnx::ModelProto m = OneNode("Tanh");
  m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_param(
      "mystery");
  absl::Status s = Compile(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("mystery"), std::string::npos) << s;
}

TEST_F(CompilerErrorsTest, ExternalDataOutsideTheExportIsRefused) {
  onnx::ModelProto m = OneNode("Add");
  auto* n = m.mutable_graph()->mutable_node(0);
  n->add_input("w");
  auto* w = m.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(1);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = w->add_external_data();
  kv->set_key("location");
  kv->set_value("../../../etc/passwd");
  absl::Status s = Compile(m);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.code() == absl::StatusCode::kPermissionDenied || s.code() == absl::StatusCode::kNotFound) << s;
}

TEST_F(CompilerErrorsTest, ExternalDataBeyondTheFileIsInvalidArgument) {
  onnx::ModelProto m = OneNode("Add");
  m.mutable_graph()->mutable_node(0)->add_input("w");
  auto* w = m.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(1024);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [k, v] : {std::pair{"location", "model.onnx.data"}, {"offset", "0"}, {"length", "4096"}}) {
    auto* kv = w->add_external_data();
    kv->set_key(k);
    kv->set_value(v);
  }
  std::ofstream(dir_ / "export/model.onnx.data") << std::string(100, '\0');
  absl::Status s = Compile(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(CompilerErrorsTest, BadOptionsAreInvalidArgument) {
  CompileOptions opt;
  opt.ctx_len = 8;
  opt.prefill_seq_len = 16;
  EXPECT_EQ(ValidateOptions(opt).code(), absl::StatusCode::kInvalidArgument);
  opt = CompileOptions();
  opt.target = "gpu";
  EXPECT_EQ(ValidateOptions(opt).code(), absl::StatusCode::kInvalidArgument);
  opt = CompileOptions();
  opt.weight_dtype = "int3";
  EXPECT_EQ(ValidateOptions(opt).code(), absl::StatusCode::kInvalidArgument);
  opt = CompileOptions();
  opt.kv_cache_dtype = "fp8";
  EXPECT_EQ(ValidateOptions(opt).code(), absl::StatusCode::kInvalidArgument);
  // A bf16 cache is a cpu-target option: qaic converts the cache itself.
  opt = CompileOptions();
  opt.kv_cache_dtype = "bf16";
  EXPECT_TRUE(ValidateOptions(opt).ok());
  opt.target = "qaic";
  absl::Status kv = ValidateOptions(opt);
  EXPECT_EQ(kv.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kv.message().find("cpu"), std::string::npos) << kv;
  // More cpu threads than the machine has cores.
  opt = CompileOptions();
  opt.num_cores = static_cast<int>(std::thread::hardware_concurrency()) + 1;
  absl::Status cores = ValidateOptions(opt);
  EXPECT_EQ(cores.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cores.message().find("cores"), std::string::npos) << cores;
}

// A KV cache longer than the model's position table: refused at compile, naming both numbers.
TEST_F(CompilerErrorsTest, CtxLenBeyondMaxPositionsIsInvalidArgument) {
  const fs::path fixture = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/llama";
  auto folder = hf::ModelFolder::Open(fixture);
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_TRUE(exporter::ExportModel(*folder, {}, dir_ / "export", {}).ok());
  const int64_t positions = folder->config()["max_position_embeddings"].get<int64_t>();
  CompileOptions opt;
  opt.prefill_seq_len = 4;
  opt.ctx_len = static_cast<int>(positions + 1);
  absl::Status s = CompileModel(dir_ / "export", opt, dir_ / "qpc", [](auto&&...) {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(std::to_string(positions + 1)), std::string::npos) << s;
  EXPECT_NE(s.message().find(std::to_string(positions)), std::string::npos) << s;
}

}  // namespace
}  // namespace qeff::compiler
