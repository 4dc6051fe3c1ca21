#include "device/session.h"

#include <cblas.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"

namespace qeff::device {
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMaxProgramBytes = 1ull << 30;
constexpr int kProgramFormatVersion = 1;

uint8_t* AlignedAlloc(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
  return static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
}
}  // namespace

Session::~Session() {
  if (weights_anon_ != nullptr) ::munmap(weights_anon_, weights_anon_bytes_);
  std::free(arena_);
  for (uint8_t* s : states_) std::free(s);
}

absl::StatusOr<std::unique_ptr<Session>> Session::Load(const fs::path& qpc_dir, int num_threads) {
  std::unique_ptr<Session> s(new Session());
  QEFF_ASSIGN_OR_RETURN(std::string bytes, util::ReadFile(qpc_dir / "program.pb", kMaxProgramBytes));
  if (!s->program_.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(qpc_dir.string(), "/program.pb is not a valid qeff program; recompile"));
  }
  if (s->program_.format_version() != kProgramFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("program.pb has format version ", s->program_.format_version(),
                                                      ", this runtime reads ", kProgramFormatVersion, "; recompile"));
  }
  if (s->program_.weights_bytes() > 0) {
    QEFF_RETURN_IF_ERROR(s->LoadWeights(qpc_dir / "weights.bin"));
    if (s->weights_size_ != static_cast<size_t>(s->program_.weights_bytes())) {
      return absl::DataLossError(absl::StrCat("weights.bin has ", s->weights_size_, " bytes, the program expects ",
                                              s->program_.weights_bytes()));
    }
  }
  int threads = num_threads > 0 ? num_threads : s->program_.num_threads();
  s->pool_ = std::make_unique<ThreadPool>(threads);
  openblas_set_num_threads(s->pool_->size());
  const char* profile = std::getenv("QEFF_PROFILE");
  s->profile_ = profile != nullptr && std::string(profile) == "1";
  QEFF_RETURN_IF_ERROR(s->Prepare());
  s->ResetState();
  return s;
}

// Decode streams every weight byte once per token. In 4 KB pages the hardware prefetcher stops
// at every page boundary; in 2 MB pages this machine reads ~28% faster on one core (measured:
// 22 -> 28.5 GB/s). So weights are copied once into transparent huge pages at load. The file's
// page-cache copy stays reclaimable. QEFF_WEIGHTS_MMAP=1 keeps the zero-copy mapping instead
// (lower resident memory when several runners share one qpc).
absl::Status Session::LoadWeights(const fs::path& path) {
  QEFF_ASSIGN_OR_RETURN(weights_map_, util::MappedFile::Open(path));
  weights_ = weights_map_.data();
  weights_size_ = weights_map_.size();
  const char* keep_mmap = std::getenv("QEFF_WEIGHTS_MMAP");
  if ((keep_mmap != nullptr && std::string(keep_mmap) == "1") || weights_size_ < (size_t{4} << 20)) {
    return absl::OkStatus();
  }
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t bytes = (weights_size_ + kHuge - 1) / kHuge * kHuge;
  // Over-allocate by one huge page so the copy can start on a 2 MB boundary.
  void* raw = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return absl::OkStatus();  // keep the file mapping
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  ::madvise(aligned, bytes, MADV_HUGEPAGE);
  std::memcpy(aligned, weights_map_.data(), weights_size_);
  ::mprotect(aligned, bytes, PROT_READ);
  weights_anon_ = raw;
  weights_anon_bytes_ = bytes + kHuge;
  weights_ = aligned;
  weights_map_ = util::MappedFile();  // unmap the file
  return absl::OkStatus();
}

absl::Status Session::Prepare() {
  for (const auto& st : program_.states()) {
    const size_t es = DTypeSize(st.dtype());
    const int64_t n = NumElements({st.shape().begin(), st.shape().end()});
    if (es == 0 || n <= 0 || n > (int64_t{1} << 40)) return absl::DataLossError("program: bad retained-state buffer");
    state_bytes_.push_back(static_cast<size_t>(n) * es);
    states_.push_back(AlignedAlloc(state_bytes_.back()));
    if (!states_.back()) return absl::ResourceExhaustedError("cannot allocate the retained-state (KV cache) buffers");
  }
  for (const auto& sp : program_.specializations()) {
    arena_bytes_ = std::max(arena_bytes_, static_cast<size_t>(std::max<int64_t>(0, sp.arena_bytes())));
  }
  arena_ = AlignedAlloc(arena_bytes_);
  if (!arena_) return absl::ResourceExhaustedError("cannot allocate the activation arena");

  for (int si = 0; si < program_.specializations_size(); ++si) {
    const auto& sp = program_.specializations(si);
    specs_.push_back({sp.name(), sp.batch_size(), sp.seq_len(), sp.ctx_len()});
    Prepared p;
    for (const auto& t : sp.tensors()) {
      TensorRef r;
      r.dtype = t.dtype();
      r.shape.assign(t.shape().begin(), t.shape().end());
      const uint64_t need = r.bytes();
      if (DTypeSize(r.dtype) == 0 || need != static_cast<uint64_t>(t.bytes()) || t.offset() < 0) {
        return absl::DataLossError(absl::StrCat("program: tensor ", t.name(), " has an inconsistent size"));
      }
      const uint64_t off = static_cast<uint64_t>(t.offset());
      switch (t.storage()) {
        case qeff::v1::ARENA:
          if (off + need > arena_bytes_) return absl::DataLossError(absl::StrCat("program: tensor ", t.name(), " outside the arena"));
          r.data = arena_ + off;
          break;
        case qeff::v1::WEIGHT:
          if (off + need > weights_size_) return absl::DataLossError(absl::StrCat("program: weight ", t.name(), " outside weights.bin"));
          // Weights are read-only; kernels never write their inputs.
          r.data = const_cast<uint8_t*>(weights_ + off);
          break;
        case qeff::v1::STATE:
          if (off >= states_.size() || state_bytes_[off] != need) {
            return absl::DataLossError(absl::StrCat("program: state tensor ", t.name(), " does not match its buffer"));
          }
          r.data = states_[off];
          break;
        default:
          return absl::DataLossError("program: unknown tensor storage");
      }
      p.tensors.push_back(std::move(r));
    }
    const int nt = static_cast<int>(p.tensors.size());
    for (const auto& op : sp.ops()) {
      if (!HasKernel(op.type())) return absl::FailedPreconditionError(absl::StrCat("this runtime has no kernel for op ", op.type()));
      std::vector<TensorRef> ins, outs;
      for (int i : op.inputs()) {
        if (i >= nt) return absl::DataLossError("program: op input index out of range");
        ins.push_back(i < 0 ? TensorRef{} : p.tensors[i]);
      }
      for (int i : op.outputs()) {
        if (i < 0 || i >= nt) return absl::DataLossError("program: op output index out of range");
        outs.push_back(p.tensors[i]);
      }
      p.op_inputs.push_back(std::move(ins));
      p.op_outputs.push_back(std::move(outs));
    }
    for (const auto& b : sp.inputs()) {
      if (b.tensor() < 0 || b.tensor() >= nt) return absl::DataLossError("program: input binding out of range");
    }
    for (const auto& b : sp.outputs()) {
      if (b.tensor() < 0 || b.tensor() >= nt) return absl::DataLossError("program: output binding out of range");
      if (b.name() == "logits" && !p.tensors[b.tensor()].shape.empty()) {
        vocab_size_ = static_cast<int>(p.tensors[b.tensor()].shape.back());
      }
    }
    prepared_.push_back(std::move(p));
  }
  if (specs_.empty()) return absl::DataLossError("program has no specializations");
  return absl::OkStatus();
}

void Session::ResetState() {
  for (size_t i = 0; i < states_.size(); ++i) std::memset(states_[i], 0, state_bytes_[i]);
}

absl::Status Session::Run(int spec, const NamedInputs& inputs) {
  if (spec < 0 || spec >= static_cast<int>(prepared_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no specialization ", spec));
  }
  const auto& sp = program_.specializations(spec);
  Prepared& p = prepared_[spec];
  if (static_cast<int>(inputs.size()) != sp.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat("specialization ", sp.name(), " takes ", sp.inputs_size(),
                                                   " inputs, got ", inputs.size()));
  }
  for (const auto& b : sp.inputs()) {
    const HostTensor* h = nullptr;
    for (const auto& [name, t] : inputs) {
      if (name == b.name()) h = &t;
    }
    if (h == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing input ", b.name()));
    const TensorRef& dst = p.tensors[b.tensor()];
    if (h->dtype != dst.dtype || h->shape != dst.shape) {
      return absl::InvalidArgumentError(absl::StrCat("input ", b.name(), " must be ", DTypeName(dst.dtype), " ",
                                                     ShapeString(dst.shape), " for specialization ", sp.name(),
                                                     ", got ", DTypeName(h->dtype), " ", ShapeString(h->shape)));
    }
    std::memcpy(dst.data, h->data, dst.bytes());
  }
  last_spec_ = -1;
  for (int i = 0; i < sp.ops_size(); ++i) {
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    absl::Status st = RunKernel(sp.ops(i), p.op_inputs[i], p.op_outputs[i], pool_.get());
    if (profile_) {
      profile_ms_[sp.ops(i).type()] +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("op ", i, " (", sp.ops(i).type(), "): ", st.message()));
    }
  }
  last_spec_ = spec;
  return absl::OkStatus();
}

absl::StatusOr<HostTensor> Session::Output(const std::string& name) const {
  if (last_spec_ < 0) return absl::FailedPreconditionError("no successful Run yet");
  const auto& sp = program_.specializations(last_spec_);
  for (const auto& b : sp.outputs()) {
    if (b.name() == name) {
      const TensorRef& t = prepared_[last_spec_].tensors[b.tensor()];
      return HostTensor{t.data, t.dtype, t.shape};
    }
  }
  return absl::NotFoundError(absl::StrCat("the program has no output '", name, "'"));
}

std::string Session::TakeProfile() {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [type, ms] : profile_ms_) {
    rows.emplace_back(ms, type);
    total += ms;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::string out;
  for (const auto& [ms, type] : rows) absl::StrAppend(&out, type, ": ", ms, " ms (", 100 * ms / std::max(total, 1e-9), "%)\n");
  profile_ms_.clear();
  return out;
}

absl::StatusOr<HostTensor> Session::State(const std::string& name) const {
  for (int i = 0; i < program_.states_size(); ++i) {
    const auto& st = program_.states(i);
    if (st.name() == name) return HostTensor{states_[i], st.dtype(), {st.shape().begin(), st.shape().end()}};
  }
  return absl::NotFoundError(absl::StrCat("no retained state '", name, "'"));
}

}  // namespace qeff::device
