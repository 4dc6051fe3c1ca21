#include "services/compiler/qaic_plan.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"
#include "services/compiler/onnx_model.h"

namespace qeff::compiler {
namespace fs = std::filesystem;

namespace {

std::string QaicCompilePath() {
  const char* env = std::getenv("QEFF_QAIC_COMPILE");
  return env != nullptr ? env : "/opt/qti-aic/exec/qaic-compile";
}

// Runs argv in `dir`; returns its exit status.
absl::Status RunIn(const fs::path& dir, const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

nlohmann::json SpecializationsJson(const std::vector<SpecializationSummary>& specs) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : specs) {
    nlohmann::json symbols = {{"batch_size", std::to_string(s.batch_size)}, {"seq_len", std::to_string(s.seq_len)}};
    if (s.ctx_len > 0) symbols["ctx_len"] = std::to_string(s.ctx_len);
    if (s.full_batch_size > 0) symbols["full_batch_size"] = std::to_string(s.full_batch_size);
    list.push_back({{"name", s.name}, {"symbols", symbols}});
  }
  return {{"specializations", list}};
}

std::vector<std::string> QaicCompileCommand(const fs::path& onnx_path, const CompileOptions& o, bool causal) {
  std::vector<std::string> argv = {QaicCompilePath(), "-aic-hw", "-aic-hw-version=ai100", "-m=" + onnx_path.string()};
  if (causal) argv.push_back("-retained-state");
  argv.push_back("-convert-to-fp16");
  // Weight compression: QEfficient's mxfp6_matmul is what int8/int4 ask of the cpu target.
  if (o.weight_dtype == "int8" || o.weight_dtype == "int4") argv.push_back("-mxfp6-matmul");
  argv.push_back(absl::StrCat("-aic-num-cores=", o.num_cores > 0 ? o.num_cores : 16));
  argv.push_back("-network-specialization-config=specializations.json");
  if (causal) argv.push_back("-custom-IO-list-file=custom_io.yaml");
  argv.push_back("-aic-binary-dir=qpc");
  return argv;
}

absl::StatusOr<CompileSummary> CompileForSdk(const fs::path& export_dir, const CompileOptions& options,
                                             const fs::path& staging, const ProgressFn& progress) {
  CompileSummary summary;
  QEFF_ASSIGN_OR_RETURN(std::unique_ptr<OnnxModel> model, OnnxModel::Load(export_dir, "model.onnx"));
  const ModelKind kind = KindOf(*model);
  QEFF_RETURN_IF_ERROR(ValidateForModel(options, kind, *model));
  summary.specializations = PlanSpecializations(options, kind, /*decode_batch_ladder=*/false);
  std::string yaml;
  for (const auto& in : model->inputs()) {
    bool retained = false;
    for (const auto& out : model->outputs()) retained |= out.name == in.name + "_RetainedState";
    if (!retained) continue;
    for (const std::string& name : {in.name, in.name + "_RetainedState"}) {
      absl::StrAppend(&yaml, " - IOName: ", name, "\n   Precision: float16\n\n");
    }
  }
  QEFF_RETURN_IF_ERROR(util::WriteFileSynced(staging / "specializations.json",
                                             SpecializationsJson(summary.specializations).dump(2)));
  const bool causal = kind.causal;
  if (causal) QEFF_RETURN_IF_ERROR(util::WriteFileSynced(staging / "custom_io.yaml", yaml));
  summary.command = QaicCompileCommand(export_dir / "model.onnx", options, causal);
  QEFF_RETURN_IF_ERROR(util::WriteFileSynced(
      staging / "qconfig.json", QConfigJson(export_dir, options, summary.specializations, summary.command).dump(2)));
  if (options.target == "qnn") {
    return absl::FailedPreconditionError(
        "the qnn target needs the QAIRT SDK (qairt-converter, qnn-context-binary-generator), which is not installed");
  }
  if (::access(summary.command[0].c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the Cloud AI 100 SDK is not installed (", summary.command[0],
        " not found; set QEFF_QAIC_COMPILE to its path); the command would be: ", absl::StrJoin(summary.command, " ")));
  }
  progress("qaic-compile", absl::StrJoin(summary.command, " "), 0, 0);
  QEFF_RETURN_IF_ERROR(RunIn(staging, summary.command));
  summary.manifest_extra = {{"target", options.target}};
  return summary;
}

}  // namespace qeff::compiler
