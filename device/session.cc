#include "device/session.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::device {
namespace fs = std::filesystem;

Session::~Session() = default;

absl::StatusOr<std::unique_ptr<Session>> Session::Load(const fs::path& qpc_dir, int num_threads) {
  QEFF_ASSIGN_OR_RETURN(std::shared_ptr<const Program> program, Program::Load(qpc_dir));
  return Create(std::move(program), num_threads);
}

absl::StatusOr<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Program> program, int num_threads) {
  std::unique_ptr<Session> s(new Session());
  s->program_ = std::move(program);
  s->pool_ = &ThreadPool::Process();
  // MatMul's sgemm (large products between activations) runs on OpenBLAS's own threads, sized
  // like the shared pool once.
  static const bool blas_sized = [&] {
    openblas_set_num_threads(s->pool_->size());
    return true;
  }();
  (void)blas_sized;
  const int want = num_threads > 0 ? num_threads : s->program_->num_threads();
  s->threads_ = want > 0 ? std::min(want, s->pool_->size()) : s->pool_->size();
  const char* profile = std::getenv("QEFF_PROFILE");
  s->profile_ = profile != nullptr && std::string(profile) == "1";
  QEFF_RETURN_IF_ERROR(s->Prepare());  // fresh state buffers are zero
  return s;
}

// Binds every op's operands to memory. The program was validated at load (shapes, storage
// bounds, kernels and attributes), so this only allocates and resolves pointers.
absl::Status Session::Prepare() {
  const qeff::v1::Program& program = program_->proto();
  // A zero-byte weights.bin still gives present (non-null) pointers.
  static const uint8_t kNoWeights[64] = {};
  const uint8_t* weights = program_->weights() != nullptr ? program_->weights() : kNoWeights;
  for (size_t bytes : program_->state_bytes()) {
    state_bytes_.push_back(bytes);
    // Huge pages: decode reads every sequence's KV rows from memory each step.
    buffers_.emplace_back(bytes);
    states_.push_back(buffers_.back().data());
    if (!states_.back()) return absl::ResourceExhaustedError("cannot allocate the retained-state (KV cache) buffers");
  }
  arena_bytes_ = program_->arena_bytes();
  buffers_.emplace_back(arena_bytes_);
  arena_ = buffers_.back().data();
  if (!arena_) return absl::ResourceExhaustedError("cannot allocate the activation arena");

  for (int si = 0; si < program.specializations_size(); ++si) {
    const auto& sp = program.specializations(si);
    Prepared p;
    for (const auto& t : sp.tensors()) {
      TensorRef r;
      r.dtype = t.dtype();
      r.shape.assign(t.shape().begin(), t.shape().end());
      const size_t off = static_cast<size_t>(t.offset());
      switch (t.storage()) {
        case qeff::v1::ARENA: r.data = arena_ + off; break;
        // Weights are read-only; no op writes them (checked at load).
        case qeff::v1::WEIGHT: r.data = const_cast<uint8_t*>(weights + off); break;
        default: r.data = states_[off]; break;
      }
      p.tensors.push_back(std::move(r));
    }
    const std::vector<BoundOp>& ops = program_->ops(si);
    for (int j = 0; j < sp.ops_size(); ++j) {
      const auto& op = sp.ops(j);
      Step step;
      step.kernel = ops[j].def->kernel;
      step.attrs = ops[j].attrs.get();
      for (int i : op.inputs()) step.in.push_back(i < 0 ? TensorRef{} : p.tensors[i]);
      for (int i : op.outputs()) step.out.push_back(p.tensors[i]);
      p.steps.push_back(std::move(step));
    }
    prepared_.push_back(std::move(p));
    profile_op_ms_.emplace_back(sp.ops_size(), 0.0);
  }
  return absl::OkStatus();
}

void Session::ResetState() {
  if (!state_written_) return;  // still zero: no pass over (and no committing of) gigabytes
  for (size_t i = 0; i < states_.size(); ++i) std::memset(states_[i], 0, state_bytes_[i]);
  state_written_ = false;
}

absl::Status Session::ResetSlot(int slot, int64_t positions) {
  const int fbs = program_->full_batch_size();
  if (slot < 0 || slot >= fbs) {
    return absl::InvalidArgumentError(absl::StrCat("KV slot ", slot, " outside [0, ", fbs, ")"));
  }
  for (size_t i = 0; i < states_.size(); ++i) {
    const auto& st = program_->proto().states(static_cast<int>(i));
    const size_t row = state_bytes_[i] / static_cast<size_t>(fbs);
    uint8_t* base = states_[i] + row * static_cast<size_t>(slot);
    const int64_t C = st.shape_size() == 4 ? st.shape(2) : 0;
    if (positions < 0 || C == 0 || positions >= C) {
      std::memset(base, 0, row);
      continue;
    }
    // [heads, ctx_len, head_dim] of this slot: the first `positions` rows of every head.
    const int64_t heads = st.shape(1);
    const size_t head_bytes = row / static_cast<size_t>(heads);
    const size_t used = head_bytes / static_cast<size_t>(C) * static_cast<size_t>(positions);
    for (int64_t h = 0; h < heads; ++h) std::memset(base + static_cast<size_t>(h) * head_bytes, 0, used);
  }
  return absl::OkStatus();
}

absl::Status Session::Run(int spec, const NamedInputs& inputs) {
  if (spec < 0 || spec >= static_cast<int>(prepared_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no specialization ", spec));
  }
  const auto& sp = program_->proto().specializations(spec);
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
  state_written_ = true;
  ThreadPool::LimitScope limit(threads_);
  const int n = static_cast<int>(p.steps.size());
  for (int i = 0; i < n; ++i) {
    const Step& step = p.steps[i];
    absl::Status st;
    if (profile_) {
      const auto t0 = std::chrono::steady_clock::now();
      st = step.kernel(step.attrs, step.in, step.out, pool_);
      profile_op_ms_[spec][i] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } else {
      st = step.kernel(step.attrs, step.in, step.out, pool_);
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
  const auto& sp = program_->proto().specializations(last_spec_);
  for (const auto& b : sp.outputs()) {
    if (b.name() == name) {
      const TensorRef& t = prepared_[last_spec_].tensors[b.tensor()];
      return HostTensor{t.data, t.dtype, t.shape};
    }
  }
  return absl::NotFoundError(absl::StrCat("the program has no output '", name, "'"));
}

std::string Session::TakeProfile() {
  for (size_t si = 0; si < profile_op_ms_.size(); ++si) {
    const auto& sp = program_->proto().specializations(static_cast<int>(si));
    for (size_t i = 0; i < profile_op_ms_[si].size(); ++i) {
      if (profile_op_ms_[si][i] > 0) profile_ms_[sp.ops(static_cast<int>(i)).type()] += profile_op_ms_[si][i];
      profile_op_ms_[si][i] = 0;
    }
  }
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
  for (int i = 0; i < program_->proto().states_size(); ++i) {
    const auto& st = program_->proto().states(i);
    if (st.name() == name) return HostTensor{states_[i], st.dtype(), {st.shape().begin(), st.shape().end()}};
  }
  return absl::NotFoundError(absl::StrCat("no retained state '", name, "'"));
}

}  // namespace qeff::device
