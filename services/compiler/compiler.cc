#include "services/compiler/compiler.h"

#include <chrono>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"
#include "services/compiler/onnx_model.h"
#include "services/compiler/passes.h"
#include "services/compiler/program_writer.h"
#include "services/compiler/qaic_plan.h"
#include "services/compiler/specialize.h"

namespace qeff::compiler {
namespace fs = std::filesystem;

namespace {

constexpr int kProgramFormatVersion = 1;  // must match device/session.cc

}  // namespace

bool HasRetainedState(const OnnxModel& model) {
  for (const auto& in : model.inputs()) {
    for (const auto& out : model.outputs()) {
      if (out.name == in.name + "_RetainedState") return true;
    }
  }
  return false;
}

std::vector<SpecializationSummary> PlanSpecializations(const CompileOptions& o, bool causal) {
  // Encoders (no KV cache) run one shape, like QEfficient's "Embedding" specialization.
  if (!causal) return {{"Embedding", o.batch_size, o.prefill_seq_len, 0}};
  std::vector<SpecializationSummary> specs;
  specs.push_back({"Prefill", o.batch_size, o.prefill_seq_len, o.ctx_len});
  if (o.prefill_seq_len != 1) specs.push_back({"Decode", o.batch_size, 1, o.ctx_len});
  return specs;
}

namespace {

absl::StatusOr<CompileSummary> CompileCpu(const OnnxModel& model, const CompileOptions& options,
                                          const fs::path& staging, const ProgressFn& progress) {
  CompileSummary summary;
  summary.specializations = PlanSpecializations(options, HasRetainedState(model));
  QEFF_ASSIGN_OR_RETURN(WeightsWriter weights, WeightsWriter::Create(staging / "weights.bin"));
  WeightCache cache;
  cache.weight_dtype = options.weight_dtype == "bf16"   ? qeff::v1::BF16
                       : options.weight_dtype == "int8" ? qeff::v1::I8
                                                        : qeff::v1::F32;
  qeff::v1::Program program;
  program.set_format_version(kProgramFormatVersion);
  program.set_num_threads(options.num_cores);
  nlohmann::json details = nlohmann::json::array();
  const int total = static_cast<int>(summary.specializations.size());
  for (int si = 0; si < total; ++si) {
    const auto& s = summary.specializations[si];
    progress("specialize", absl::StrCat(s.name, ": batch_size=", s.batch_size, " seq_len=", s.seq_len, " ctx_len=", s.ctx_len),
             si, total);
    const auto t0 = std::chrono::steady_clock::now();
    QEFF_ASSIGN_OR_RETURN(IrGraph g, Specialize(model, {{"batch_size", s.batch_size},
                                                        {"seq_len", s.seq_len},
                                                        {"ctx_len", s.ctx_len},
                                                        {"full_batch_size", s.batch_size}}));
    FuseLinear(g, cache);
    FuseTransposedB(g);
    ElideFullGather(g);
    RetainState(g);
    EliminateDeadCode(g);
    const MemoryPlan plan = PlanMemory(g);
    progress("write", absl::StrCat(s.name, ": writing program and weights"), si, total);
    QEFF_ASSIGN_OR_RETURN(qeff::v1::ProgramSpecialization sp, EmitSpecialization(g, plan, weights));
    sp.set_name(s.name);
    sp.set_batch_size(s.batch_size);
    sp.set_seq_len(s.seq_len);
    sp.set_ctx_len(s.ctx_len);
    // Retained state is shared by all specializations: shapes must agree.
    if (si == 0) {
      for (const auto& st : g.states) {
        auto* b = program.add_states();
        b->set_name(st.name);
        b->set_output_name(st.output_name);
        b->set_dtype(st.dtype);
        for (int64_t d : st.shape) b->add_shape(d);
      }
    } else {
      if (static_cast<int>(g.states.size()) != program.states_size()) {
        return absl::InvalidArgumentError("specializations disagree on the retained state");
      }
      for (size_t k = 0; k < g.states.size(); ++k) {
        const auto& b = program.states(static_cast<int>(k));
        if (b.name() != g.states[k].name || device::Shape(b.shape().begin(), b.shape().end()) != g.states[k].shape) {
          return absl::InvalidArgumentError(absl::StrCat("retained state ", b.name(),
                                                         " has different shapes in different specializations"));
        }
      }
    }
    int ops = 0;
    std::map<std::string, int> by_type;
    for (const auto& op : sp.ops()) {
      ++ops;
      ++by_type[op.type()];
    }
    details.push_back({{"name", s.name},
                       {"ops", ops},
                       {"ops_by_type", by_type},
                       {"arena_bytes", sp.arena_bytes()},
                       {"compile_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()}});
    *program.add_specializations() = std::move(sp);
  }
  QEFF_ASSIGN_OR_RETURN(int64_t wbytes, weights.Finish());
  program.set_weights_bytes(wbytes);
  std::string bytes;
  if (!program.SerializeToString(&bytes)) return absl::InternalError("cannot serialize program.pb");
  QEFF_RETURN_IF_ERROR(util::WriteFileSynced(staging / "program.pb", bytes));
  QEFF_RETURN_IF_ERROR(util::WriteFileSynced(staging / "specializations.json",
                                             SpecializationsJson(summary.specializations).dump(2)));
  progress("done", absl::StrCat("weights.bin ", wbytes, " bytes"), total, total);
  summary.manifest_extra = {{"specializations", details},
                            {"weights_bytes", wbytes},
                            {"states", program.states_size()},
                            {"weight_dtype", options.weight_dtype}};
  return summary;
}

}  // namespace

absl::Status ValidateOptions(const CompileOptions& o) {
  if (o.target != "cpu" && o.target != "qaic" && o.target != "qnn") {
    return absl::InvalidArgumentError(absl::StrCat("unknown target '", o.target, "'; use cpu, qaic or qnn"));
  }
  if (o.batch_size < 1 || o.batch_size > 256) return absl::InvalidArgumentError("batch_size must be in [1, 256]");
  if (o.ctx_len < 2 || o.ctx_len > (1 << 20)) return absl::InvalidArgumentError("ctx_len must be in [2, 1048576]");
  if (o.prefill_seq_len < 1 || o.prefill_seq_len > o.ctx_len) {
    return absl::InvalidArgumentError("prefill_seq_len must be in [1, ctx_len]");
  }
  if (o.num_cores < 0 || o.num_cores > 1024) return absl::InvalidArgumentError("num_cores must be in [0, 1024]");
  if (o.weight_dtype != "fp32" && o.weight_dtype != "bf16" && o.weight_dtype != "int8") {
    return absl::InvalidArgumentError("weight_dtype must be fp32, bf16 or int8");
  }
  if (o.full_batch_size < 0) return absl::InvalidArgumentError("full_batch_size must be >= 0");
  if (o.full_batch_size > 0 && o.target == "cpu") {
    return absl::UnimplementedError("continuous batching (full_batch_size) is not implemented for the cpu target yet");
  }
  return absl::OkStatus();
}

absl::StatusOr<CompileSummary> CompileModel(const fs::path& export_dir, const CompileOptions& options,
                                            const fs::path& staging, const ProgressFn& progress) {
  QEFF_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.target != "cpu") return CompileForSdk(export_dir, options, staging, progress);
  progress("load", "reading model.onnx", 0, 0);
  QEFF_ASSIGN_OR_RETURN(std::unique_ptr<OnnxModel> model, OnnxModel::Load(export_dir, "model.onnx"));
  return CompileCpu(*model, options, staging, progress);
}

}  // namespace qeff::compiler
