// Program::Load's validation, case by case, on a real compiled qpc (tiny Llama exported for
// continuous batching): each edit of program.pb is rejected with the right code and a message
// naming the qpc directory, the specialization, the op (index and type) or tensor and what is
// wrong. Also: every op is registered once, with its arity, rule and kernel; loading binds each
// program op to its definition.
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/hf/model_folder.h"
#include "common/util/files.h"
#include "device/cpu/kernels.h"
#include "device/cpu/op_registry.h"
#include "device/program.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "tests/unit/device/program_mutator.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ProgramValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("qeff-validate-" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "export");
    fs::create_directories(*dir_ / "qpc-ab12cd");
    auto folder = hf::ModelFolder::Open(fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/llama");
    ASSERT_TRUE(folder.ok()) << folder.status();
    exporter::ExportOptions eo;
    eo.continuous_batching = true;
    ASSERT_TRUE(exporter::ExportModel(*folder, eo, *dir_ / "export", [](auto&&...) {}).ok());
    compiler::CompileOptions co;
    co.prefill_seq_len = 8;
    co.ctx_len = 32;
    co.full_batch_size = 2;
    auto c = compiler::CompileModel(*dir_ / "export", co, *dir_ / "qpc-ab12cd", [](auto&&...) {});
    ASSERT_TRUE(c.ok()) << c.status();
    auto bytes = util::ReadFile(*dir_ / "qpc-ab12cd/program.pb", 1 << 30);
    ASSERT_TRUE(bytes.ok());
    original_ = new qeff::v1::Program();
    ASSERT_TRUE(original_->ParseFromString(*bytes));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete original_;
  }

  // Writes an edited copy of the program into a qpc dir next to the original's weights and loads
  // it with Program::Load.
  absl::StatusOr<std::shared_ptr<const device::Program>> LoadEdited(
      const std::function<void(qeff::v1::Program&)>& edit) {
    qeff::v1::Program p = *original_;
    edit(p);
    const fs::path qpc = *dir_ / "qpc-edited";
    fs::create_directories(qpc);
    std::error_code ec;
    fs::copy_file(*dir_ / "qpc-ab12cd/weights.bin", qpc / "weights.bin", fs::copy_options::overwrite_existing, ec);
    std::string bytes;
    EXPECT_TRUE(p.SerializeToString(&bytes));
    EXPECT_TRUE(util::WriteFileSynced(qpc / "program.pb", bytes).ok());
    return device::Program::Load(qpc);
  }

  // Index of the first op of `type` in specialization `spec`.
  static int OpIndex(const qeff::v1::Program& p, int spec, const std::string& type) {
    const auto& sp = p.specializations(spec);
    for (int i = 0; i < sp.ops_size(); ++i)
      if (sp.ops(i).type() == type) return i;
    ADD_FAILURE() << "no " << type;
    return 0;
  }
  static int TensorIndex(const qeff::v1::Program& p, int spec, qeff::v1::Storage storage) {
    const auto& sp = p.specializations(spec);
    for (int i = 0; i < sp.tensors_size(); ++i)
      if (sp.tensors(i).storage() == storage && sp.tensors(i).bytes() > 0) return i;
    ADD_FAILURE() << "no tensor in storage " << storage;
    return 0;
  }

  void ExpectRejected(const std::function<void(qeff::v1::Program&)>& edit, absl::StatusCode code,
                      const std::vector<std::string>& parts) {
    auto p = LoadEdited(edit);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), code) << p.status();
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("qpc qpc-edited"));
    for (const auto& part : parts) EXPECT_THAT(std::string(p.status().message()), HasSubstr(part));
  }

  static fs::path* dir_;
  static qeff::v1::Program* original_;
};

fs::path* ProgramValidationTest::dir_ = nullptr;
qeff::v1::Program* ProgramValidationTest::original_ = nullptr;

TEST_F(ProgramValidationTest, TheCompiledProgramLoadsWithEveryOpBound) {
  auto p = device::Program::Load(*dir_ / "qpc-ab12cd");
  ASSERT_TRUE(p.ok()) << p.status();
  for (int s = 0; s < (*p)->proto().specializations_size(); ++s) {
    const auto& sp = (*p)->proto().specializations(s);
    ASSERT_EQ(static_cast<int>((*p)->ops(s).size()), sp.ops_size());
    for (int i = 0; i < sp.ops_size(); ++i) {
      ASSERT_NE((*p)->ops(s)[i].def, nullptr);
      EXPECT_EQ((*p)->ops(s)[i].def->name, sp.ops(i).type());
    }
  }
  EXPECT_EQ((*p)->full_batch_size(), 2);
  EXPECT_EQ((*p)->vocab_size(), 512);
  auto s = device::Session::Create(*p, 1);
  ASSERT_TRUE(s.ok()) << s.status();
  bool finite = false;
  EXPECT_TRUE(testing::RunEverySpecialization(**s, &finite).ok());
  EXPECT_TRUE(finite);
}

TEST_F(ProgramValidationTest, FormatVersionAndUnknownOps) {
  ExpectRejected([](auto& p) { p.set_format_version(3); }, absl::StatusCode::kFailedPrecondition,
                 {"format version 3", "recompile"});
  ExpectRejected([&](auto& p) { p.mutable_specializations(1)->mutable_ops(3)->set_type("FancyNewOp"); },
                 absl::StatusCode::kFailedPrecondition,
                 {"specialization 'Decode'", "op 3", "no kernel for op 'FancyNewOp'"});
}

TEST_F(ProgramValidationTest, ThreadCounts) {
  ExpectRejected([](auto& p) { p.set_num_threads(100000); }, absl::StatusCode::kDataLoss, {"num_threads 100000"});
  ExpectRejected([](auto& p) { p.set_num_threads(-3); }, absl::StatusCode::kDataLoss, {"num_threads -3"});
  // A qpc compiled for more cores than this machine has runs on the cores there are.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto p = LoadEdited([&](auto& p) { p.set_num_threads(cores + 3); });
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->num_threads(), cores);
}

TEST_F(ProgramValidationTest, Attributes) {
  const int t = OpIndex(*original_, 0, "Transpose");
  ExpectRejected([&](auto& p) { device::SetAttrInts(*p.mutable_specializations(0)->mutable_ops(t), "perm", {0, 1, 1, 3}); },
                 absl::StatusCode::kDataLoss, {"specialization 'Prefill'", absl::StrCat("op ", t, " (Transpose)"), "perm"});
  const int a = OpIndex(*original_, 0, "CachedAttention");
  ExpectRejected([&](auto& p) { device::SetAttrInt(*p.mutable_specializations(0)->mutable_ops(a), "groups", 3); },
                 absl::StatusCode::kDataLoss, {absl::StrCat("op ", a, " (CachedAttention)"), "groups 3"});
  ExpectRejected([&](auto& p) { device::SetAttrInt(*p.mutable_specializations(0)->mutable_ops(a), "groups", 1000); },
                 absl::StatusCode::kDataLoss, {"groups 1000 not in [1, 64]"});
  ExpectRejected(
      [&](auto& p) {
        device::SetAttrInts(*p.mutable_specializations(0)->mutable_ops(a), "score_args", {device::ScoreArgBits(0.0f)});
      },
      absl::StatusCode::kDataLoss, {"score op 0 constant 0"});
  const int n = OpIndex(*original_, 1, "RMSNorm");
  ExpectRejected([&](auto& p) { device::SetAttrFloat(*p.mutable_specializations(1)->mutable_ops(n), "epsilon", -1.0f); },
                 absl::StatusCode::kDataLoss, {absl::StrCat("op ", n, " (RMSNorm)"), "epsilon -1"});
  ExpectRejected([&](auto& p) { device::SetAttrInt(*p.mutable_specializations(1)->mutable_ops(n), "axis", 9); },
                 absl::StatusCode::kDataLoss, {"axis 9 out of range"});
  ExpectRejected([&](auto& p) { device::SetAttrInt(*p.mutable_specializations(1)->mutable_ops(n), "colour", 1); },
                 absl::StatusCode::kDataLoss, {"unknown attribute 'colour'"});
  const int g = OpIndex(*original_, 0, "Gather");
  ExpectRejected([&](auto& p) { device::SetAttrInt(*p.mutable_specializations(0)->mutable_ops(g), "axis", 2); },
                 absl::StatusCode::kDataLoss, {absl::StrCat("op ", g, " (Gather)"), "axis 2 out of range"});
}

TEST_F(ProgramValidationTest, OperandsAndShapes) {
  const int l = OpIndex(*original_, 0, "Linear");
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->mutable_ops(l)->set_inputs(0, 100000); },
                 absl::StatusCode::kDataLoss, {absl::StrCat("op ", l, " (Linear)"), "input index 100000"});
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->mutable_ops(l)->add_outputs(0); },
                 absl::StatusCode::kDataLoss, {"2 outputs; Linear makes 1"});
  // The Linear's output one column short, bytes kept consistent: the rule catches it.
  ExpectRejected(
      [&](auto& p) {
        auto* sp = p.mutable_specializations(0);
        auto* t = sp->mutable_tensors(sp->ops(l).outputs(0));
        t->set_shape(t->shape_size() - 1, t->shape(t->shape_size() - 1) - 1);
        t->set_bytes(t->bytes() / (t->shape(t->shape_size() - 1) + 1) * t->shape(t->shape_size() - 1));
      },
      absl::StatusCode::kDataLoss, {absl::StrCat("op ", l, " (Linear)"), "output is [", "must be ["});
  // A float weight read as int8: the panel shape is not an int8 weight's.
  ExpectRejected(
      [&](auto& p) {
        auto* sp = p.mutable_specializations(0);
        auto* w = sp->mutable_tensors(sp->ops(l).inputs(1));
        w->set_dtype(qeff::v1::I8);
        w->set_bytes(w->bytes() / 4);
      },
      absl::StatusCode::kDataLoss, {"(Linear): w [", "] is not ["});
}

TEST_F(ProgramValidationTest, Storage) {
  const int a = TensorIndex(*original_, 0, qeff::v1::ARENA);
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->mutable_tensors(a)->set_offset(1 << 30); },
                 absl::StatusCode::kDataLoss, {"outside the", "arena"});
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->mutable_tensors(a)->set_offset(8); },
                 absl::StatusCode::kDataLoss, {"64-byte aligned"});
  const int w = TensorIndex(*original_, 0, qeff::v1::WEIGHT);
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->mutable_tensors(w)->set_offset(int64_t{1} << 40); },
                 absl::StatusCode::kDataLoss, {"outside weights.bin"});
  ExpectRejected([&](auto& p) { p.set_weights_bytes(p.weights_bytes() + 64); }, absl::StatusCode::kDataLoss,
                 {"weights.bin has"});
  ExpectRejected([&](auto& p) { p.mutable_states(0)->set_shape(2, 31); }, absl::StatusCode::kDataLoss,
                 {"does not match retained state 0"});
  ExpectRejected([&](auto& p) { p.mutable_specializations(0)->set_arena_bytes(int64_t{1} << 50); },
                 absl::StatusCode::kDataLoss, {"arena_bytes"});
  // An op writing into weights.bin (mapped read-only) or the bytes of its own input.
  const int l = OpIndex(*original_, 0, "Linear");
  ExpectRejected(
      [&](auto& p) {
        auto* sp = p.mutable_specializations(0);
        auto* out = sp->mutable_tensors(sp->ops(l).outputs(0));
        out->set_storage(qeff::v1::WEIGHT);
        out->set_offset(0);
      },
      absl::StatusCode::kDataLoss, {absl::StrCat("op ", l, " (Linear): writes weight tensor")});
  ExpectRejected(
      [&](auto& p) {
        auto* sp = p.mutable_specializations(0);
        sp->mutable_tensors(sp->ops(l).outputs(0))->set_offset(sp->tensors(sp->ops(l).inputs(0)).offset());
      },
      absl::StatusCode::kDataLoss, {"overlaps input 0"});
  const int w1 = TensorIndex(*original_, 1, qeff::v1::WEIGHT);
  ExpectRejected([&](auto& p) { p.mutable_specializations(1)->mutable_inputs(0)->set_tensor(w1); },
                 absl::StatusCode::kDataLoss, {"bound to weights.bin, not the arena"});
}

TEST_F(ProgramValidationTest, DataFlow) {
  // Without the first op, its output is read before anything writes it.
  ExpectRejected([](auto& p) { p.mutable_specializations(0)->mutable_ops()->DeleteSubrange(0, 1); },
                 absl::StatusCode::kDataLoss, {"before anything writes it"});
  // The last op (the lm_head Linear) moved first: logits read nothing yet written.
  ExpectRejected(
      [](auto& p) {
        auto* ops = p.mutable_specializations(1)->mutable_ops();
        for (int i = ops->size() - 1; i > 0; --i) ops->SwapElements(i, i - 1);
      },
      absl::StatusCode::kDataLoss, {"specialization 'Decode'", "reads tensor"});
}

// Decode of one sequence splits the fused Linears' one output row by views at byte offsets:
// tensors inside a written tensor's bytes are readable, a tensor reaching past them is not.
TEST_F(ProgramValidationTest, SliceViewsReadOnlyWrittenBytes) {
  int spec = -1, slice = -1, whole = -1;
  for (int s = 0; s < original_->specializations_size() && slice < 0; ++s) {
    const auto& sp = original_->specializations(s);
    for (int t = 0; t < sp.tensors_size() && slice < 0; ++t) {
      const auto& ti = sp.tensors(t);
      for (int u = 0; u < sp.tensors_size(); ++u) {
        const auto& w = sp.tensors(u);
        if (ti.storage() == qeff::v1::ARENA && w.storage() == qeff::v1::ARENA && w.offset() < ti.offset() &&
            ti.offset() + ti.bytes() <= w.offset() + w.bytes()) {
          spec = s, slice = t, whole = u;
          break;
        }
      }
    }
  }
  ASSERT_GE(slice, 0) << "no slice view in any specialization";
  EXPECT_EQ(original_->specializations(spec).tensors(whole).dtype(), original_->specializations(spec).tensors(slice).dtype());
  ExpectRejected(
      [&](auto& p) {
        auto* sp = p.mutable_specializations(spec);
        const auto& w = sp->tensors(whole);
        sp->mutable_tensors(slice)->set_offset((w.offset() + w.bytes()) / 64 * 64);
      },
      absl::StatusCode::kDataLoss, {"reads tensor '" + original_->specializations(spec).tensors(slice).name() + "'"});
}

TEST_F(ProgramValidationTest, ResourceLimits) {
  device::Program::SetMemoryLimitForTesting(1 << 10);
  auto p = device::Program::Load(*dir_ / "qpc-ab12cd");
  device::Program::SetMemoryLimitForTesting(0);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted) << p.status();
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("qpc qpc-ab12cd"));
}

TEST(OpRegistryTest, EveryOpIsDefinedOnceWithRuleAndKernel) {
  std::set<std::string> names;
  for (const device::OpDef* d : device::AllOps()) {
    EXPECT_TRUE(names.insert(d->name).second) << d->name << " registered twice";
    EXPECT_TRUE(d->parse != nullptr && d->rule != nullptr && d->kernel != nullptr) << d->name;
    EXPECT_TRUE(device::HasKernel(d->name));
    EXPECT_LE(d->min_inputs, d->max_inputs == device::kAnyCount ? 1 << 30 : d->max_inputs) << d->name;
  }
  for (const char* op : {"Add", "Where", "Cast", "MatMul", "Linear", "SparseMoE", "Softmax", "RMSNorm", "Transpose",
                         "Slice", "Gather", "CtxScatter", "CtxGatherCB", "CachedAttention", "Copy", "Reshape"}) {
    EXPECT_TRUE(names.count(op)) << op;
  }
  EXPECT_FALSE(device::HasKernel("Bogus"));
  qeff::v1::Op bogus;
  bogus.set_type("Bogus");
  EXPECT_EQ(device::RunKernel(bogus, {}, {}, nullptr).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace qeff
