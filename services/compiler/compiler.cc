#include "services/compiler/compiler.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"
#include "services/compiler/onnx_model.h"
#include "services/compiler/passes.h"
#include "services/compiler/program_writer.h"
#include "services/compiler/qaic_plan.h"
#include "services/compiler/specialize.h"

namespace qeff::compiler {
namespace fs = std::filesystem;

namespace {

constexpr int kProgramFormatVersion = 2;  // must match device/program.cc (2: Linear panels)

}  // namespace

bool HasRetainedState(const OnnxModel& model) {
  for (const auto& in : model.inputs()) {
    for (const auto& out : model.outputs()) {
      if (out.name == in.name + "_RetainedState") return true;
    }
  }
  return false;
}

bool HasBatchIndex(const OnnxModel& model) {
  for (const auto& in : model.inputs()) {
    if (in.name == "batch_index") return true;
  }
  return false;
}

ModelKind KindOf(const OnnxModel& model) { return {HasRetainedState(model), HasBatchIndex(model)}; }

absl::Status ValidateForModel(const CompileOptions& o, const ModelKind& kind, const OnnxModel& model) {
  // Positions past the model's table (RoPE, learned positions) do not exist, and ALiBi models
  // were not trained there: refuse a cache longer than the model's max positions.
  const std::string max_positions = model.Metadata("max_positions");
  int64_t positions = 0;
  if (kind.causal && !max_positions.empty() && absl::SimpleAtoi(max_positions, &positions) && positions > 0 &&
      o.ctx_len > positions) {
    return absl::InvalidArgumentError(absl::StrCat("ctx_len ", o.ctx_len, " exceeds the model's max positions ",
                                                   positions, " (max_position_embeddings); compile with --ctx-len <= ",
                                                   positions));
  }
  if (kind.continuous_batching && o.full_batch_size == 0) {
    return absl::InvalidArgumentError(
        "this export was made for continuous batching (it takes batch_index); compile it with --full-batch-size N "
        "(the number of KV slots), or export again without --continuous-batching");
  }
  if (!kind.continuous_batching && o.full_batch_size > 0) {
    return absl::InvalidArgumentError(
        "--full-batch-size needs an export made for continuous batching; export with --continuous-batching");
  }
  return absl::OkStatus();
}

std::vector<SpecializationSummary> PlanSpecializations(const CompileOptions& o, const ModelKind& kind,
                                                       bool decode_batch_ladder) {
  // Encoders (no KV cache) run one shape, like QEfficient's "Embedding" specialization.
  if (!kind.causal) return {{"Embedding", o.batch_size, o.prefill_seq_len, 0, 0}};
  std::vector<SpecializationSummary> specs;
  if (!kind.continuous_batching) {
    specs.push_back({"Prefill", o.batch_size, o.prefill_seq_len, o.ctx_len, 0});
    if (o.prefill_seq_len != 1) specs.push_back({"Decode", o.batch_size, 1, o.ctx_len, 0});
    return specs;
  }
  const int n = o.full_batch_size;
  specs.push_back({"Prefill", 1, o.prefill_seq_len, o.ctx_len, n});
  if (o.prefill_seq_len != 1 || n != 1) specs.push_back({"Decode", n, 1, o.ctx_len, n});
  if (decode_batch_ladder) {
    for (int b = 1; b < n; b *= 2) {
      if (b == 1 && o.prefill_seq_len == 1) continue;  // the Prefill specialization is that shape
      specs.push_back({absl::StrCat("Decode_bs", b), b, 1, o.ctx_len, n});
    }
  }
  return specs;
}

nlohmann::json QConfigJson(const fs::path& export_dir, const CompileOptions& o,
                           const std::vector<SpecializationSummary>& specs, const std::vector<std::string>& command) {
  auto read_json = [&](const char* name) {
    auto text = util::ReadFile(export_dir / name, 64 << 20);
    if (!text.ok()) return nlohmann::json();
    return nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  };
  const nlohmann::json hf_config = read_json("config.json");
  const nlohmann::json manifest = read_json("manifest.json");
  nlohmann::json transforms = nlohmann::json::array();
  if (manifest.is_object() && manifest.contains("details") && manifest["details"].is_object()) {
    transforms = manifest["details"].value("transforms", nlohmann::json::array());
  }
  nlohmann::json compiler = {{"target", o.target},
                             {"apps_sdk_version", nullptr},
                             {"specializations_file_path", "specializations.json"},
                             {"specializations", SpecializationsJson(specs)["specializations"]},
                             {"mdp_ts_num_devices", 1},
                             {"num_speculative_tokens", nullptr},
                             {"prefill_seq_len", o.prefill_seq_len},
                             {"ctx_len", o.ctx_len},
                             {"batch_size", o.batch_size},
                             {"full_batch_size", o.full_batch_size > 0 ? nlohmann::json(o.full_batch_size) : nlohmann::json()},
                             {"num_cores", o.num_cores},
                             {"weight_dtype", o.weight_dtype},
                             {"kv_cache_dtype", o.kv_cache_dtype},
                             {"mxint8_kv_cache", false},
                             {"compiler", absl::StrCat("qeff-compiler format ", kCompilerFormatVersion)}};
  if (!command.empty()) compiler["command"] = command;
  return {{"huggingface_config", hf_config.is_discarded() ? nlohmann::json() : hf_config},
          {"qpc_config",
           {{"QEff_config", {{"pytorch_transforms", transforms}, {"onnx_transforms", nlohmann::json::array()},
                             {"onnx_path", (export_dir / "model.onnx").string()}}},
            {"aic_compiler_config", compiler}}}};
}

namespace {

absl::StatusOr<CompileSummary> CompileCpu(const OnnxModel& model, const CompileOptions& options,
                                          const fs::path& staging, const ProgressFn& progress) {
  CompileSummary summary;
  const ModelKind kind = KindOf(model);
  QEFF_RETURN_IF_ERROR(ValidateForModel(options, kind, model));
  summary.specializations = PlanSpecializations(options, kind, /*decode_batch_ladder=*/true);
  QEFF_ASSIGN_OR_RETURN(WeightsWriter weights, WeightsWriter::Create(staging / "weights.bin"));
  WeightCache cache;
  cache.writer = &weights;
  cache.weight_dtype = options.weight_dtype == "bf16"   ? qeff::v1::BF16
                       : options.weight_dtype == "int8" ? qeff::v1::I8
                       : options.weight_dtype == "int4" ? qeff::v1::I4
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
                                                        {"full_batch_size", kind.continuous_batching ? s.full_batch_size : s.batch_size}},
                                                 options.kv_cache_dtype == "bf16" ? qeff::v1::BF16 : qeff::v1::F32));
    QEFF_RETURN_IF_ERROR(FuseLinear(g, cache));
    QEFF_RETURN_IF_ERROR(PackExperts(g, cache));
    FuseAttention(g);
    FuseTransposedB(g);
    FuseGeluTanh(g);
    FuseSiluMul(g);
    FuseRotaryHalf(g);
    ElideFullGather(g);
    RetainState(g);
    SplitAsViews(g);  // after RetainState: a value it binds to a state buffer is not sliced
    EliminateDeadCode(g);
    const MemoryPlan plan = PlanMemory(g);
    progress("write", absl::StrCat(s.name, ": writing program and weights"), si, total);
    QEFF_ASSIGN_OR_RETURN(qeff::v1::ProgramSpecialization sp, EmitSpecialization(g, plan, weights));
    sp.set_name(s.name);
    sp.set_batch_size(s.batch_size);
    sp.set_seq_len(s.seq_len);
    sp.set_ctx_len(s.ctx_len);
    sp.set_full_batch_size(s.full_batch_size);
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
                            {"weight_dtype", options.weight_dtype},
                            {"kv_cache_dtype", options.kv_cache_dtype}};
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
  // A cpu qpc's num_cores is its thread count on this kind of machine: more than the cores
  // only adds threads that fight for them.
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  if (o.target == "cpu" && o.num_cores > cores) {
    return absl::InvalidArgumentError(absl::StrCat("num_cores ", o.num_cores, " exceeds this machine's ", cores,
                                                   " cores; use 0 for all of them"));
  }
  if (o.weight_dtype != "fp32" && o.weight_dtype != "bf16" && o.weight_dtype != "int8" && o.weight_dtype != "int4") {
    return absl::InvalidArgumentError("weight_dtype must be fp32, bf16, int8 or int4");
  }
  if (o.kv_cache_dtype != "fp32" && o.kv_cache_dtype != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat("kv_cache_dtype '", o.kv_cache_dtype, "' is not fp32 or bf16"));
  }
  if (o.kv_cache_dtype != "fp32" && o.target != "cpu") {
    return absl::InvalidArgumentError(absl::StrCat("kv_cache_dtype ", o.kv_cache_dtype, " is a cpu-target option; ", o.target,
                                                   " keeps the cache its compiler converts (fp16)"));
  }
  if (o.full_batch_size < 0 || o.full_batch_size > 256) {
    return absl::InvalidArgumentError("full_batch_size must be in [0, 256] (0 = no continuous batching)");
  }
  if (o.full_batch_size > 0 && o.batch_size != 1) {
    return absl::InvalidArgumentError(
        "batch_size does not apply with full_batch_size (continuous batching prefills one sequence at a time and "
        "decodes full_batch_size); leave --batch-size at 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<CompileSummary> CompileModel(const fs::path& export_dir, const CompileOptions& options,
                                            const fs::path& staging, const ProgressFn& progress) {
  QEFF_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.target != "cpu") return CompileForSdk(export_dir, options, staging, progress);
  progress("load", "reading model.onnx", 0, 0);
  QEFF_ASSIGN_OR_RETURN(std::unique_ptr<OnnxModel> model, OnnxModel::Load(export_dir, "model.onnx"));
  QEFF_ASSIGN_OR_RETURN(CompileSummary summary, CompileCpu(*model, options, staging, progress));
  QEFF_RETURN_IF_ERROR(util::WriteFileSynced(
      staging / "qconfig.json", QConfigJson(export_dir, options, summary.specializations, {}).dump(2)));
  return summary;
}

}  // namespace qeff::compiler
