#include "services/http/serve_spec.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/hf/hub.h"
#include "services/compiler/compiler_service.h"
#include "services/exporter/exporter_service.h"

namespace qeff::http {
namespace {

constexpr char kForm[] = "MODEL[,id=NAME][,ctx_len=N][,prefill_seq_len=N][,full_batch_size=N][,weight_dtype=T][,kv_cache_dtype=T]";

compiler::CompileOptions ToCompileOptions(const ServeSpec& s) {
  compiler::CompileOptions o;
  if (s.ctx_len > 0) o.ctx_len = s.ctx_len;
  if (s.prefill_seq_len > 0) o.prefill_seq_len = s.prefill_seq_len;
  o.full_batch_size = s.full_batch_size;
  if (!s.weight_dtype.empty()) o.weight_dtype = s.weight_dtype;
  if (!s.kv_cache_dtype.empty()) o.kv_cache_dtype = s.kv_cache_dtype;
  return o;
}

}  // namespace

absl::StatusOr<ServeSpec> ParseServeSpec(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--serve '", text, "': ", why, " (form: '", kForm, "')"));
  };
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  ServeSpec spec;
  spec.model = parts[0];
  if (spec.model.empty()) return bad("MODEL is empty; name an HF model folder or an org/name in the HF cache");
  std::set<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const size_t eq = part.find('=');
    if (eq == std::string::npos) return bad(absl::StrCat("'", part, "' is not key=value"));
    const std::string key = part.substr(0, eq), value = part.substr(eq + 1);
    if (!seen.insert(key).second) return bad(absl::StrCat("'", key, "' is given twice"));
    if (value.empty()) return bad(absl::StrCat("'", key, "' has an empty value"));
    if (key == "id") {
      spec.id = value;
    } else if (key == "weight_dtype") {
      spec.weight_dtype = value;
    } else if (key == "kv_cache_dtype") {
      spec.kv_cache_dtype = value;
    } else if (key == "ctx_len" || key == "prefill_seq_len" || key == "full_batch_size") {
      int v = 0;
      if (!absl::SimpleAtoi(value, &v) || v < 0) return bad(absl::StrCat("'", key, "' must be a non-negative integer"));
      (key == "ctx_len" ? spec.ctx_len : key == "prefill_seq_len" ? spec.prefill_seq_len : spec.full_batch_size) = v;
    } else {
      return bad(absl::StrCat("unknown key '", key, "'; the keys are id, ctx_len, prefill_seq_len, full_batch_size, "
                              "weight_dtype, kv_cache_dtype"));
    }
  }
  if (spec.id.empty()) spec.id = spec.model;
  if (absl::Status s = compiler::ValidateOptions(ToCompileOptions(spec)); !s.ok()) return bad(std::string(s.message()));
  auto dir = hf::ResolveModel(spec.model, "main");
  if (!dir.ok()) return bad(std::string(dir.status().message()));
  return spec;
}

absl::Status ServeModel(artifacts::Store& store, runner::ModelRegistry& registry, const ServeSpec& spec,
                        const std::atomic<bool>& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  auto quiet = [](const std::string&, const std::string&, int64_t, int64_t) {};
  auto fail = [&](const absl::Status& s, const char* stage) {
    return absl::Status(s.code(), absl::StrCat("--serve ", spec.model, ": ", stage, " failed: ", s.message()));
  };
  qeff::v1::ExportRequest ereq;
  ereq.set_model(spec.model);
  ereq.mutable_options()->set_continuous_batching(spec.full_batch_size > 0);
  auto exported = exporter::ExportToStore(store, ereq, quiet);
  if (!exported.ok()) return fail(exported.status(), "export");
  if (stop.load()) return absl::CancelledError("stopping");

  const compiler::CompileOptions o = ToCompileOptions(spec);
  qeff::v1::CompileRequest creq;
  creq.set_export_key(exported->artifact().key());
  creq.set_ctx_len(o.ctx_len);
  creq.set_prefill_seq_len(o.prefill_seq_len);
  creq.set_full_batch_size(o.full_batch_size);
  creq.set_weight_dtype(o.weight_dtype);
  creq.set_kv_cache_dtype(o.kv_cache_dtype);
  auto compiled = compiler::CompileToStore(store, creq, quiet);
  if (!compiled.ok()) return fail(compiled.status(), "compile");
  if (stop.load()) return absl::CancelledError("stopping");

  auto loaded = registry.Load(compiled->artifact().key(), spec.id);
  if (!loaded.ok()) return fail(loaded.status(), "load");
  spdlog::info("serving {} as '{}' (export {}{}, qpc {}{}) after {:.1f} s", spec.model, spec.id,
               exported->artifact().key(), exported->cache_hit() ? " cached" : "", compiled->artifact().key(),
               compiled->cache_hit() ? " cached" : "",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return absl::OkStatus();
}

}  // namespace qeff::http
