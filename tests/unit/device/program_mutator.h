// Shared by program_mutation_test and tests/fuzz/program_fuzz: structured random edits of a
// compiled program.pb (dims, dtypes, offsets, storage, attribute values, op types, operand
// indices, dropped / duplicated / reordered ops and tensors, specialization and program fields),
// valid host inputs for any specialization, and one run of every specialization.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device/session.h"
#include "qeff/v1/program.pb.h"

namespace qeff::testing {

class ProgramMutator {
 public:
  explicit ProgramMutator(uint64_t seed) : rng_(seed) {}

  // Applies one random edit to `p`; returns what it did.
  std::string Mutate(qeff::v1::Program& p) {
    if (p.specializations_size() == 0 || Pick(20) == 0) return MutateProgramFields(p);
    const int si = Pick(p.specializations_size());
    qeff::v1::ProgramSpecialization& sp = *p.mutable_specializations(si);
    const std::string where = absl::StrCat("spec ", si, ": ");
    const int nt = sp.tensors_size(), no = sp.ops_size();
    switch (Pick(22)) {
      case 0:
      case 1: {  // a dim, with or without the byte count kept consistent
        if (nt == 0) break;
        auto& t = *sp.mutable_tensors(Pick(nt));
        if (t.shape_size() == 0) {
          t.add_shape(Interesting(1));
        } else {
          const int d = Pick(t.shape_size());
          t.set_shape(d, Interesting(t.shape(d)));
        }
        if (Pick(3) != 0) FixBytes(t);
        return where + "dim of tensor " + t.name();
      }
      case 2: {  // rank
        if (nt == 0) break;
        auto& t = *sp.mutable_tensors(Pick(nt));
        if (t.shape_size() > 0 && Pick(2) == 0) {
          t.mutable_shape()->RemoveLast();
        } else {
          t.add_shape(Pick(2) == 0 ? 1 : Interesting(2));
        }
        if (Pick(3) != 0) FixBytes(t);
        return where + "rank of tensor " + t.name();
      }
      case 3: {  // dtype
        if (nt == 0) break;
        auto& t = *sp.mutable_tensors(Pick(nt));
        t.set_dtype(static_cast<qeff::v1::DType>(Pick(9)));
        if (Pick(2) == 0) FixBytes(t);
        return where + "dtype of tensor " + t.name();
      }
      case 4:
      case 5: {  // offset: nearby, another tensor's, or anything
        if (nt == 0) break;
        auto& t = *sp.mutable_tensors(Pick(nt));
        if (Pick(2) == 0) t.set_offset(sp.tensors(Pick(nt)).offset());
        else t.set_offset(Interesting(t.offset()));
        return where + "offset of tensor " + t.name();
      }
      case 6: {  // storage
        if (nt == 0) break;
        auto& t = *sp.mutable_tensors(Pick(nt));
        t.set_storage(static_cast<qeff::v1::Storage>(Pick(4)));
        if (t.storage() == qeff::v1::STATE && Pick(2) == 0) t.set_offset(Pick(std::max(1, p.states_size())));
        return where + "storage of tensor " + t.name();
      }
      case 7:
      case 8: {  // an attribute value
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        if (op.attrs_size() == 0) {
          AddAttr(op);
          return where + "new attribute on " + op.type();
        }
        auto& a = *op.mutable_attrs(Pick(op.attrs_size()));
        switch (Pick(6)) {
          case 0: a.set_i(Interesting(a.i())); break;
          case 1: a.set_f(InterestingFloat(a.f())); break;
          case 2:
            if (a.ints_size() > 0) {
              const int k = Pick(a.ints_size());
              a.set_ints(k, Interesting(a.ints(k)));
            } else {
              a.add_ints(Interesting(0));
            }
            break;
          case 3: a.add_ints(Interesting(a.ints_size() ? a.ints(0) : 1)); break;
          case 4:
            if (a.ints_size() > 0) a.mutable_ints()->RemoveLast();
            break;
          default: a.set_name(kAttrNames[Pick(kNumAttrNames)]); break;
        }
        return where + "attribute " + a.name() + " of " + op.type();
      }
      case 9: {  // attribute added / dropped
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        if (op.attrs_size() > 0 && Pick(2) == 0) {
          op.mutable_attrs()->DeleteSubrange(Pick(op.attrs_size()), 1);
          return where + "dropped an attribute of " + op.type();
        }
        AddAttr(op);
        return where + "added an attribute to " + op.type();
      }
      case 10: {  // op type
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        const std::string old = op.type();
        op.set_type(kOpTypes[Pick(kNumOpTypes)]);
        return where + "op type " + old + " -> " + op.type();
      }
      case 11:
      case 12: {  // an input index
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        if (op.inputs_size() == 0) break;
        const int k = Pick(op.inputs_size());
        op.set_inputs(k, Pick(8) == 0 ? static_cast<int>(Interesting(op.inputs(k))) : Pick(nt + 1) - 1);
        return where + "input of " + op.type();
      }
      case 13: {  // an output index
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        if (op.outputs_size() == 0) break;
        const int k = Pick(op.outputs_size());
        op.set_outputs(k, Pick(8) == 0 ? static_cast<int>(Interesting(op.outputs(k))) : Pick(nt));
        return where + "output of " + op.type();
      }
      case 14: {  // operand count
        if (no == 0) break;
        auto& op = *sp.mutable_ops(Pick(no));
        switch (Pick(4)) {
          case 0:
            if (op.inputs_size() > 0) op.mutable_inputs()->RemoveLast();
            break;
          case 1: op.add_inputs(Pick(nt + 1) - 1); break;
          case 2:
            if (op.outputs_size() > 0) op.mutable_outputs()->RemoveLast();
            break;
          default: op.add_outputs(Pick(std::max(nt, 1))); break;
        }
        return where + "operand count of " + op.type();
      }
      case 15: {  // drop an op
        if (no == 0) break;
        const int k = Pick(no);
        const std::string type = sp.ops(k).type();
        sp.mutable_ops()->DeleteSubrange(k, 1);
        return where + "dropped op " + std::to_string(k) + " " + type;
      }
      case 16: {  // duplicate an op somewhere
        if (no == 0) break;
        const int k = Pick(no);
        *sp.add_ops() = sp.ops(k);
        for (int j = sp.ops_size() - 1; j > Pick(sp.ops_size()); --j) sp.mutable_ops()->SwapElements(j, j - 1);
        return where + "duplicated op " + sp.ops(k).type();
      }
      case 17: {  // swap two ops
        if (no < 2) break;
        const int a = Pick(no), b = Pick(no);
        sp.mutable_ops()->SwapElements(a, b);
        return where + "swapped ops " + std::to_string(a) + " and " + std::to_string(b);
      }
      case 18: {  // drop a tensor (later indices shift)
        if (nt == 0) break;
        sp.mutable_tensors()->DeleteSubrange(Pick(nt), 1);
        return where + "dropped a tensor";
      }
      case 19: {  // duplicate a tensor and point a reader at the copy
        if (nt == 0 || no == 0) break;
        *sp.add_tensors() = sp.tensors(Pick(nt));
        auto& op = *sp.mutable_ops(Pick(no));
        if (op.inputs_size() > 0) op.set_inputs(Pick(op.inputs_size()), nt);
        return where + "duplicated a tensor";
      }
      case 20: {  // specialization fields
        switch (Pick(6)) {
          case 0: sp.set_batch_size(static_cast<int>(Interesting(sp.batch_size()))); break;
          case 1: sp.set_seq_len(static_cast<int>(Interesting(sp.seq_len()))); break;
          case 2: sp.set_ctx_len(static_cast<int>(Interesting(sp.ctx_len()))); break;
          case 3: sp.set_full_batch_size(static_cast<int>(Interesting(sp.full_batch_size()))); break;
          default: sp.set_arena_bytes(Interesting(sp.arena_bytes())); break;
        }
        return where + "specialization field";
      }
      default: {  // host bindings
        auto* list = Pick(2) == 0 ? sp.mutable_inputs() : sp.mutable_outputs();
        if (list->empty()) break;
        auto& b = *list->Mutable(Pick(list->size()));
        switch (Pick(3)) {
          case 0: b.set_tensor(Pick(8) == 0 ? static_cast<int>(Interesting(b.tensor())) : Pick(std::max(nt, 1))); break;
          case 1: b.set_name(Pick(2) == 0 ? std::string() : std::string(kBindingNames[Pick(4)])); break;
          default: list->DeleteSubrange(Pick(list->size()), 1); break;
        }
        return where + "binding";
      }
    }
    return MutateProgramFields(p);
  }

 private:
  static constexpr const char* kOpTypes[] = {
      "Add", "Mul", "Div", "Sub", "Where", "Sigmoid", "Exp", "Cast", "Not", "MatMul", "Linear", "Softmax",
      "RMSNorm", "LayerNormalization", "Transpose", "Reshape", "Copy", "Concat", "Split", "Slice", "Expand",
      "Gather", "GatherElements", "ArgMax", "ReduceMean", "ReduceMax", "CtxScatter", "CtxGather", "CtxScatterCB",
      "CtxGatherCB", "CachedAttention", "SparseMoE", "Range", "ConstantOfShape", "NoSuchOp", ""};
  static constexpr int kNumOpTypes = sizeof(kOpTypes) / sizeof(kOpTypes[0]);
  static constexpr const char* kAttrNames[] = {"axis", "axes", "perm", "starts", "steps", "epsilon", "groups",
                                               "score_ops", "score_args", "mask_value", "trans_b", "out_features",
                                               "num_experts", "top_k", "normalize", "intermediate_size", "value_f", "bogus"};
  static constexpr int kNumAttrNames = sizeof(kAttrNames) / sizeof(kAttrNames[0]);
  static constexpr const char* kBindingNames[] = {"input_ids", "position_ids", "batch_index", "logits"};

  int Pick(int n) { return n <= 0 ? 0 : static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  // Wrapping arithmetic: the edit itself must not overflow.
  static int64_t Wrap(uint64_t u) { return static_cast<int64_t>(u); }
  int64_t Interesting(int64_t v) {
    const uint64_t u = static_cast<uint64_t>(v);
    switch (Pick(12)) {
      case 0: return Wrap(u + 1);
      case 1: return Wrap(u - 1);
      case 2: return 0;
      case 3: return -1;
      case 4: return Wrap(u * 2);
      case 5: return v / 2;
      case 6: return 1;
      case 7: return int64_t{1} << (30 + Pick(30));
      case 8: return static_cast<int64_t>(rng_());
      case 9: return Wrap(u + 64);
      case 10: return Wrap(u - 64);
      default: return Pick(70000) - 2;
    }
  }

  float InterestingFloat(float f) {
    switch (Pick(8)) {
      case 0: return 0.0f;
      case 1: return -f;
      case 2: return f * 2;
      case 3: return std::numeric_limits<float>::quiet_NaN();
      case 4: return std::numeric_limits<float>::infinity();
      case 5: return 1e30f;
      case 6: return -1e-3f;
      default: return f + 1.0f;
    }
  }

  void AddAttr(qeff::v1::Op& op) {
    auto* a = op.add_attrs();
    a->set_name(kAttrNames[Pick(kNumAttrNames)]);
    a->set_i(Interesting(0));
    if (Pick(2) == 0) a->add_ints(Interesting(1));
  }

  // bytes = numel * element size (saturating), as a consistent edit would leave it.
  static void FixBytes(qeff::v1::TensorInfo& t) {
    static const int64_t kSize[] = {0, 4, 8, 1, 2, 4, 1};
    const int d = static_cast<int>(t.dtype());
    __int128 n = d >= 0 && d < 7 ? kSize[d] : 0;
    for (int64_t x : t.shape()) {
      n *= x;
      if (n > std::numeric_limits<int64_t>::max() || n < std::numeric_limits<int64_t>::min()) n = -1;
    }
    t.set_bytes(static_cast<int64_t>(n));
  }

  std::string MutateProgramFields(qeff::v1::Program& p) {
    switch (Pick(5)) {
      case 0: p.set_num_threads(static_cast<int>(Interesting(p.num_threads()))); return "num_threads";
      case 1: p.set_weights_bytes(Interesting(p.weights_bytes())); return "weights_bytes";
      case 2: p.set_format_version(static_cast<int>(Interesting(p.format_version()))); return "format_version";
      case 3: {
        if (p.states_size() == 0) return "nothing";
        auto& st = *p.mutable_states(Pick(p.states_size()));
        if (Pick(2) == 0 && st.shape_size() > 0) {
          const int d = Pick(st.shape_size());
          st.set_shape(d, Interesting(st.shape(d)));
        } else {
          st.set_dtype(static_cast<qeff::v1::DType>(Pick(8)));
        }
        return "retained state " + st.name();
      }
      default:
        if (p.specializations_size() > 1 && Pick(2) == 0) {
          p.mutable_specializations()->DeleteSubrange(Pick(p.specializations_size()), 1);
          return "dropped a specialization";
        }
        if (p.states_size() > 0) {
          p.mutable_states()->DeleteSubrange(Pick(p.states_size()), 1);
          return "dropped a retained state";
        }
        return "nothing";
    }
  }

  std::mt19937_64 rng_;
};

// Host inputs for one call of a specialization, shaped as its bindings declare: token ids in
// [0, 8), positions `start + s` per row (the KV cache filled before them), batch_index = row,
// anything else zero.
struct HostInputs {
  std::vector<std::vector<uint8_t>> buffers;
  device::NamedInputs named;
};

inline HostInputs MakeInputs(const qeff::v1::ProgramSpecialization& sp, int64_t start) {
  HostInputs h;
  h.buffers.reserve(sp.inputs_size());
  for (const auto& b : sp.inputs()) {
    const auto& t = sp.tensors(b.tensor());
    device::Shape shape(t.shape().begin(), t.shape().end());
    h.buffers.emplace_back(static_cast<size_t>(t.bytes()), 0);
    auto& buf = h.buffers.back();
    if (t.dtype() == qeff::v1::I64) {
      auto* v = reinterpret_cast<int64_t*>(buf.data());
      const int64_t n = static_cast<int64_t>(buf.size() / 8);
      const int64_t cols = shape.size() >= 2 ? shape.back() : 1;
      for (int64_t i = 0; i < n; ++i) {
        if (b.name() == "position_ids") v[i] = start + i % cols;
        else if (b.name() == "batch_index") v[i] = sp.full_batch_size() > 0 ? i % sp.full_batch_size() : 0;
        else v[i] = (i * 7 + start) % 8;
      }
    }
    h.named.emplace_back(b.name(), device::HostTensor{buf.data(), t.dtype(), shape});
  }
  return h;
}

// Runs every specialization once (the prefill-like ones first), each from the positions the
// earlier ones filled. Returns the first error; *finite reports whether every float output of
// every successful run was finite.
inline absl::Status RunEverySpecialization(device::Session& s, bool* finite) {
  *finite = true;
  const auto& P = s.program().proto();
  int64_t pos = 0;
  for (int si = 0; si < P.specializations_size(); ++si) {
    const auto& sp = P.specializations(si);
    HostInputs in = MakeInputs(sp, pos);
    absl::Status st = s.Run(si, in.named);
    if (!st.ok()) return st;
    for (const auto& b : sp.outputs()) {
      auto out = s.Output(b.name());
      if (!out.ok() || out->dtype != qeff::v1::F32) continue;
      const float* f = static_cast<const float*>(out->data);
      for (int64_t i = 0; i < device::NumElements(out->shape); ++i) *finite &= std::isfinite(f[i]);
    }
    pos += sp.seq_len();
  }
  return absl::OkStatus();
}

}  // namespace qeff::testing
