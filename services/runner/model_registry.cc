#include "services/runner/model_registry.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"

namespace qeff::runner {
namespace fs = std::filesystem;

namespace {

// eos_token_id of generation_config.json (else config.json): an integer or a list of them.
std::vector<int32_t> EosIds(const fs::path& dir, const tokenizer::Tokenizer* tok, int vocab) {
  std::vector<int32_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && id < vocab && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<int32_t>(id));
  };
  for (const char* name : {"generation_config.json", "config.json"}) {
    auto text = util::ReadFile(dir / name, 16 << 20);
    if (!text.ok()) continue;
    const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("eos_token_id")) continue;
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) add(e.get<int64_t>());
    if (e.is_array()) {
      for (const auto& v : e) {
        if (v.is_number_integer()) add(v.get<int64_t>());
      }
    }
    if (!ids.empty()) break;
  }
  if (tok != nullptr && tok->eos_token_id()) add(*tok->eos_token_id());
  return ids;
}

// "id (qpc …, 1.2 GB), …" for capacity errors.
std::string Describe(const std::map<std::string, std::shared_ptr<LoadedModel>>& models) {
  std::string out;
  for (const auto& [id, m] : models) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", id, " (", absl::StrFormat("%.2f", m->weight_bytes / 1e9), " GB)");
  }
  return out.empty() ? "none" : out;
}

// A damaged artifact found at load: quarantined, and the error says how to rebuild it.
absl::Status Damaged(artifacts::Store* store, const std::string& key, const absl::Status& why) {
  (void)store->Quarantine(artifacts::Kind::kQpc, key, std::string(why.message()));
  spdlog::error("qpc {} is damaged ({}); moved to quarantine", key, std::string(why.message()));
  return absl::DataLossError(absl::StrCat(why.message(), "; qpc ", key,
                                          " was moved to the cache's quarantine: compile the model again to rebuild it"));
}

}  // namespace

ModelRegistry::ModelRegistry(artifacts::Store* store, RegistryOptions options) : store_(store), options_(options) {
  device::ThreadPool::ConfigureProcess(options_.num_threads);
}

ModelRegistry::~ModelRegistry() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, m] : models_) {
    if (m->scheduler) m->scheduler->Shutdown(absl::UnavailableError("the server is shutting down"));
  }
}

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelRegistry::Load(const std::string& qpc_key,
                                                                 std::string model_id) {
  if (model_id.empty()) model_id = qpc_key;
  if (model_id.size() > 256) return absl::InvalidArgumentError("model_id is longer than 256 characters");
  std::lock_guard<std::mutex> load_lock(load_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = models_.find(model_id);
    if (it != models_.end()) {
      if (it->second->qpc_key == qpc_key) return it->second;
      return absl::AlreadyExistsError(absl::StrCat("model id '", model_id, "' is already loaded with qpc ",
                                                   it->second->qpc_key, "; unload it first"));
    }
  }
  QEFF_ASSIGN_OR_RETURN(fs::path dir, store_->Find(artifacts::Kind::kQpc, qpc_key));
  QEFF_ASSIGN_OR_RETURN(artifacts::ArtifactUse in_use, store_->Use(artifacts::Kind::kQpc, qpc_key));
  QEFF_ASSIGN_OR_RETURN(nlohmann::json manifest, store_->ReadManifest(artifacts::Kind::kQpc, qpc_key));
  // Capacity, before anything is read: a qpc already loaded under another id adds no weights.
  std::error_code size_ec;
  const uint64_t weight_bytes = fs::file_size(dir / "weights.bin", size_ec);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (options_.max_loaded_models > 0 && static_cast<int>(models_.size()) >= options_.max_loaded_models) {
      return absl::ResourceExhaustedError(absl::StrCat(
          models_.size(), " models are loaded (", Describe(models_), "), the most this runner allows "
          "(--max-loaded-models); unload one first"));
    }
    uint64_t loaded_bytes = 0;
    bool shared = false;
    std::map<std::string, uint64_t> by_qpc;
    for (const auto& [id, m] : models_) {
      by_qpc[m->qpc_key] = m->weight_bytes;
      shared |= m->qpc_key == qpc_key;
    }
    for (const auto& [key, bytes] : by_qpc) loaded_bytes += bytes;
    if (options_.max_weight_bytes > 0 && !shared && loaded_bytes + weight_bytes > options_.max_weight_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "qpc %s needs %.2f GB of weights and %.2f GB are loaded (%s); this runner holds at most %.2f GB "
          "(--max-weight-gb): unload a model first",
          qpc_key, weight_bytes / 1e9, loaded_bytes / 1e9, Describe(models_), options_.max_weight_bytes / 1e9));
    }
  }
  const std::string target = manifest.value("options", nlohmann::json::object()).value("target", std::string("cpu"));
  if (target != "cpu") {
    return absl::FailedPreconditionError(absl::StrCat("qpc ", qpc_key, " was compiled for target '", target,
                                                      "'; this runner executes cpu qpcs (compile with --target cpu)"));
  }
  auto model = std::make_shared<LoadedModel>();
  model->model_id = model_id;
  model->qpc_key = qpc_key;
  model->architecture = manifest.value("architecture", "");
  model->dir = dir;
  model->weight_bytes = weight_bytes;
  model->in_use = std::move(in_use);
  std::shared_ptr<const device::Program> program = programs_[qpc_key].lock();
  if (!program) {
    // Files against the manifest (hashed once per file identity), then the program's own checks.
    if (absl::Status v = store_->Verify(artifacts::Kind::kQpc, qpc_key); !v.ok()) {
      return v.code() == absl::StatusCode::kDataLoss ? Damaged(store_, qpc_key, v) : v;
    }
    auto loaded = device::Program::Load(dir);
    if (!loaded.ok()) {
      return loaded.status().code() == absl::StatusCode::kDataLoss ? Damaged(store_, qpc_key, loaded.status())
                                                                    : loaded.status();
    }
    program = *std::move(loaded);
    programs_[qpc_key] = program;
  }
  QEFF_ASSIGN_OR_RETURN(model->session, device::Session::Create(program, 0));
  std::error_code ec;
  if (fs::exists(dir / "tokenizer.json", ec) || fs::exists(dir / "vocab.json", ec)) {
    QEFF_ASSIGN_OR_RETURN(model->tokenizer, tokenizer::Tokenizer::FromDirectory(dir));
  }
  if (IsEncoder(*model->session)) {
    // Encoders (a classifier's logits output is not a vocabulary): no scheduler, no EOS.
    auto config = util::ReadFile(dir / "config.json", 16 << 20);
    model->encoder = DescribeEncoder(
        *model->session, config.ok() ? nlohmann::json::parse(*config, nullptr, /*allow_exceptions=*/false)
                                     : nlohmann::json());
  } else {
    model->eos_token_ids = EosIds(dir, model->tokenizer.get(), model->session->vocab_size());
  }
  if (!IsEncoder(*model->session) && model->session->vocab_size() > 0) {
    SchedulerOptions so;
    so.max_queued_requests = options_.max_queued_requests;
    so.max_active_slots = options_.max_active_slots;
    so.model_id = model_id;
    QEFF_ASSIGN_OR_RETURN(model->scheduler, Scheduler::Create(model->session.get(), so));
  }
  spdlog::info("loaded {} (qpc {}, {}, {} KV slot(s))", model_id, qpc_key, model->architecture,
               model->scheduler ? model->scheduler->load().slots : 0);
  std::lock_guard<std::mutex> l(mu_);
  models_[model_id] = model;
  return model;
}

absl::Status ModelRegistry::Unload(const std::string& model_id) {
  std::shared_ptr<LoadedModel> model;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = models_.find(model_id);
    if (it == models_.end()) return absl::NotFoundError(absl::StrCat("model '", model_id, "' is not loaded"));
    model = std::move(it->second);
    models_.erase(it);
  }
  // Requests still streaming hold the model; end them now so they release it.
  if (model->scheduler) {
    model->scheduler->Shutdown(absl::UnavailableError(
        absl::StrCat("model '", model_id, "' was unloaded while the request ran; load it again and retry")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelRegistry::Get(const std::string& model_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = models_.find(model_id);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", model_id, "' is not loaded; call Runner.Load (qeffctl load) first"));
  }
  return it->second;
}

std::vector<std::shared_ptr<LoadedModel>> ModelRegistry::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::shared_ptr<LoadedModel>> out;
  for (const auto& [id, m] : models_) out.push_back(m);
  return out;
}

}  // namespace qeff::runner
