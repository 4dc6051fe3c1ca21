#include "services/compiler/passes.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include "common/util/status_macros.h"
#include "device/cpu/kernels.h"
#include "device/cpu/kernels_linalg.h"
#include "device/cpu/kernels_quant.h"
#include "device/cpu/vector_math.h"
#include "services/compiler/program_writer.h"

namespace qeff::compiler {
namespace {

constexpr int64_t kArenaAlign = 64;  // the runtime's alignment of arena tensors (PlanMemory, slices)

// consumers[v] = live nodes reading value v.
std::vector<std::vector<int>> Consumers(const IrGraph& g) {
  std::vector<std::vector<int>> c(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].dead) continue;
    for (int v : g.nodes[i].in)
      if (v >= 0) c[v].push_back(static_cast<int>(i));
  }
  return c;
}

bool IsGraphOutput(const IrGraph& g, int v) {
  for (const auto& [name, idx] : g.outputs)
    if (idx == v) return true;
  return false;
}

// The live node of `type` producing value v, or null.
const IrNode* LiveProducer(const IrGraph& g, int v, const char* type) {
  const int p = v >= 0 ? g.values[v].producer : -1;
  if (p < 0 || g.nodes[p].dead || g.nodes[p].op.type() != type) return nullptr;
  return &g.nodes[p];
}

// A fused chain's intermediate: read by one node only and not a graph output (the fused op
// does not produce it).
bool PrivateValue(const IrGraph& g, const std::vector<std::vector<int>>& consumers, int v) {
  return v >= 0 && consumers[v].size() == 1 && !IsGraphOutput(g, v);
}

// Packers read the source [K, N] f32 constant. int8 and int4 in kernels_quant.h's panels. int8: symmetric per output, scale = max|w| / 127,
// q = round(w / scale). int4, as llama.cpp's Q4_0: per output and block of 32 inputs, d = (the
// value of largest magnitude) / -8, rounded to bf16 first so the kernel multiplies by exactly the
// scale used here, q = round(w / d) clamped to [-8, 7]. Both are stored with their offset
// (+128, +8); the source [K, N] is read row by row.
PackedWeight PackQuantized(const ConstTensor& w, device::DType dtype) {
  const int64_t K = w.shape[0], N = w.shape[1], P = device::kLinearPanel;
  const int64_t kp = device::QuantPaddedK(K), blocks = device::QuantBlocks(K);
  const bool int4 = dtype == qeff::v1::I4;
  const float* src = reinterpret_cast<const float*>(w.data);
  auto packed = ConstTensor::Allocate(dtype, device::QuantWeightShape(dtype, N, K));
  auto scale = ConstTensor::Allocate(int4 ? qeff::v1::BF16 : qeff::v1::F32, device::QuantScaleShape(dtype, N, K));
  uint8_t* dst = packed->mutable_data();
  std::memset(dst, int4 ? 0x88 : 0x80, device::NumElements(packed->shape));  // padding: weight 0
  const int64_t panel_bytes = int4 ? kp / 8 * P * 4 : kp / 4 * P * 4;
  auto store = [&](int64_t n, int64_t k, int q) {  // q with its offset
    const int64_t j = n % P;
    uint8_t* panel = dst + n / P * panel_bytes;
    if (!int4) {
      panel[k / 4 * P * 4 + 4 * j + k % 4] = static_cast<uint8_t>(q);
      return;
    }
    uint8_t& byte = panel[k / 8 * P * 4 + 4 * j + k % 4];
    byte = k % 8 < 4 ? static_cast<uint8_t>((byte & 0xf0) | q) : static_cast<uint8_t>((byte & 0x0f) | (q << 4));
  };
  std::vector<float> peak(static_cast<size_t>(N)), inv(static_cast<size_t>(N));
  // int8: one block spanning K; int4: blocks of 32.
  const int64_t span = int4 ? device::kQuantBlock : K;
  for (int64_t k0 = 0; k0 < K; k0 += span) {
    const int64_t k1 = std::min(K, k0 + span);
    std::fill(peak.begin(), peak.end(), 0.0f);
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t n = 0; n < N; ++n)
        if (std::fabs(src[k * N + n]) > std::fabs(peak[n])) peak[n] = src[k * N + n];
    for (int64_t n = 0; n < N; ++n) {
      if (int4) {
        const uint16_t d = device::FloatToBf16(peak[n] / -8.0f);
        reinterpret_cast<uint16_t*>(scale->mutable_data())[(n / P * blocks + k0 / device::kQuantBlock) * P + n % P] = d;
        const float df = device::Bf16ToFloat(d);
        inv[n] = df != 0.0f ? 1.0f / df : 0.0f;
      } else {
        const float s = peak[n] != 0.0f ? std::fabs(peak[n]) / 127.0f : 1.0f;
        reinterpret_cast<float*>(scale->mutable_data())[n] = s;
        inv[n] = 1.0f / s;
      }
    }
    const float lo = int4 ? -8.0f : -127.0f, hi = int4 ? 7.0f : 127.0f;
    const int offset = int4 ? 8 : 128;
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t n = 0; n < N; ++n)
        store(n, k, static_cast<int>(std::max(lo, std::min(hi, std::nearbyint(src[k * N + n] * inv[n])))) + offset);
  }
  PackedWeight result;
  result.weight = packed;
  result.scale = scale;
  return result;
}

PackedWeight PackDense(const ConstTensor& w, device::DType dtype);

// Drops a file-backed constant's pages from this process (a later read faults them back in).
void DropPages(const ConstTensor& source) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(source.data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(source.data) + source.bytes()) / page * page;
  if (source.file_backed && end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// Writes a packed weight to weights.bin now and keeps only its offset.
absl::StatusOr<PackedWeight> Store(PackedWeight packed, WeightsWriter& writer) {
  QEFF_ASSIGN_OR_RETURN(const int64_t off, writer.Add(*packed.weight));
  auto stub = std::make_shared<ConstTensor>();
  stub->dtype = packed.weight->dtype;
  stub->shape = packed.weight->shape;
  stub->stored_offset = off;
  packed.weight = stub;
  return packed;
}

// Packs [K, N_i] f32 sources side by side as one [K, sum N_i] weight (one source: itself).
// Every source but the last has N_i % 64 == 0, so each keeps whole panels of its own.
absl::StatusOr<PackedWeight> PackWeight(const std::vector<const ConstTensor*>& parts, device::DType dtype,
                                        WeightCache& cache) {
  WeightCache::Key key{{}, static_cast<int>(dtype)};
  for (const ConstTensor* p : parts) key.first.push_back(p->data);
  auto it = cache.packed.find(key);
  if (it != cache.packed.end()) return it->second;
  const ConstTensor* source = parts[0];
  std::shared_ptr<ConstTensor> joined;
  if (parts.size() > 1) {
    const int64_t K = parts[0]->shape[0];
    int64_t N = 0;
    for (const ConstTensor* p : parts) N += p->shape[1];
    joined = ConstTensor::Allocate(qeff::v1::F32, {K, N});
    float* dst = reinterpret_cast<float*>(joined->mutable_data());
    for (int64_t k = 0; k < K; ++k) {
      for (const ConstTensor* p : parts) {
        const int64_t n = p->shape[1];
        std::memcpy(dst, reinterpret_cast<const float*>(p->data) + k * n, static_cast<size_t>(n) * sizeof(float));
        dst += n;
      }
    }
    source = joined.get();
  }
  PackedWeight packed = dtype == qeff::v1::I4 || dtype == qeff::v1::I8 ? PackQuantized(*source, dtype)
                                                                        : PackDense(*source, dtype);
  if (cache.writer != nullptr) {
    QEFF_ASSIGN_OR_RETURN(packed, Store(std::move(packed), *cache.writer));
    for (const ConstTensor* p : parts) DropPages(*p);
  }
  cache.packed[key] = packed;
  return packed;
}

// fp32 / bf16 panels (device/cpu/kernels_linalg.h): panel p, row k = source row k's columns
// 64p .. 64p+63, so packing is a sequential copy.
PackedWeight PackDense(const ConstTensor& w, device::DType dtype) {
  const int64_t K = w.shape[0], N = w.shape[1];
  const float* src = reinterpret_cast<const float*>(w.data);
  const int64_t P = device::kLinearPanel, panels = device::LinearPanels(N);
  auto p = ConstTensor::Allocate(dtype, {panels, K, P});
  for (int64_t pi = 0; pi < panels; ++pi) {
    const int64_t c0 = pi * P, cols = std::min(P, N - c0);
    for (int64_t k = 0; k < K; ++k) {
      const float* row = src + k * N + c0;
      const int64_t at = (pi * K + k) * P;
      if (dtype == qeff::v1::BF16) {
        uint16_t* d = reinterpret_cast<uint16_t*>(p->mutable_data()) + at;
        for (int64_t j = 0; j < P; ++j) d[j] = j < cols ? device::FloatToBf16(row[j]) : 0;
      } else {
        float* d = reinterpret_cast<float*>(p->mutable_data()) + at;
        for (int64_t j = 0; j < P; ++j) d[j] = j < cols ? row[j] : 0.0f;
      }
    }
  }
  PackedWeight packed;
  packed.weight = p;
  return packed;
}

// A constant holding 0, 1, ..., C-1: a read of every cache slot in order.
bool IsSlotRange(const IrValue& idx, int64_t C) {
  if (!idx.constant || device::NumElements(idx.shape) != C) return false;
  if (idx.dtype != qeff::v1::I64 && idx.dtype != qeff::v1::I32) return false;
  for (int64_t i = 0; i < C; ++i) {
    const int64_t v = idx.dtype == qeff::v1::I32 ? reinterpret_cast<const int32_t*>(idx.constant->data)[i]
                                                 : reinterpret_cast<const int64_t*>(idx.constant->data)[i];
    if (v != i) return false;
  }
  return true;
}

}  // namespace

namespace {

// Adds a packed weight (and its int8 scale) as graph values: {weight value, scale value or -1}.
// `name` by value: callers pass a value's name, and adding values may move it.
std::pair<int, int> AddPacked(IrGraph& g, std::string name, const PackedWeight& pw) {
  IrValue packed;
  packed.name = name + ".packed_" + device::DTypeName(pw.weight->dtype);
  packed.constant = pw.weight;
  packed.dtype = packed.constant->dtype;
  packed.shape = packed.constant->shape;
  const int pv = g.AddValue(packed);
  int sv = -1;
  if (pw.scale) {
    IrValue sc;
    sc.name = name + ".scale";
    sc.constant = pw.scale;
    sc.dtype = sc.constant->dtype;
    sc.shape = sc.constant->shape;
    sv = g.AddValue(sc);
  }
  return {pv, sv};
}

}  // namespace

absl::Status PackExperts(IrGraph& g, WeightCache& cache) {
  for (IrNode& n : g.nodes) {
    if (n.dead || n.op.type() != "SparseMoE") continue;
    device::SetAttrInt(n.op, "intermediate_size", g.values[n.in[2]].shape[1]);  // gate [H, I]
    std::vector<int> scales;
    for (size_t i = 1; i < n.in.size(); ++i) {
      const IrValue& w = g.values[n.in[i]];
      // The router stays float32: quantizing it could change which experts are chosen.
      const device::DType dtype = i == 1 ? qeff::v1::F32 : cache.weight_dtype;
      QEFF_ASSIGN_OR_RETURN(const PackedWeight pw, PackWeight({w.constant.get()}, dtype, cache));
      const auto [pv, sv] = AddPacked(g, g.values[n.in[i]].name, pw);
      n.in[i] = pv;
      if (sv >= 0) scales.push_back(sv);
    }
    n.in.insert(n.in.end(), scales.begin(), scales.end());
  }
  return absl::OkStatus();
}

bool IsView(const IrGraph& g, const IrNode& n) {
  if (n.in.empty() || n.in[0] < 0 || n.out.empty()) return false;
  if (n.op.type() == "Reshape") return g.Root(n.out[0]) == g.Root(n.in[0]);
  if (n.op.type() != "Split") return false;
  for (int o : n.out)
    if (g.values[o].alias_of != n.in[0]) return false;
  return true;
}

namespace {

// A MatMul by a constant [K, N] f32 weight, and the bias Add FuseLinear folds into it: the Add's
// only input is the MatMul's result, its other input a constant of N values along the last axis.
struct LinearCandidate {
  int node = -1;
  int64_t N = 0;
  int bias = -1;      // the bias constant, or -1
  int bias_add = -1;  // the Add node it comes from, or -1
  int out = -1;       // what the Linear produces: the Add's result when the bias is folded
};

bool FindCandidate(const IrGraph& g, const std::vector<std::vector<int>>& consumers, int i, LinearCandidate* c) {
  const IrNode& n = g.nodes[i];
  if (n.dead || n.op.type() != "MatMul") return false;
  const IrValue& w = g.values[n.in[1]];
  if (!w.constant || w.shape.size() != 2 || w.dtype != qeff::v1::F32) return false;
  c->node = i;
  c->N = w.shape[1];
  c->out = n.out[0];
  const int out = n.out[0];
  if (consumers[out].size() != 1 || IsGraphOutput(g, out)) return true;
  const IrNode& add = g.nodes[consumers[out][0]];
  if (add.op.type() != "Add") return true;
  const int other = add.in[0] == out ? add.in[1] : add.in[0];
  const IrValue& b = g.values[other];
  if (!b.constant || b.dtype != qeff::v1::F32 || device::NumElements(b.shape) != c->N || b.shape.empty() ||
      b.shape.back() != c->N || g.values[add.out[0]].shape != g.values[out].shape) {
    return true;
  }
  c->bias = other;
  c->bias_add = consumers[out][0];
  c->out = add.out[0];
  return true;
}

// Of the candidates reading one input, those that become one Linear: all with a bias or all
// without (as the first), the ones with whole panels (N % 64 == 0) first and at most one other
// last, so each keeps its own panels in the joined weight. Fewer than two: none.
std::vector<LinearCandidate> Siblings(const std::vector<LinearCandidate>& readers) {
  std::vector<LinearCandidate> whole, partial;
  for (const LinearCandidate& c : readers) {
    if ((c.bias >= 0) != (readers[0].bias >= 0)) continue;
    if (c.N % device::kLinearPanel == 0) whole.push_back(c);
    else if (partial.empty()) partial.push_back(c);
  }
  whole.insert(whole.end(), partial.begin(), partial.end());
  if (whole.size() < 2) whole.clear();
  return whole;
}

}  // namespace

absl::Status FuseLinear(IrGraph& g, WeightCache& cache) {
  const auto consumers = Consumers(g);
  // Candidates by the value they read, in node order.
  std::map<int, std::vector<LinearCandidate>> by_input;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    LinearCandidate c;
    if (FindCandidate(g, consumers, static_cast<int>(i), &c)) by_input[g.nodes[i].in[0]].push_back(c);
  }
  // MatMul node `at` -> Linear over the parts' weights side by side, their biases folded.
  auto to_linear = [&](int at, const std::vector<LinearCandidate>& parts) -> absl::Status {
    std::vector<const ConstTensor*> sources;
    int64_t N = 0;
    for (const LinearCandidate& c : parts) {
      sources.push_back(g.values[g.nodes[c.node].in[1]].constant.get());
      N += c.N;
    }
    QEFF_ASSIGN_OR_RETURN(const PackedWeight pw, PackWeight(sources, cache.weight_dtype, cache));
    const auto [pv, sv] = AddPacked(g, g.values[g.nodes[at].in[1]].name, pw);
    IrNode& n = g.nodes[at];
    n.op.set_type("Linear");
    device::SetAttrInt(n.op, "out_features", N);
    n.in[1] = pv;
    // Inputs: x, w, bias (-1: none), scale (int8 and int4 only).
    n.in.push_back(-1);
    if (sv >= 0) n.in.push_back(sv);
    if (parts[0].bias < 0) return absl::OkStatus();
    if (parts.size() == 1) {
      n.in[2] = parts[0].bias;
    } else {
      auto joined = ConstTensor::Allocate(qeff::v1::F32, {N});
      uint8_t* dst = joined->mutable_data();
      for (const LinearCandidate& c : parts) {
        const ConstTensor& b = *g.values[c.bias].constant;
        std::memcpy(dst, b.data, b.bytes());
        dst += b.bytes();
      }
      IrValue bias;
      bias.name = g.values[parts[0].bias].name + ".joined";
      bias.dtype = qeff::v1::F32;
      bias.shape = {N};
      bias.constant = joined;
      n.in[2] = g.AddValue(std::move(bias));
    }
    for (const LinearCandidate& c : parts) g.nodes[c.bias_add].dead = true;
    return absl::OkStatus();
  };
  std::map<int, IrNode> split_after;  // node index -> the Split that follows it
  for (auto& [x, readers] : by_input) {
    // Linears reading one input run as one over their joined weights (q, k, v; gate, up): one
    // pass over the input and one parallel region instead of several short ones, then a Split.
    const std::vector<LinearCandidate> siblings = Siblings(readers);
    for (const LinearCandidate& c : readers) {
      if (std::none_of(siblings.begin(), siblings.end(), [&](const LinearCandidate& s) { return s.node == c.node; })) {
        QEFF_RETURN_IF_ERROR(to_linear(c.node, {c}));
        g.nodes[c.node].out[0] = c.out;
        g.values[c.out].producer = c.node;
      }
    }
    if (siblings.empty()) continue;
    // The Linear takes the earliest sibling's place: every reader of any part comes after it.
    int first = siblings[0].node;
    for (const LinearCandidate& c : siblings) first = std::min(first, c.node);
    QEFF_RETURN_IF_ERROR(to_linear(first, siblings));
    IrNode& n = g.nodes[first];
    IrValue joined;
    joined.name = g.values[n.out[0]].name + ".joined";
    joined.dtype = qeff::v1::F32;
    joined.shape = g.values[n.out[0]].shape;
    joined.shape.back() = device::AttrInt(n.op, "out_features", 0);
    n.out[0] = g.AddValue(std::move(joined));
    IrNode split;
    split.op.set_type("Split");
    device::SetAttrInt(split.op, "axis", static_cast<int64_t>(g.values[n.out[0]].shape.size()) - 1);
    split.in = {n.out[0]};
    for (const LinearCandidate& c : siblings) {
      split.out.push_back(c.out);
      if (c.node != first) g.nodes[c.node].dead = true;
    }
    split_after[first] = std::move(split);
  }
  if (split_after.empty()) return absl::OkStatus();
  // Insert each Split after its Linear and renumber the producers.
  std::vector<IrNode> nodes;
  nodes.reserve(g.nodes.size() + split_after.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    nodes.push_back(std::move(g.nodes[i]));
    auto it = split_after.find(static_cast<int>(i));
    if (it != split_after.end()) nodes.push_back(std::move(it->second));
  }
  g.nodes = std::move(nodes);
  for (bool live : {false, true}) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (g.nodes[i].dead != live) continue;
      for (int v : g.nodes[i].out) g.values[v].producer = static_cast<int>(i);
    }
  }
  return absl::OkStatus();
}

namespace {

// Matches one attention block of the exporter's CachedAttention (services/exporter/blocks.cc):
//   k_all = CtxGather(k_cache, 0..C-1) | CtxGatherCB(k_cache, batch_index, 0..C-1)   (v alike)
//   s = MatMul(q_rows, Transpose(k_all, 0,1,3,2))      q_rows = q, or q viewed [B,Hkv,G·S,D]
//   s = views / Div c / Mul c / Tanh ...                [B,Hq,S,C] at the end
//   p = Softmax(Where(mask, fill, s), axis 3)
//   o = views of MatMul(views of p, v_all)               [B,Hq,S,D] at the end
class AttentionMatcher {
 public:
  explicit AttentionMatcher(IrGraph& g) : g_(g), consumers_(Consumers(g)) {}

  // Replaces the block ending in Softmax node `si`; false (graph untouched) if it is not one.
  bool Fuse(int si) {
    chain_.clear();
    steps_.clear();
    const IrNode& sm = g_.nodes[si];
    const int masked = sm.in[0];
    const device::Shape ws = g_.values[masked].shape;  // [B,Hq,S,C]
    if (ws.size() != 4 || device::AttrInt(sm.op, "axis", -1) != 3 || g_.values[masked].dtype != qeff::v1::F32) {
      return false;
    }
    const int64_t B = ws[0], Hq = ws[1], S = ws[2], C = ws[3];
    const int wi = Producer(masked);
    if (wi < 0 || g_.nodes[wi].op.type() != "Where" || !OnlyUse(masked, si)) return false;
    const IrNode& where = g_.nodes[wi];
    const int mask = where.in[0];
    float fill;
    // Skipping masked keys equals the graph's softmax only when exp(fill - max) is exactly 0.
    if (!ScalarF32(where.in[1], &fill) || !(fill <= -1e9f)) return false;
    const device::Shape& ms = g_.values[mask].shape;
    if (g_.values[mask].dtype != qeff::v1::BOOL || ms.size() != 4 || (ms[0] != 1 && ms[0] != B) || ms[1] != 1 ||
        (ms[2] != 1 && ms[2] != S) || ms[3] != C || g_.values[where.in[2]].shape != ws) {
      return false;
    }
    chain_ = {wi, si};

    // Scores, backwards from the Where to the q·kᵀ MatMul.
    int x = where.in[2], user = wi, mm = -1;
    while (mm < 0) {
      const int p = Producer(x);
      if (p < 0 || !OnlyUse(x, user) || g_.values[x].dtype != qeff::v1::F32) return false;
      const IrNode& n = g_.nodes[p];
      const std::string& t = n.op.type();
      float c;
      int next;
      if (t == "MatMul") {
        mm = p;
        next = x;
      } else if (IsView(g_, n)) {
        next = n.in[0];
      } else if (t == "Div" && ScalarF32(n.in[1], &c)) {
        steps_.push_back({device::ScoreOp::kDiv, c});
        next = n.in[0];
      } else if (t == "Mul" && ScalarF32(n.in[1], &c)) {
        steps_.push_back({device::ScoreOp::kMul, c});
        next = n.in[0];
      } else if (t == "Mul" && ScalarF32(n.in[0], &c)) {
        steps_.push_back({device::ScoreOp::kMul, c});
        next = n.in[1];
      } else if (t == "Tanh") {
        steps_.push_back({device::ScoreOp::kTanh, 0.0f});
        next = n.in[0];
      } else {
        return false;
      }
      // Elementwise steps must not broadcast the scores to a new shape.
      if (!IsView(g_, n) && t != "MatMul" && g_.values[next].shape != g_.values[x].shape) return false;
      chain_.push_back(p);
      user = p;
      x = next;
    }
    std::reverse(steps_.begin(), steps_.end());
    const IrNode& qk = g_.nodes[mm];
    int k_all = qk.in[1];
    if (device::AttrInt(qk.op, "trans_b", 0) == 0) {
      const int tp = Producer(k_all);
      if (tp < 0 || g_.nodes[tp].op.type() != "Transpose" ||
          device::AttrInts(g_.nodes[tp].op, "perm") != std::vector<int64_t>{0, 1, 3, 2}) {
        return false;
      }
      k_all = g_.nodes[tp].in[0];
    }
    CacheRead kr, vr;
    if (!FullCacheRead(k_all, &kr)) return false;
    const device::Shape& kall = g_.values[k_all].shape;  // [B,Hkv,C,D]
    if (kall[0] != B || kall[2] != C || kall[1] <= 0 || Hq % kall[1] != 0) return false;
    const int64_t Hkv = kall[1], D = kall[3], G = Hq / Hkv;
    const device::Shape folded_q = {B, Hkv, G * S, D}, q_shape = {B, Hq, S, D};
    if (g_.values[qk.in[0]].shape != folded_q || g_.values[qk.out[0]].shape != device::Shape{B, Hkv, G * S, C}) {
      return false;
    }
    // q itself: the folded rows are a row-major view of [B,Hq,S,D].
    int q = qk.in[0];
    while (g_.values[q].shape != q_shape) {
      const int p = Producer(q);
      if (p < 0 || !IsView(g_, g_.nodes[p])) return false;
      q = g_.nodes[p].in[0];
    }
    if (g_.values[q].dtype != qeff::v1::F32) return false;

    // Probabilities, forwards through views to probs·v and on to [B,Hq,S,D].
    int y = sm.out[0], pv = -1;
    while (pv < 0) {
      if (consumers_[y].size() != 1 || IsGraphOutput(g_, y)) return false;
      const int c = consumers_[y][0];
      const IrNode& n = g_.nodes[c];
      if (n.op.type() == "MatMul" && n.in[0] == y && n.in[1] != y && device::AttrInt(n.op, "trans_b", 0) == 0) {
        pv = c;
      } else if (IsView(g_, n)) {
        y = n.out[0];
      } else {
        return false;
      }
      chain_.push_back(c);
    }
    const IrNode& pvn = g_.nodes[pv];
    if (!FullCacheRead(pvn.in[1], &vr) || vr.batch_index != kr.batch_index ||
        g_.values[vr.cache].shape != g_.values[kr.cache].shape || g_.values[pvn.in[1]].shape != kall ||
        g_.values[pvn.in[0]].shape != device::Shape{B, Hkv, G * S, C}) {
      return false;
    }
    int out = pvn.out[0];
    while (g_.values[out].shape != q_shape) {
      if (consumers_[out].size() != 1 || IsGraphOutput(g_, out)) return false;
      const int c = consumers_[out][0];
      if (!IsView(g_, g_.nodes[c])) return false;
      chain_.push_back(c);
      out = g_.nodes[c].out[0];
    }

    // The fused op takes the slot of the block's last node, after every input is computed.
    int last = -1;
    for (int n : chain_) {
      last = std::max(last, n);
      g_.nodes[n].dead = true;
    }
    IrNode fused;
    fused.op.set_type("CachedAttention");
    device::SetAttrInt(fused.op, "groups", G);
    std::vector<int64_t> codes, args;
    for (const auto& st : steps_) {
      codes.push_back(static_cast<int64_t>(st.op));
      args.push_back(device::ScoreArgBits(st.c));
    }
    device::SetAttrInts(fused.op, "score_ops", codes);
    device::SetAttrInts(fused.op, "score_args", args);
    device::SetAttrFloat(fused.op, "mask_value", fill);
    fused.in = {q, kr.cache, vr.cache, mask, kr.batch_index};
    fused.out = {out};
    g_.nodes[last] = fused;
    g_.values[out].producer = last;
    g_.values[out].alias_of = -1;  // was a view of the MatMul's result
    consumers_ = Consumers(g_);
    return true;
  }

 private:
  struct Step {
    device::ScoreOp op;
    float c;
  };
  struct CacheRead {
    int cache = -1;
    int batch_index = -1;
  };

  int Producer(int v) const {
    const int p = g_.values[v].producer;
    return p >= 0 && !g_.nodes[p].dead ? p : -1;
  }
  // `node` is the only reader of v, and the host does not read it either.
  bool OnlyUse(int v, int node) const {
    return consumers_[v].size() == 1 && consumers_[v][0] == node && !IsGraphOutput(g_, v);
  }
  bool ScalarF32(int v, float* out) const {
    const IrValue& c = g_.values[v];
    if (!c.constant || c.dtype != qeff::v1::F32 || device::NumElements(c.shape) != 1 || c.shape.size() > 4) {
      return false;
    }
    std::memcpy(out, c.constant->data, sizeof(float));
    return true;
  }
  // v = every slot of a float32 or bf16 cache [Bc,H,C,D] in order, rows b (CtxGather) or
  // batch_index[b]; CachedAttention reads either type in place.
  bool FullCacheRead(int v, CacheRead* r) const {
    const int p = Producer(v);
    if (p < 0) return false;
    const IrNode& n = g_.nodes[p];
    const bool cb = n.op.type() == "CtxGatherCB";
    if (n.op.type() != "CtxGather" && !cb) return false;
    if (n.in.size() != (cb ? 3u : 2u)) return false;
    const IrValue& cache = g_.values[n.in[0]];
    const IrValue& out = g_.values[v];
    if ((cache.dtype != qeff::v1::F32 && cache.dtype != qeff::v1::BF16) || cache.shape.size() != 4 || out.shape.size() != 4 ||
        !IsSlotRange(g_.values[n.in[cb ? 2 : 1]], cache.shape[2]) || out.shape[1] != cache.shape[1] ||
        out.shape[2] != cache.shape[2] || out.shape[3] != cache.shape[3] || (!cb && out.shape[0] != cache.shape[0])) {
      return false;
    }
    r->cache = n.in[0];
    r->batch_index = cb ? n.in[1] : -1;
    return true;
  }

  IrGraph& g_;
  std::vector<std::vector<int>> consumers_;
  std::vector<int> chain_;
  std::vector<Step> steps_;
};

}  // namespace

void FuseAttention(IrGraph& g) {
  AttentionMatcher m(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!g.nodes[i].dead && g.nodes[i].op.type() == "Softmax") m.Fuse(static_cast<int>(i));
  }
}

void FuseTransposedB(IrGraph& g) {
  auto consumers = Consumers(g);
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "MatMul") continue;
    const int b = n.in[1];
    const IrNode* transpose = LiveProducer(g, b, "Transpose");
    if (transpose == nullptr || !PrivateValue(g, consumers, b)) continue;
    const auto perm = device::AttrInts(transpose->op, "perm");
    const size_t r = perm.size();
    if (r < 2) continue;
    bool swap_last = perm[r - 1] == static_cast<int64_t>(r - 2) && perm[r - 2] == static_cast<int64_t>(r - 1);
    for (size_t d = 0; d + 2 < r; ++d) swap_last &= perm[d] == static_cast<int64_t>(d);
    if (!swap_last) continue;
    n.in[1] = transpose->in[0];
    device::SetAttrInt(n.op, "trans_b", 1);
  }
}

namespace {

// The value of a one-element f32 constant.
bool ScalarConstant(const IrGraph& g, int v, float* value) {
  const IrValue& c = g.values[v];
  if (!c.constant || c.constant->data == nullptr || c.dtype != qeff::v1::F32 || device::NumElements(c.shape) != 1) {
    return false;
  }
  std::memcpy(value, c.constant->data, sizeof(float));
  return true;
}

// Matches the live node producing value v: `type` with one scalar constant equal to `c` among
// its two inputs; returns the other input, or -1.
int OtherThanConstant(const IrGraph& g, int v, const char* type, float c) {
  const IrNode* p = LiveProducer(g, v, type);
  if (p == nullptr || p->in.size() != 2) return -1;
  for (int i = 0; i < 2; ++i) {
    float value;
    if (ScalarConstant(g, p->in[i], &value) && value == c) return p->in[1 - i];
  }
  return -1;
}

}  // namespace

void FuseGeluTanh(IrGraph& g) {
  auto consumers = Consumers(g);
  auto private_value = [&](int v) { return PrivateValue(g, consumers, v); };
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "Mul" || n.in.size() != 2) continue;
    for (int order = 0; order < 2; ++order) {
      const int half = n.in[order], one_plus = n.in[1 - order];
      if (!private_value(half) || !private_value(one_plus)) continue;
      const int x = OtherThanConstant(g, half, "Mul", 0.5f);
      const int t = OtherThanConstant(g, one_plus, "Add", 1.0f);
      if (x < 0 || !private_value(t)) continue;
      const IrNode* tanh_op = LiveProducer(g, t, "Tanh");
      if (tanh_op == nullptr) continue;
      const int arg = tanh_op->in[0];
      if (!private_value(arg)) continue;
      const int inner = OtherThanConstant(g, arg, "Mul", device::kGeluSqrt2OverPi);
      if (!private_value(inner)) continue;
      const IrNode* add_op = LiveProducer(g, inner, "Add");
      if (add_op == nullptr || add_op->in.size() != 2) continue;
      const int scaled = add_op->in[0] == x ? add_op->in[1] : add_op->in[1] == x ? add_op->in[0] : -1;
      if (!private_value(scaled)) continue;
      const int cube = OtherThanConstant(g, scaled, "Mul", device::kGeluCubeCoeff);
      if (!private_value(cube)) continue;
      const IrNode* cube_op = LiveProducer(g, cube, "Pow");
      float exponent;
      if (cube_op == nullptr || cube_op->in[0] != x || !ScalarConstant(g, cube_op->in[1], &exponent) || exponent != 3.0f) {
        continue;
      }
      if (g.values[x].dtype != qeff::v1::F32 || g.values[n.out[0]].shape != g.values[x].shape) continue;
      // The chain's other nodes lose their only reader; EliminateDeadCode drops them.
      n.op.Clear();
      n.op.set_type("GeluTanh");
      n.in = {x};
      break;
    }
  }
}

void FuseSiluMul(IrGraph& g) {
  auto consumers = Consumers(g);
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "Mul" || n.in.size() != 2) continue;
    for (int order = 0; order < 2; ++order) {
      const int silu = n.in[order], up = n.in[1 - order];
      if (!PrivateValue(g, consumers, silu)) continue;
      const IrNode* silu_op = LiveProducer(g, silu, "Mul");
      if (silu_op == nullptr || silu_op->in.size() != 2) continue;
      int x = -1;
      for (int k = 0; k < 2 && x < 0; ++k) {
        const int s = silu_op->in[1 - k];
        const IrNode* sigmoid = LiveProducer(g, s, "Sigmoid");
        if (sigmoid != nullptr && sigmoid->in[0] == silu_op->in[k] && PrivateValue(g, consumers, s)) x = silu_op->in[k];
      }
      if (x < 0 || up < 0) continue;
      // Same shapes, no broadcast: the fused loop walks x, up and the output together.
      const IrValue &xv = g.values[x], &uv = g.values[up], &ov = g.values[n.out[0]];
      if (xv.dtype != qeff::v1::F32 || uv.dtype != qeff::v1::F32 || xv.shape != uv.shape || ov.shape != xv.shape) continue;
      // The Sigmoid and the inner Mul lose their only reader; EliminateDeadCode drops them.
      n.op.Clear();
      n.op.set_type("SiluMul");
      n.in = {x, up};
      break;
    }
  }
}

void FuseRotaryHalf(IrGraph& g) {
  auto consumers = Consumers(g);
  auto private_value = [&](int v) { return PrivateValue(g, consumers, v); };
  auto f32 = [&](int v) { return g.values[v].dtype == qeff::v1::F32; };
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "Add" || n.in.size() != 2) continue;
    bool fused = false;
    for (int order = 0; order < 2 && !fused; ++order) {
      const int a = n.in[order], b = n.in[1 - order];
      const IrNode* xcos = LiveProducer(g, a, "Mul");
      const IrNode* rsin = LiveProducer(g, b, "Mul");
      if (!private_value(a) || !private_value(b) || !xcos || !rsin || xcos->in.size() != 2 || rsin->in.size() != 2) {
        continue;
      }
      for (int ob = 0; ob < 2; ++ob) {
        const int rot = rsin->in[ob], sin = rsin->in[1 - ob];
        const IrNode* cat = LiveProducer(g, rot, "Concat");
        if (!private_value(rot) || !cat || cat->in.size() != 2) continue;
        const IrNode* neg = LiveProducer(g, cat->in[0], "Neg");
        if (!private_value(cat->in[0]) || !neg) continue;
        const int lo = cat->in[1], hi = neg->in[0];
        const IrNode* split = LiveProducer(g, lo, "Split");
        if (!split || split != LiveProducer(g, hi, "Split") || split->out.size() != 2 || split->out[0] != lo ||
            split->out[1] != hi || !private_value(lo) || !private_value(hi)) {
          continue;
        }
        const int x = split->in[0];
        const device::Shape& xs = g.values[x].shape;
        if (xs.size() != 4 || xs[3] % 2 != 0 || g.values[lo].shape[3] != xs[3] / 2 ||
            device::AttrInt(split->op, "axis", -1) != 3 || device::AttrInt(cat->op, "axis", -1) != 3) {
          continue;
        }
        const int cos = xcos->in[0] == x ? xcos->in[1] : xcos->in[1] == x ? xcos->in[0] : -1;
        if (cos < 0 || !f32(x) || !f32(cos) || !f32(sin) || g.values[n.out[0]].shape != xs) continue;
        bool broadcast = true;
        for (int t : {cos, sin}) {
          const device::Shape& ts = g.values[t].shape;
          broadcast &= ts.size() == 4 && ts[3] == xs[3];
          for (size_t d = 0; broadcast && d < 3; ++d) broadcast = ts[d] == xs[d] || ts[d] == 1;
        }
        if (!broadcast) continue;
        // The chain's other nodes lose their only reader; EliminateDeadCode drops them.
        n.op.Clear();
        n.op.set_type("RotaryHalf");
        n.in = {x, cos, sin};
        fused = true;
        break;
      }
    }
  }
}

void ElideFullGather(IrGraph& g) {
  // Only CtxGather: CtxGatherCB picks cache rows by batch_index, known at run time only.
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "CtxGather") continue;
    const IrValue& data = g.values[n.in[0]];
    if (data.shape.size() != 4 || !IsSlotRange(g.values[n.in[1]], data.shape[2])) continue;
    if (data.dtype != g.values[n.out[0]].dtype) continue;  // a bf16 cache is widened, not viewed
    n.op.Clear();
    n.op.set_type("Reshape");
    n.in = {n.in[0]};
    g.values[n.out[0]].alias_of = n.in[0];
  }
}

void SplitAsViews(IrGraph& g) {
  for (auto& n : g.nodes) {
    if (n.dead || n.op.type() != "Split" || n.in.empty() || n.in[0] < 0) continue;
    const int in = n.in[0];
    const IrValue& root = g.values[g.Root(in)];
    // Only bytes an op writes in the arena: constants are folded, a retained-state buffer is
    // not sliced, and the host writes its inputs whole (the loader checks what ops write).
    if (root.constant || root.state >= 0 || root.host_input) continue;
    const device::Shape& shape = g.values[in].shape;
    const int64_t axis = device::AttrInt(n.op, "axis", -1);
    if (axis < 0 || axis >= static_cast<int64_t>(shape.size())) continue;
    // The parts are contiguous when every axis before the split one has size 1.
    bool contiguous = true;
    for (int64_t d = 0; d < axis; ++d) contiguous &= shape[d] == 1;
    if (!contiguous) continue;
    std::vector<int64_t> offsets;
    int64_t off = 0;
    bool aligned = true;
    for (int o : n.out) {
      const IrValue& part = g.values[o];
      aligned &= off % kArenaAlign == 0 && part.dtype == g.values[in].dtype && part.alias_of < 0;
      offsets.push_back(off);
      off += static_cast<int64_t>(part.bytes());
    }
    if (!aligned || off != static_cast<int64_t>(g.values[in].bytes())) continue;
    for (size_t i = 0; i < n.out.size(); ++i) {
      g.values[n.out[i]].alias_of = in;
      g.values[n.out[i]].alias_offset = offsets[i];
    }
  }
}

void RetainState(IrGraph& g) {
  auto consumers = Consumers(g);
  for (const auto& st : g.states) {
    int out = -1;
    for (const auto& [name, v] : g.outputs)
      if (name == st.output_name) out = v;
    if (out < 0) continue;
    if (g.Root(out) == g.Root(st.value)) continue;  // passed through unchanged
    const int r = g.Root(out);
    const int p = g.values[r].producer;
    bool in_place = false;
    const std::string& pt = p >= 0 ? g.nodes[p].op.type() : std::string();
    if ((pt == "CtxScatter" || pt == "CtxScatterCB") && g.Root(g.nodes[p].in[0]) == st.value &&
        g.values[r].alias_of < 0) {
      // Safe when every other reader of the old state runs before the scatter.
      in_place = true;
      for (size_t v = 0; v < g.values.size() && in_place; ++v) {
        if (g.Root(static_cast<int>(v)) != st.value) continue;
        for (int c : consumers[v]) {
          if (c != p && c > p && !IsView(g, g.nodes[c])) in_place = false;
        }
      }
    }
    if (in_place) {
      g.values[r].alias_of = st.value;
      continue;
    }
    // Copy the new state into the buffer after everything else has run.
    IrValue dst;
    dst.name = st.output_name + ":store";
    dst.dtype = st.dtype;
    dst.shape = st.shape;
    dst.alias_of = st.value;
    dst.producer = static_cast<int>(g.nodes.size());
    const int dv = g.AddValue(dst);
    IrNode copy;
    copy.op.set_type("Copy");
    copy.in = {out};
    copy.out = {dv};
    g.nodes.push_back(copy);
    for (auto& [name, v] : g.outputs)
      if (name == st.output_name) v = dv;
  }
}

void EliminateDeadCode(IrGraph& g) {
  std::vector<bool> live(g.values.size(), false);
  for (const auto& [name, v] : g.outputs) live[v] = true;
  for (int i = static_cast<int>(g.nodes.size()) - 1; i >= 0; --i) {
    IrNode& n = g.nodes[i];
    if (n.dead) continue;
    bool needed = false;
    for (int v : n.out) needed |= live[v];
    // In-place writes into retained state are needed even when their result is not read.
    if (!needed) {
      n.dead = true;
      continue;
    }
    for (int v : n.in)
      if (v >= 0) live[v] = true;
  }
}

MemoryPlan PlanMemory(const IrGraph& g) {
  constexpr int64_t kEnd = std::numeric_limits<int64_t>::max();
  struct Interval {
    int root;
    int64_t start, end, bytes;
  };
  std::map<int, Interval> iv;
  auto touch = [&](int v, int64_t t) {
    const int r = g.Root(v);
    const IrValue& rv = g.values[r];
    if (rv.constant || rv.state >= 0) return;
    auto it = iv.find(r);
    if (it == iv.end()) {
      const int64_t start = rv.host_input ? -1 : (rv.producer >= 0 ? rv.producer : t);
      it = iv.emplace(r, Interval{r, start, t, static_cast<int64_t>(rv.bytes())}).first;
    }
    it->second.start = std::min(it->second.start, t);
    it->second.end = std::max(it->second.end, t);
  };
  for (const auto& [name, v] : g.inputs) touch(v, -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const IrNode& n = g.nodes[i];
    if (n.dead) continue;
    for (int v : n.in)
      if (v >= 0) touch(v, static_cast<int64_t>(i));
    for (int v : n.out) touch(v, static_cast<int64_t>(i));
  }
  for (const auto& [name, v] : g.outputs) touch(v, kEnd);
  // Host inputs live for the whole call (the host writes them before the first op).
  for (const auto& [name, v] : g.inputs) iv[g.Root(v)].start = -1;

  std::vector<Interval> order;
  for (const auto& [r, i] : iv) order.push_back(i);
  std::sort(order.begin(), order.end(), [](const Interval& a, const Interval& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.root < b.root;
  });
  MemoryPlan plan;
  std::vector<std::pair<Interval, int64_t>> placed;
  for (const auto& cur : order) {
    const int64_t size = (std::max<int64_t>(cur.bytes, 1) + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    // Blocks alive at the same time, by offset; take the first gap that fits.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (const auto& [p, off] : placed) {
      if (p.start <= cur.end && cur.start <= p.end) {
        busy.emplace_back(off, off + (std::max<int64_t>(p.bytes, 1) + kArenaAlign - 1) / kArenaAlign * kArenaAlign);
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (const auto& [b, e] : busy) {
      if (off + size <= b) break;
      off = std::max(off, e);
    }
    placed.emplace_back(cur, off);
    plan.arena_offset[cur.root] = off;
    plan.arena_bytes = std::max(plan.arena_bytes, off + size);
  }
  return plan;
}

}  // namespace qeff::compiler
