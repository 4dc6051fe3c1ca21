#include "services/compiler/compiler_service.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/progress.h"
#include "common/rpc/server.h"
#include "common/util/hash.h"

namespace qeff::compiler {
namespace fs = std::filesystem;
namespace {

// Files the runner needs besides the program: the tokenizer and configs travel with the qpc
// so a runner needs nothing but the qpc directory.
constexpr const char* kCarriedFiles[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                         "special_tokens_map.json", "added_tokens.json", "vocab.txt",
                                         "generation_config.json", "config.json"};

}  // namespace

absl::StatusOr<qeff::v1::CompileResult> CompileToStore(artifacts::Store& store, const qeff::v1::CompileRequest& request,
                                                       const ProgressFn& progress) {
  CompileOptions options;
  if (!request.target().empty()) options.target = request.target();
  if (request.batch_size() != 0) options.batch_size = request.batch_size();
  if (request.prefill_seq_len() != 0) options.prefill_seq_len = request.prefill_seq_len();
  if (request.ctx_len() != 0) options.ctx_len = request.ctx_len();
  options.num_cores = request.num_cores();
  if (!request.weight_dtype().empty()) options.weight_dtype = request.weight_dtype();
  options.full_batch_size = request.full_batch_size();
  if (!request.kv_cache_dtype().empty()) options.kv_cache_dtype = request.kv_cache_dtype();
  if (absl::Status st = ValidateOptions(options); !st.ok()) return st;

  // The export, held in use for the whole compile (eviction skips it) and checked against its
  // manifest: a damaged one is quarantined so the next Export rebuilds it.
  const std::string& export_key = request.export_key();
  auto export_dir = store.Find(artifacts::Kind::kExport, export_key);
  if (!export_dir.ok()) return export_dir.status();
  auto in_use = store.Use(artifacts::Kind::kExport, export_key);
  if (!in_use.ok()) return in_use.status();
  if (absl::Status v = store.Verify(artifacts::Kind::kExport, export_key); !v.ok()) {
    if (v.code() != absl::StatusCode::kDataLoss) return v;
    (void)store.Quarantine(artifacts::Kind::kExport, export_key, std::string(v.message()));
    return absl::DataLossError(absl::StrCat(v.message(), "; the export was moved to quarantine: export the model "
                                                         "again to rebuild it"));
  }
  auto export_manifest = store.ReadManifest(artifacts::Kind::kExport, export_key);
  if (!export_manifest.ok()) return export_manifest.status();

  // num_cores only sizes the runtime thread pool; it does not change the program's bytes, but it
  // is recorded in the manifest and therefore part of the key, like QEfficient's compile hash.
  nlohmann::json options_json = {{"target", options.target},
                                 {"batch_size", options.batch_size},
                                 {"prefill_seq_len", options.prefill_seq_len},
                                 {"ctx_len", options.ctx_len},
                                 {"num_cores", options.num_cores},
                                 {"weight_dtype", options.weight_dtype},
                                 {"full_batch_size", options.full_batch_size}};
  // Only when set, so qpcs compiled before the option existed keep their keys.
  if (options.kv_cache_dtype != "fp32") options_json["kv_cache_dtype"] = options.kv_cache_dtype;
  util::Hasher hasher;
  hasher.Field("qeff-qpc");
  hasher.Field(std::to_string(kCompilerFormatVersion));
  hasher.Field(request.export_key());
  hasher.Field(options_json.dump());
  const std::string key = hasher.Hex();

  auto published = store.GetOrBuild(
      artifacts::Kind::kQpc, key,
      [&](const fs::path& staging) -> absl::StatusOr<nlohmann::json> {
        spdlog::info("compile {} from export {}", key, request.export_key());
        auto s = CompileModel(*export_dir, options, staging, progress);
        if (!s.ok()) return s.status();
        for (const char* name : kCarriedFiles) {
          std::error_code ec;
          if (fs::is_regular_file(*export_dir / name, ec)) {
            fs::copy_file(*export_dir / name, staging / name, ec);
            if (ec) return absl::InternalError(absl::StrCat("cannot copy ", name, ": ", ec.message()));
          }
        }
        nlohmann::json specs = nlohmann::json::array();
        for (const auto& sp : s->specializations) {
          specs.push_back({{"name", sp.name},
                           {"batch_size", sp.batch_size},
                           {"seq_len", sp.seq_len},
                           {"ctx_len", sp.ctx_len},
                           {"full_batch_size", sp.full_batch_size}});
        }
        return nlohmann::json{{"producer", "qeff-compiler"},
                              {"format_version", kCompilerFormatVersion},
                              {"export_key", request.export_key()},
                              {"architecture", export_manifest->value("architecture", "")},
                              {"options", options_json},
                              {"specializations", specs},
                              {"command", s->command},
                              {"details", s->manifest_extra}};
      },
      [&] { progress("wait", "another request is compiling this qpc; waiting", 0, 0); });
  if (!published.ok()) return published.status();

  qeff::v1::CompileResult result;
  auto* r = &result;
  r->mutable_artifact()->set_kind("qpc");
  r->mutable_artifact()->set_key(key);
  r->mutable_artifact()->set_path(published->path.string());
  r->set_cache_hit(published->cache_hit);
  for (const auto& sp : published->manifest.value("specializations", nlohmann::json::array())) {
    auto* out = r->add_specializations();
    out->set_name(sp.value("name", ""));
    out->set_batch_size(sp.value("batch_size", 0));
    out->set_seq_len(sp.value("seq_len", 0));
    out->set_ctx_len(sp.value("ctx_len", 0));
    out->set_full_batch_size(sp.value("full_batch_size", 0));
  }
  for (const auto& c : published->manifest.value("command", nlohmann::json::array())) {
    if (c.is_string()) r->add_command(c.get<std::string>());
  }
  return result;
}

grpc::Status CompilerService::Compile(grpc::ServerContext* context, const qeff::v1::CompileRequest* request,
                                      grpc::ServerWriter<qeff::v1::CompileEvent>* writer) {
  auto result = CompileToStore(*store_, *request,
                               [&](const std::string& stage, const std::string& message, int64_t done, int64_t total) {
                                 rpc::WriteProgress(writer, stage, message, done, total);
                               });
  if (!result.ok()) return rpc::ToGrpc(result.status());
  if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "compile cancelled");
  qeff::v1::CompileEvent ev;
  *ev.mutable_result() = std::move(*result);
  writer->Write(ev);
  return grpc::Status::OK;
}

}  // namespace qeff::compiler
