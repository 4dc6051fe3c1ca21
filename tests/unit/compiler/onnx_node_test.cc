// The compiler + cpu kernels against ONNX's own backend node tests (Debian libonnx-testdata):
// every test of an op we claim to support compiles, runs on the device and matches the
// reference outputs. Integer graph inputs (shapes, axes, indices) are made initializers first,
// because the cpu compiler specializes shapes at compile time; float inputs stay runtime inputs.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "device/session.h"
#include "onnx/onnx_pb.h"
#include "services/compiler/compiler.h"
#include "services/compiler/onnx_model.h"

namespace qeff::compiler {
namespace {
namespace fs = std::filesystem;

const fs::path kNodeTests = "/usr/share/libonnx-testdata/data/node";

// Node tests whose names start with these prefixes must pass.
const char* kClaimed[] = {
    "test_add", "test_sub", "test_mul", "test_div", "test_pow", "test_max_", "test_min_", "test_greater",
    "test_less", "test_equal", "test_where", "test_sqrt", "test_tanh", "test_erf", "test_exp", "test_neg",
    "test_sigmoid", "test_sin", "test_cos", "test_relu", "test_abs", "test_reciprocal", "test_matmul_",
    "test_softmax_", "test_layer_normalization_", "test_transpose_", "test_reshape_", "test_unsqueeze",
    "test_squeeze", "test_flatten", "test_concat_", "test_split_", "test_slice", "test_expand_", "test_gather_",
    "test_gather_elements_", "test_argmax_", "test_reduce_mean_", "test_reduce_max_", "test_reduce_sum_",
    "test_shape", "test_range_", "test_constantofshape_", "test_identity", "test_cast_"};

// Variants outside the supported envelope, with the reason.
bool Excluded(const std::string& name, std::string* why) {
  struct Ex {
    const char* needle;
    const char* why;
  } const kEx[] = {
      {"_expanded", "function-expanded variants use ops beyond the claimed set"},
      {"uint", "unsigned element types are not supported"},
      {"int8", "8/16-bit integer types are not supported"},
      {"int16", "8/16-bit integer types are not supported"},
      {"bfloat16", "bfloat16 graph inputs are not supported"},
      {"float16", "float16 graph inputs are not supported"},
      {"double", "float64 graph inputs are not supported"},
      {"STRING", "string tensors are not supported"},
      {"string", "string tensors are not supported"},
      {"FLOAT8", "float8 is not supported"},
      {"_bcast", "legacy broadcast attribute (opset < 7)"},
      {"test_cast_FLOAT_to", "narrow float casts are not supported"},
      {"_to_FLOAT16", "narrow float casts are not supported"},
      {"test_reduce_sum_empty", "empty reductions"},
      {"_empty_set", "empty reductions"},
      {"test_split_zero_size", "zero-size splits"},
      {"test_reshape_allowzero", "allowzero with zero-size tensors"},
      {"_log_prob", "not an op test"},
      {"test_squeezenet", "model test"},
      {"test_sinh", "Sinh is not supported"},
      {"test_cosh", "Cosh is not supported"},
      {"test_reduce_sum_square", "ReduceSumSquare is not supported"},
      {"test_cast_BFLOAT16", "bfloat16 graph inputs are not supported"},
      {"test_identity_opt", "optional types are not supported"},
      {"test_identity_sequence", "sequence types are not supported"},
      {"_one_input", "variadic Max/Min need exactly 2 inputs"},
      {"test_max_example", "variadic Max/Min need exactly 2 inputs"},
      {"test_min_example", "variadic Max/Min need exactly 2 inputs"},
      {"test_pow_types", "mixed-type Pow is not supported"},
      {"test_range_float", "Range over runtime inputs has a data-dependent shape"},
  };
  for (const auto& e : kEx) {
    if (name.find(e.needle) != std::string::npos) {
      *why = e.why;
      return true;
    }
  }
  return false;
}

bool Claimed(const std::string& name) {
  for (const char* p : kClaimed)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

bool ReadTensor(const fs::path& p, onnx::TensorProto* t) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return t->ParseFromString(ss.str());
}

// Returns "" on success, else why it failed.
std::string RunNodeTest(const fs::path& dir, const fs::path& work) {
  onnx::ModelProto model;
  {
    std::ifstream in(dir / "model.onnx", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!model.ParseFromString(ss.str())) return "cannot parse model";
  }
  const fs::path data = dir / "test_data_set_0";
  std::vector<std::pair<std::string, ConstPtr>> runtime_inputs;
  auto* g = model.mutable_graph();
  std::vector<onnx::ValueInfoProto> kept;
  for (int i = 0; i < g->input_size(); ++i) {
    onnx::TensorProto t;
    if (!ReadTensor(data / ("input_" + std::to_string(i) + ".pb"), &t)) return "missing input";
    const int et = g->input(i).type().tensor_type().elem_type();
    if (et == onnx::TensorProto::FLOAT) {
      auto c = TensorFromProto(t);
      if (!c.ok()) return std::string(c.status().message());
      runtime_inputs.emplace_back(g->input(i).name(), *c);
      kept.push_back(g->input(i));
    } else {
      t.set_name(g->input(i).name());
      *g->add_initializer() = t;
    }
  }
  g->clear_input();
  for (auto& v : kept) *g->add_input() = v;
  fs::create_directories(work / "export");
  {
    std::ofstream out(work / "export/model.onnx", std::ios::binary);
    model.SerializeToOstream(&out);
  }
  fs::create_directories(work / "qpc");
  CompileOptions opt;
  opt.prefill_seq_len = 1;  // one specialization; node tests have no symbolic dims
  auto compiled = CompileModel(work / "export", opt, work / "qpc", [](auto&&...) {});
  if (!compiled.ok()) return "compile: " + compiled.status().ToString();
  auto session = device::Session::Load(work / "qpc", 1);
  if (!session.ok()) return "load: " + session.status().ToString();
  device::NamedInputs inputs;
  for (const auto& [name, c] : runtime_inputs) inputs.emplace_back(name, device::HostTensor{c->data, c->dtype, c->shape});
  absl::Status st = (*session)->Run(0, inputs);
  if (!st.ok()) return "run: " + st.ToString();
  for (int i = 0; i < g->output_size(); ++i) {
    onnx::TensorProto t;
    if (!ReadTensor(data / ("output_" + std::to_string(i) + ".pb"), &t)) return "missing output";
    auto want = TensorFromProto(t);
    if (!want.ok()) return std::string(want.status().message());
    auto got = (*session)->Output(g->output(i).name());
    if (!got.ok()) return got.status().ToString();
    if (got->shape != (*want)->shape) {
      return "output " + g->output(i).name() + " shape " + device::ShapeString(got->shape) + " vs " +
             device::ShapeString((*want)->shape);
    }
    if (got->dtype != (*want)->dtype) return "output dtype differs";
    const int64_t n = device::NumElements(got->shape);
    for (int64_t k = 0; k < n; ++k) {
      double a, b;
      switch (got->dtype) {
        case qeff::v1::F32:
          a = static_cast<const float*>(got->data)[k];
          b = reinterpret_cast<const float*>((*want)->data)[k];
          break;
        case qeff::v1::I64:
          a = static_cast<double>(static_cast<const int64_t*>(got->data)[k]);
          b = static_cast<double>(reinterpret_cast<const int64_t*>((*want)->data)[k]);
          break;
        case qeff::v1::I32:
          a = static_cast<const int32_t*>(got->data)[k];
          b = reinterpret_cast<const int32_t*>((*want)->data)[k];
          break;
        default:
          a = static_cast<const uint8_t*>(got->data)[k];
          b = (*want)->data[k];
      }
      if (std::isnan(a) && std::isnan(b)) continue;
      if (!(std::fabs(a - b) <= 1e-4 + 1e-4 * std::fabs(b))) {
        return "output " + g->output(i).name() + "[" + std::to_string(k) + "] = " + std::to_string(a) +
               ", expected " + std::to_string(b);
      }
    }
  }
  return "";
}

TEST(OnnxNodeTest, ClaimedOpsMatchOnnxReferenceOutputs) {
  ASSERT_TRUE(fs::is_directory(kNodeTests)) << "install libonnx-testdata (scripts/setup.sh does)";
  const fs::path work = fs::temp_directory_path() / ("qeff-node-" + std::to_string(::getpid()));
  int passed = 0, excluded = 0;
  std::vector<std::string> failures;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kNodeTests)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const std::string name = dir.filename().string();
    if (!Claimed(name)) continue;
    std::string why;
    if (Excluded(name, &why)) {
      ++excluded;
      continue;
    }
    fs::remove_all(work);
    std::string err = RunNodeTest(dir, work);
    if (err.empty()) ++passed;
    else failures.push_back(name + ": " + err);
  }
  fs::remove_all(work);
  std::string all;
  for (const auto& f : failures) all += f + "\n";
  std::printf("onnx node tests: %d passed, %zu failed, %d excluded variants\n", passed, failures.size(), excluded);
  EXPECT_TRUE(failures.empty()) << all;
  EXPECT_GT(passed, 200);
}

}  // namespace
}  // namespace qeff::compiler
