// IR passes run on every specialization, in this order:
//   FuseLinear         MatMul by a constant [K,N] (+ bias Add) -> Linear with packed weights:
//                      fp32/bf16 in panels of 64 outputs (device/cpu/kernels_linalg.h); int8
//                      with a float scale per output, or int4 with a bf16 scale per output and
//                      block of 32, in VNNI-ordered panels (device/cpu/kernels_quant.h).
//                      MatMuls of one input (q, k, v; gate, up) become one Linear over their
//                      weights side by side, then a Split: one pass over the input, one
//                      parallel region and longer weight streams instead of several short ones
//   PackExperts        SparseMoE's weights packed like Linear's in the weight dtype (the
//                      router stays fp32), int8/int4 scales appended after the experts
//   FuseAttention      attention over the whole retained KV cache (CtxGather[CB] -> q·kᵀ ->
//                      [Reshape] -> Div/Mul by scalars, soft-cap Tanh -> Where(mask, fill) ->
//                      Softmax -> ·v [-> Reshape]) -> one CachedAttention op that reads the
//                      cache in place, only between each row's first and last unmasked key
//   FuseTransposedB    MatMul(a, Transpose(b, swap last two)) -> MatMul(a, b, trans_b)
//   FuseGeluTanh       the exporter's 8-op tanh-GELU chain (Pow, Mul, Add, Mul, Tanh, Add, Mul,
//                      Mul with its exact constants) -> one GeluTanh op: one pass over the
//                      activations instead of eight (a tenth of GPT-2's prefill was this chain)
//   FuseSiluMul        (x · Sigmoid(x)) · up, the SwiGLU MLP's gate -> one SiluMul op: one pass
//                      instead of three, with the chain's arithmetic (same bits)
//   FuseRotaryHalf     the exporter's rotate_half rotary chain (Split, Neg, Concat, x·cos,
//                      rot·sin, Add) over the whole head -> one RotaryHalf op (same arithmetic)
//   ElideFullGather    CtxGather over every cache slot in order -> a view of the cache
//                      (not CtxGatherCB: its rows come from batch_index at run time)
//   RetainState        new KV (CtxScatter / CtxScatterCB) written in place into the
//                      retained-state buffer when safe,
//                      otherwise copied there at the end of the call
//   SplitAsViews       a Split whose outputs are contiguous, 64-byte aligned slices of its input
//                      (decode's one row: the fused qkv / gate_up Linear's parts, GPT-2's
//                      c_attn) -> views at byte offsets into the input: no copy
//   EliminateDeadCode  drops nodes whose results nobody reads
//   PlanMemory         static arena offsets from value lifetimes (views share storage)
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/compiler/ir.h"

namespace qeff::compiler {

class WeightsWriter;  // program_writer.h

// Packed weights shared by all specializations of one compile (keyed by source bytes).
struct PackedWeight {
  ConstPtr weight;  // fp32/bf16 [ceil(N/64), K, 64]; int8/int4 as device/cpu/kernels_quant.h packs them
  ConstPtr scale;   // int8: [N] f32 (per output); int4: bf16 per output and block of 32; else null
};
struct WeightCache {
  device::DType weight_dtype = qeff::v1::F32;  // F32, BF16, I8 or I4 for Linear weights
  // (the sources' bytes, side by side when several Linears were fused; weight dtype)
  using Key = std::pair<std::vector<const uint8_t*>, int>;
  std::map<Key, PackedWeight> packed;
  // When set, each packed weight is written here at once and kept only as its offset
  // (ConstTensor::stored_offset), and the source's pages are dropped from memory: a compile's
  // resident memory stays near one tensor instead of every packed copy plus the whole export.
  WeightsWriter* writer = nullptr;
};

absl::Status FuseLinear(IrGraph& g, WeightCache& cache);
absl::Status PackExperts(IrGraph& g, WeightCache& cache);
void FuseAttention(IrGraph& g);
void FuseTransposedB(IrGraph& g);
void FuseGeluTanh(IrGraph& g);
void FuseSiluMul(IrGraph& g);
void FuseRotaryHalf(IrGraph& g);
void ElideFullGather(IrGraph& g);
void SplitAsViews(IrGraph& g);
void RetainState(IrGraph& g);
void EliminateDeadCode(IrGraph& g);

struct MemoryPlan {
  std::map<int, int64_t> arena_offset;  // root value -> byte offset
  int64_t arena_bytes = 0;
};
MemoryPlan PlanMemory(const IrGraph& g);

// True for nodes that only reinterpret their input's bytes (no kernel call needed).
bool IsView(const IrGraph& g, const IrNode& n);

}  // namespace qeff::compiler
