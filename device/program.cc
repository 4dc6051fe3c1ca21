#include "device/program.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::device {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxProgramBytes = 1ull << 30;
constexpr int kProgramFormatVersion = 2;  // must match services/compiler/compiler.cc (2: Linear panels)
// Sanity bounds: far above anything the compiler writes, low enough that no arithmetic on them
// overflows.
constexpr int kMaxThreads = 1024;
constexpr size_t kMaxRank = 8;
constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr int kMaxSpecializations = 256;
constexpr int kMaxTensors = 1 << 22;
constexpr int64_t kMaxBatch = 1 << 16;
constexpr int64_t kMaxSeq = 1 << 30;
constexpr int64_t kAlign = 64;

std::atomic<uint64_t> memory_limit{0};

uint64_t MemoryLimit() {
  const uint64_t set = memory_limit.load();
  if (set != 0) return set;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : (uint64_t{1} << 40);
}

// The qpc directory's name (the artifact key) for messages, without the rest of the path.
std::string QpcLabel(const fs::path& dir) {
  fs::path p = dir;
  if (p.filename().empty()) p = p.parent_path();
  return absl::StrCat("qpc ", p.filename().string());
}

// Elements of `shape` (dims >= 0, rank <= kMaxRank), or -1 above kMaxElements.
int64_t CheckedElements(const google::protobuf::RepeatedField<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) n = 0;
    else if (n > 0 && d > kMaxElements / n) return -1;
    else n *= d;
  }
  // A zero dim anywhere: also make sure the others are sane.
  for (int64_t d : shape)
    if (d > kMaxElements) return -1;
  return n;
}

int64_t Round64(int64_t bytes) { return (std::max<int64_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign; }

const char* StorageName(qeff::v1::Storage s) {
  switch (s) {
    case qeff::v1::ARENA: return "arena";
    case qeff::v1::WEIGHT: return "weights.bin";
    case qeff::v1::STATE: return "retained state";
    default: return "unknown storage";
  }
}

}  // namespace

void Program::SetMemoryLimitForTesting(uint64_t bytes) { memory_limit.store(bytes); }

Program::~Program() = default;

absl::StatusOr<std::shared_ptr<const Program>> Program::Load(const fs::path& qpc_dir) {
  const std::string label = QpcLabel(qpc_dir);
  std::shared_ptr<Program> p(new Program());
  QEFF_ASSIGN_OR_RETURN(std::string bytes, util::ReadFile(qpc_dir / "program.pb", kMaxProgramBytes));
  if (!p->program_.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(label, ": program.pb is not a valid qeff program; recompile"));
  }
  if (p->program_.format_version() != kProgramFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(label, ": program.pb has format version ",
                                                      p->program_.format_version(), ", this runtime reads ",
                                                      kProgramFormatVersion, "; recompile"));
  }
  if (p->program_.weights_bytes() > 0) QEFF_RETURN_IF_ERROR(p->LoadWeights(qpc_dir / "weights.bin"));
  QEFF_RETURN_IF_ERROR(p->Validate(label));
  return std::shared_ptr<const Program>(std::move(p));
}

absl::StatusOr<std::shared_ptr<const Program>> Program::FromBytes(std::string_view program_pb,
                                                                  std::shared_ptr<const std::string> weights,
                                                                  const std::string& label) {
  std::shared_ptr<Program> p(new Program());
  if (program_pb.size() > kMaxProgramBytes ||
      !p->program_.ParseFromArray(program_pb.data(), static_cast<int>(program_pb.size()))) {
    return absl::DataLossError(absl::StrCat(label, ": program.pb is not a valid qeff program; recompile"));
  }
  if (p->program_.format_version() != kProgramFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(label, ": program.pb has format version ",
                                                      p->program_.format_version(), ", this runtime reads ",
                                                      kProgramFormatVersion, "; recompile"));
  }
  p->weights_owned_ = std::move(weights);
  if (p->weights_owned_ != nullptr) {
    p->weights_ = reinterpret_cast<const uint8_t*>(p->weights_owned_->data());
    p->weights_size_ = p->weights_owned_->size();
  }
  QEFF_RETURN_IF_ERROR(p->Validate(label));
  return std::shared_ptr<const Program>(std::move(p));
}

// Checks everything a kernel relies on before any of it runs; see program.h.
absl::Status Program::Validate(const std::string& label) {
  const qeff::v1::Program& P = program_;
  auto corrupt = [&](auto&&... parts) {
    return absl::DataLossError(absl::StrCat(label, ": program.pb: ", parts..., "; recompile"));
  };
  if (P.num_threads() < 0 || P.num_threads() > kMaxThreads) {
    return corrupt("num_threads ", P.num_threads(), " is not in [0, ", kMaxThreads, "]");
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = std::min(P.num_threads(), cores);
  if (P.weights_bytes() < 0 || static_cast<uint64_t>(P.weights_bytes()) != weights_size_) {
    return corrupt("weights.bin has ", weights_size_, " bytes, the program expects ", P.weights_bytes());
  }

  // Retained-state buffers.
  std::set<std::string> state_names, state_outputs;
  for (int i = 0; i < P.states_size(); ++i) {
    const auto& st = P.states(i);
    if (st.name().empty() || !state_names.insert(st.name()).second || st.output_name().empty() ||
        !state_outputs.insert(st.output_name()).second) {
      return corrupt("retained state ", i, " has an empty or repeated name");
    }
    const int64_t n = CheckedElements(st.shape());
    const size_t es = DTypeSize(st.dtype());
    if (es == 0 || st.shape().empty() || st.shape_size() > static_cast<int>(kMaxRank) || n <= 0) {
      return corrupt("retained state ", st.name(), " has an invalid type or shape");
    }
    state_bytes_.push_back(static_cast<size_t>(n) * es);
  }

  // Weight tensors: weights.bin holds each constant once, so two tensors' ranges are the same or
  // disjoint (an offset into the middle of another weight reads bytes of a different type).
  std::vector<std::pair<int64_t, int64_t>> weight_ranges;

  const int num_specs = P.specializations_size();
  if (num_specs < 1 || num_specs > kMaxSpecializations) return corrupt(num_specs, " specializations");
  std::set<std::string> spec_names;
  for (int si = 0; si < num_specs; ++si) {
    const auto& sp = P.specializations(si);
    auto bad = [&](auto&&... parts) { return corrupt("specialization '", sp.name(), "': ", parts...); };
    if (sp.name().empty() || !spec_names.insert(sp.name()).second) {
      return corrupt("specialization ", si, " has an empty or repeated name");
    }
    SpecializationInfo info{sp.name(), sp.batch_size(), sp.seq_len(), sp.ctx_len(), sp.full_batch_size(), false};
    if (info.batch_size < 1 || info.batch_size > kMaxBatch || info.seq_len < 1 || info.seq_len > kMaxSeq ||
        info.ctx_len < 0 || info.ctx_len > kMaxSeq || info.full_batch_size < 0 || info.full_batch_size > kMaxBatch) {
      return bad("invalid batch_size / seq_len / ctx_len / full_batch_size");
    }
    if (sp.arena_bytes() < 0) return bad("negative arena_bytes");

    // Tensors: type, shape, size and where they live.
    const int nt = sp.tensors_size();
    if (nt > kMaxTensors || sp.ops_size() > kMaxTensors) return bad("too many tensors or ops");
    std::vector<TensorRef> desc(nt);
    int64_t arena_sum = 0;
    for (int t = 0; t < nt; ++t) {
      const auto& ti = sp.tensors(t);
      auto bad_tensor = [&](auto&&... parts) { return bad("tensor ", t, " '", ti.name(), "': ", parts...); };
      const size_t es = DTypeSize(ti.dtype());
      if (es == 0) return bad_tensor("invalid dtype ", static_cast<int>(ti.dtype()));
      if (ti.shape_size() > static_cast<int>(kMaxRank)) return bad_tensor("rank ", ti.shape_size(), " above ", kMaxRank);
      const int64_t n = CheckedElements(ti.shape());
      if (n < 0) return bad_tensor("negative or huge shape");
      const int64_t bytes = n * static_cast<int64_t>(es);
      if (ti.bytes() != bytes) return bad_tensor("holds ", bytes, " bytes, the table says ", ti.bytes());
      const int64_t off = ti.offset();
      switch (ti.storage()) {
        case qeff::v1::ARENA:
          if (off < 0 || off % kAlign != 0 || off > sp.arena_bytes() || bytes > sp.arena_bytes() - off) {
            return bad_tensor("[", off, ", +", bytes, ") is outside the ", sp.arena_bytes(),
                              "-byte arena or not 64-byte aligned");
          }
          arena_sum = std::min(arena_sum + Round64(bytes), kMaxElements * 16);  // saturating
          break;
        case qeff::v1::WEIGHT:
          if (off < 0 || off % kAlign != 0 || static_cast<uint64_t>(off) > weights_size_ ||
              static_cast<uint64_t>(bytes) > weights_size_ - static_cast<uint64_t>(off)) {
            return bad_tensor("[", off, ", +", bytes, ") is outside weights.bin (", weights_size_,
                              " bytes) or not 64-byte aligned");
          }
          if (bytes > 0) weight_ranges.emplace_back(off, bytes);
          break;
        case qeff::v1::STATE:
          if (off < 0 || off >= P.states_size() || ti.dtype() != P.states(static_cast<int>(off)).dtype() ||
              static_cast<size_t>(bytes) != state_bytes_[off]) {
            return bad_tensor("does not match retained state ", off);
          }
          break;
        default:
          return bad_tensor("unknown storage ", static_cast<int>(ti.storage()));
      }
      desc[t].dtype = ti.dtype();
      desc[t].shape.assign(ti.shape().begin(), ti.shape().end());
    }
    // The compiler's plan packs every arena value (64-byte aligned) into at most their sum.
    if (sp.arena_bytes() > arena_sum) return bad("arena_bytes ", sp.arena_bytes(), " exceeds its tensors' ", arena_sum);
    arena_bytes_ = std::max(arena_bytes_, static_cast<size_t>(sp.arena_bytes()));

    // Host bindings.
    std::set<std::string> names;
    for (const auto& b : sp.inputs()) {
      if (b.name().empty() || !names.insert(b.name()).second) return bad("input '", b.name(), "' is empty or repeated");
      if (b.tensor() < 0 || b.tensor() >= nt) return bad("input '", b.name(), "' names tensor ", b.tensor(), " of ", nt);
      if (sp.tensors(b.tensor()).storage() != qeff::v1::ARENA) {
        return bad("input '", b.name(), "' is bound to ", StorageName(sp.tensors(b.tensor()).storage()), ", not the arena");
      }
      info.has_batch_index |= b.name() == "batch_index";
    }
    names.clear();
    for (const auto& b : sp.outputs()) {
      if (b.name().empty() || !names.insert(b.name()).second) return bad("output '", b.name(), "' is empty or repeated");
      if (b.tensor() < 0 || b.tensor() >= nt) return bad("output '", b.name(), "' names tensor ", b.tensor(), " of ", nt);
    }

    // Ops: known, attributes valid, operands in range and consistent with the op's rule, no
    // write into weights or across an operand.
    std::vector<BoundOp> bound;
    bound.reserve(sp.ops_size());
    // Byte range of a tensor in its space (arena, one state buffer); -1 for weights (read-only).
    auto space = [&](int t) {
      const auto& ti = sp.tensors(t);
      return ti.storage() == qeff::v1::ARENA ? 0 : ti.storage() == qeff::v1::STATE ? 1 + ti.offset() : -1;
    };
    auto overlap = [&](int a, int b) {
      const auto& x = sp.tensors(a);
      const auto& y = sp.tensors(b);
      return space(a) == space(b) && x.bytes() > 0 && y.bytes() > 0 && x.offset() < y.offset() + y.bytes() &&
             y.offset() < x.offset() + x.bytes();
    };
    auto same_bytes = [&](int a, int b) {
      return space(a) == space(b) && sp.tensors(a).offset() == sp.tensors(b).offset() &&
             sp.tensors(a).bytes() == sp.tensors(b).bytes();
    };
    for (int j = 0; j < sp.ops_size(); ++j) {
      const auto& op = sp.ops(j);
      auto bad_op = [&](auto&&... parts) { return bad("op ", j, " (", op.type(), "): ", parts...); };
      if (FindOp(op.type()) == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(label, ": program.pb: specialization '", sp.name(), "': op ", j,
                                                          ": this runtime has no kernel for op '", op.type(),
                                                          "'; recompile with this version's compiler"));
      }
      auto b = BindOp(op);
      if (!b.ok()) return bad_op(b.status().message());
      Tensors ins, outs;
      for (int i : op.inputs()) {
        if (i < -1 || i >= nt) return bad_op("input index ", i, " outside [-1, ", nt, ")");
        ins.push_back(i < 0 ? TensorRef{} : desc[i]);
      }
      for (int i : op.outputs()) {
        if (i < 0 || i >= nt) return bad_op("output index ", i, " outside [0, ", nt, ")");
        outs.push_back(desc[i]);
      }
      if (absl::Status st = b->Check(ins, outs); !st.ok()) return bad_op(st.message());
      for (int k = 0; k < op.outputs_size(); ++k) {
        const int o = op.outputs(k);
        if (sp.tensors(o).storage() == qeff::v1::WEIGHT) return bad_op("writes weight tensor '", sp.tensors(o).name(), "'");
        for (int m = 0; m < op.inputs_size(); ++m) {
          const int i = op.inputs(m);
          if (i < 0 || !overlap(o, i)) continue;
          if (k == 0 && m == b->def->in_place && same_bytes(o, i)) continue;
          return bad_op("output ", k, " '", sp.tensors(o).name(), "' overlaps input ", m, " '", sp.tensors(i).name(), "'");
        }
        for (int m = 0; m < k; ++m) {
          if (overlap(o, op.outputs(m))) return bad_op("outputs ", m, " and ", k, " overlap");
        }
      }
      bound.push_back(std::move(b).value());
    }

    // Data flow through the arena: every value an op reads was written by an earlier op (or the
    // host) and not overwritten since. Tensors with the same bytes are one value (views).
    {
      std::vector<std::pair<int64_t, int64_t>> keys;  // (offset, bytes) of arena tensors
      for (int t = 0; t < nt; ++t) {
        if (sp.tensors(t).storage() == qeff::v1::ARENA) keys.emplace_back(sp.tensors(t).offset(), sp.tensors(t).bytes());
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      int64_t widest = 0;
      for (const auto& k : keys) widest = std::max(widest, k.second);
      auto key_of = [&](int t) {
        return static_cast<int>(std::lower_bound(keys.begin(), keys.end(),
                                                 std::make_pair(sp.tensors(t).offset(), sp.tensors(t).bytes())) -
                                keys.begin());
      };
      constexpr int kUnwritten = -1, kValid = -2;
      std::vector<int> state(keys.size(), kUnwritten);  // >= 0: overwritten by that op
      std::vector<qeff::v1::DType> written_as(keys.size(), qeff::v1::DTYPE_UNSPECIFIED);
      auto readable = [&](int t, auto&& fail) -> absl::Status {
        if (sp.tensors(t).storage() != qeff::v1::ARENA) return absl::OkStatus();
        const int k = key_of(t);
        const int s = state[k];
        if (s == kValid && written_as[k] != sp.tensors(t).dtype()) {
          return fail("reads tensor '", sp.tensors(t).name(), "' as ", DTypeName(sp.tensors(t).dtype()),
                      ", its bytes were written as ", DTypeName(written_as[k]));
        }
        if (s == kValid) return absl::OkStatus();
        if (s == kUnwritten) return fail("reads tensor '", sp.tensors(t).name(), "' before anything writes it");
        return fail("reads tensor '", sp.tensors(t).name(), "' after op ", s, " (", sp.ops(s).type(),
                    ") overwrote its bytes");
      };
      for (const auto& b : sp.inputs()) {
        state[key_of(b.tensor())] = kValid;
        written_as[key_of(b.tensor())] = sp.tensors(b.tensor()).dtype();
      }
      for (int j = 0; j < sp.ops_size(); ++j) {
        const auto& op = sp.ops(j);
        auto bad_op = [&](auto&&... parts) { return bad("op ", j, " (", op.type(), "): ", parts...); };
        for (int i : op.inputs()) {
          if (i >= 0) QEFF_RETURN_IF_ERROR(readable(i, bad_op));
        }
        for (int o : op.outputs()) {
          if (sp.tensors(o).storage() != qeff::v1::ARENA) continue;
          const int k = key_of(o);
          const int64_t a = keys[k].first, e = a + keys[k].second;
          if (e > a) {
            // Tensors inside the written bytes are slices of it (views at an offset) and now
            // hold valid bytes; tensors that only overlap them lost theirs.
            auto it = std::lower_bound(keys.begin(), keys.end(), std::make_pair(a - widest, int64_t{0}));
            for (; it != keys.end() && it->first < e; ++it) {
              const size_t other = static_cast<size_t>(it - keys.begin());
              if (it->first + it->second <= a || other == static_cast<size_t>(k)) continue;
              const bool inside = it->first >= a && it->first + it->second <= e;
              state[other] = inside ? kValid : j;
              if (inside) written_as[other] = sp.tensors(o).dtype();
            }
          }
          state[k] = kValid;
          written_as[k] = sp.tensors(o).dtype();
        }
      }
      for (const auto& b : sp.outputs()) {
        QEFF_RETURN_IF_ERROR(readable(b.tensor(), [&](auto&&... parts) { return bad("output '", b.name(), "' ", parts...); }));
      }
    }

    if (info.has_batch_index) {
      if (info.full_batch_size < 1) return bad("takes batch_index without full_batch_size");
      if (full_batch_size_ != 0 && full_batch_size_ != info.full_batch_size) {
        return corrupt("specializations disagree on full_batch_size");
      }
      full_batch_size_ = info.full_batch_size;
    }
    // The runner reads one row of `vocab` float logits per sequence of the batch.
    for (const auto& b : sp.outputs()) {
      if (b.name() != "logits") continue;
      const TensorRef& t = desc[b.tensor()];
      if (t.dtype != qeff::v1::F32 || t.shape.empty() || t.shape.back() < 1 || t.shape.back() > (1 << 30) ||
          t.numel() < static_cast<int64_t>(info.batch_size) * t.shape.back()) {
        return bad("logits ", DTypeName(t.dtype), " ", ShapeString(t.shape), " do not hold float32 [", info.batch_size,
                   ", ..., vocab]");
      }
      const int vocab = static_cast<int>(t.shape.back());
      if (vocab_size_ != 0 && vocab_size_ != vocab) return corrupt("specializations disagree on the vocabulary size");
      vocab_size_ = vocab;
    }
    specs_.push_back(std::move(info));
    ops_.push_back(std::move(bound));
  }
  std::sort(weight_ranges.begin(), weight_ranges.end());
  int64_t weights_end = 0;
  for (size_t i = 0; i < weight_ranges.size(); ++i) {
    const auto& [off, bytes] = weight_ranges[i];
    if (i > 0 && weight_ranges[i - 1] == weight_ranges[i]) continue;
    if (off < weights_end) {
      return corrupt("weight tensors [", off, ", +", bytes, ") and one ending at ", weights_end,
                     " partly overlap in weights.bin");
    }
    weights_end = off + bytes;
  }
  for (int i = 0; i < P.states_size(); ++i) {
    const auto& st = P.states(i);
    if (full_batch_size_ > 0 && st.shape(0) != full_batch_size_) {
      return corrupt("retained state ", st.name(), " does not have ", full_batch_size_, " rows (full_batch_size)");
    }
  }
  uint64_t need = arena_bytes_;
  for (size_t b : state_bytes_) need += b;
  if (need > MemoryLimit()) {
    return absl::ResourceExhaustedError(absl::StrCat(label, ": the program needs ", need,
                                                     " bytes of activations and retained state, above this machine's ",
                                                     MemoryLimit()));
  }
  return absl::OkStatus();
}

// Decode streams every weight byte once per token. In 4 KB pages the hardware prefetcher stops
// at every page boundary; in 2 MB pages this machine reads ~28% faster on one core (measured:
// 22 -> 28.5 GB/s). So weights are copied once into transparent huge pages at load. The file's
// page-cache copy stays reclaimable. QEFF_WEIGHTS_MMAP=1 keeps the zero-copy mapping instead
// (lower resident memory when several runner processes share one qpc).
absl::Status Program::LoadWeights(const fs::path& path) {
  QEFF_ASSIGN_OR_RETURN(weights_map_, util::MappedFile::Open(path));
  weights_ = weights_map_.data();
  weights_size_ = weights_map_.size();
  const char* keep_mmap = std::getenv("QEFF_WEIGHTS_MMAP");
  if ((keep_mmap != nullptr && std::string(keep_mmap) == "1") || weights_size_ < (size_t{4} << 20)) {
    return absl::OkStatus();
  }
  util::HugeBuffer copy(weights_size_);
  if (copy.empty()) return absl::OkStatus();  // keep the file mapping
  uint8_t* aligned = copy.data();
  // In 64 MB steps, dropping each copied range of the file mapping from this process, so the
  // mapping and the copy are never resident together: peak RSS stays near the weights' size.
  constexpr size_t kStep = size_t{64} << 20;
  for (size_t off = 0; off < weights_size_; off += kStep) {
    const size_t n = std::min(kStep, weights_size_ - off);
    std::memcpy(aligned + off, weights_map_.data() + off, n);
    ::madvise(const_cast<uint8_t*>(weights_map_.data()) + off, n, MADV_DONTNEED);
  }
  copy.MakeReadOnly();
  weights_copy_ = std::move(copy);
  weights_ = aligned;
  weights_map_ = util::MappedFile();  // unmap the file
  return absl::OkStatus();
}

}  // namespace qeff::device
