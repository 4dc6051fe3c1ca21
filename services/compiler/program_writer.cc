#include "services/compiler/program_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/util/hash.h"
#include "common/util/status_macros.h"

namespace qeff::compiler {

absl::StatusOr<WeightsWriter> WeightsWriter::Create(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path.string(), ": ", std::strerror(errno)));
  return WeightsWriter(f);
}

WeightsWriter::WeightsWriter(WeightsWriter&& o) noexcept
    : file_(o.file_), size_(o.size_), by_hash_(std::move(o.by_hash_)) {
  o.file_ = nullptr;
}

WeightsWriter::~WeightsWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::StatusOr<int64_t> WeightsWriter::Add(const ConstTensor& c) {
  if (c.stored_offset >= 0) return c.stored_offset;
  // By content only: remembering addresses went wrong once a constant was freed and a later one
  // allocated at the same address (a qpc with two weights at one offset).
  const int64_t bytes = static_cast<int64_t>(c.bytes());
  const std::string hash = util::HashHex(std::string_view(reinterpret_cast<const char*>(c.data), c.bytes()));
  auto h = by_hash_.find({hash, bytes});
  if (h != by_hash_.end()) return h->second;
  static const char kZeros[64] = {};
  const int64_t pad = (64 - size_ % 64) % 64;
  if (pad > 0 && std::fwrite(kZeros, 1, pad, file_) != static_cast<size_t>(pad)) {
    return absl::InternalError("writing weights.bin failed (disk full?)");
  }
  const int64_t off = size_ + pad;
  if (bytes > 0 && std::fwrite(c.data, 1, c.bytes(), file_) != c.bytes()) {
    return absl::InternalError("writing weights.bin failed (disk full?)");
  }
  size_ = off + bytes;
  by_hash_[{hash, bytes}] = off;
  return off;
}

absl::StatusOr<int64_t> WeightsWriter::Finish() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    return absl::InternalError(absl::StrCat("syncing weights.bin failed: ", std::strerror(errno)));
  }
  std::fclose(file_);
  file_ = nullptr;
  return size_;
}

absl::StatusOr<qeff::v1::ProgramSpecialization> EmitSpecialization(const IrGraph& g, const MemoryPlan& plan,
                                                             WeightsWriter& weights) {
  qeff::v1::ProgramSpecialization sp;
  std::map<int, int> tensor_of;  // value -> tensor index
  auto tensor = [&](int v) -> absl::StatusOr<int> {
    auto it = tensor_of.find(v);
    if (it != tensor_of.end()) return it->second;
    const IrValue& val = g.values[v];
    const int r = g.Root(v);
    const IrValue& root = g.values[r];
    qeff::v1::TensorInfo* t = sp.add_tensors();
    t->set_name(val.name);
    t->set_dtype(val.dtype);
    for (int64_t d : val.shape) t->add_shape(d);
    t->set_bytes(static_cast<int64_t>(val.bytes()));
    const int64_t slice = g.RootOffset(v);
    if (slice != 0 && (root.constant || root.state >= 0)) {
      return absl::InternalError(absl::StrCat(val.name, " is a slice view of a weight or state"));
    }
    if (root.constant) {
      t->set_storage(qeff::v1::WEIGHT);
      QEFF_ASSIGN_OR_RETURN(int64_t off, weights.Add(*root.constant));
      t->set_offset(off);
    } else if (root.state >= 0) {
      t->set_storage(qeff::v1::STATE);
      t->set_offset(root.state);
    } else {
      auto off = plan.arena_offset.find(r);
      if (off == plan.arena_offset.end()) return absl::InternalError(absl::StrCat("no arena slot for ", val.name));
      t->set_storage(qeff::v1::ARENA);
      t->set_offset(off->second + slice);
    }
    const int idx = sp.tensors_size() - 1;
    tensor_of[v] = idx;
    return idx;
  };
  for (const auto& n : g.nodes) {
    if (n.dead || IsView(g, n)) continue;
    qeff::v1::Op* op = sp.add_ops();
    *op = n.op;
    for (int v : n.in) {
      if (v < 0) {
        op->add_inputs(-1);
        continue;
      }
      QEFF_ASSIGN_OR_RETURN(int t, tensor(v));
      op->add_inputs(t);
    }
    for (int v : n.out) {
      QEFF_ASSIGN_OR_RETURN(int t, tensor(v));
      op->add_outputs(t);
    }
  }
  for (const auto& [name, v] : g.inputs) {
    auto* b = sp.add_inputs();
    b->set_name(name);
    QEFF_ASSIGN_OR_RETURN(int t, tensor(v));
    b->set_tensor(t);
  }
  for (const auto& [name, v] : g.outputs) {
    bool is_state = false;
    for (const auto& st : g.states) is_state |= st.output_name == name;
    if (is_state) continue;
    auto* b = sp.add_outputs();
    b->set_name(name);
    QEFF_ASSIGN_OR_RETURN(int t, tensor(v));
    b->set_tensor(t);
  }
  sp.set_arena_bytes(plan.arena_bytes);
  return sp;
}

}  // namespace qeff::compiler
