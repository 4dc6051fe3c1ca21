// QEfficient's custom ops as ONNX local functions: the node keeps the custom domain/op type
// the device compiler recognises, and the FunctionProto body (standard ops only) lets a stock
// ONNX runtime execute it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "services/exporter/graph_builder.h"

namespace qeff::exporter {

inline constexpr char kQualcommDomain[] = "com.qualcomm.cloud";
inline constexpr char kQtiDomain[] = "com.qti.aisw.onnx";
// Ops of our own (no QEfficient counterpart), each with a standard-ONNX function body.
inline constexpr char kQeffDomain[] = "qeff";

// CtxScatter(data[B,H,C,D], position_ids[B,S] int64, updates[B,H,S,D]) -> data with
// data[b,h,pos[b,s],:] = updates[b,h,s,:]; a negative position writes slot C-1 (QEff's non-CB
// padding behaviour, made explicit so it does not rely on ScatterND's negative-index support).
onnx::FunctionProto CtxScatterFunction();
// CtxGather(data[B,H,C,D], ctx_indices[1,1,L] int64) -> [B,H,L,D].
onnx::FunctionProto CtxGatherFunction();
// Continuous batching: the cache has one row per slot (full_batch_size F) and batch row b
// works on slot batch_index[b].
// CtxScatterCB(data[F,H,C,D], batch_index[B,1] int64, position_ids[B,S] int64,
// updates[B,H,S,D]) -> data with data[batch_index[b],h,pos[b,s],:] = updates[b,h,s,:]; a
// negative position writes slot C-1 of its row, as CtxScatter does (QEff's device op skips
// those writes; onnxruntime needs an in-range index, and that slot is masked until written).
onnx::FunctionProto CtxScatterCBFunction();
// CtxGatherCB(data[F,H,C,D], batch_index[B,1] int64, ctx_indices[1,1,L] int64) -> [B,H,L,D]
// with out[b,h,l,:] = data[batch_index[b],h,ctx_indices[l],:].
onnx::FunctionProto CtxGatherCBFunction();
// CustomRMSNorm(hidden_states, weight; epsilon) -> weight * x / sqrt(mean(x^2, -1) + epsilon).
onnx::FunctionProto CustomRMSNormFunction();

// SparseMoE(x [..,H], router [H,E], gate0 [H,I], up0 [H,I], down0 [I,H], gate1, ...;
// num_experts, top_k, normalize) -> [..,H]: p = softmax(x·router), the top_k experts of each
// token weighted by their p (renormalized to sum 1 when `normalize`, as Mixtral; Qwen2-MoE does
// not), each expert down(silu(x·gate)·(x·up)). The body is specific to one expert count and
// top_k, so a model holds one such function (all its MoE layers share them).
onnx::FunctionProto SparseMoEFunction(int64_t num_experts, int64_t top_k, bool normalize);

// Adds `fn` to the model's functions (once per name) and its domain to the opset imports.
void AddFunction(onnx::ModelProto& model, const onnx::FunctionProto& fn);

// Emit the custom-op node (registering its function on first use). Return the output name.
void CtxScatter(GraphBuilder& g, const std::string& data, const std::string& position_ids,
                const std::string& updates, const std::string& output);
std::string CtxGather(GraphBuilder& g, const std::string& data, const std::string& ctx_indices);
void CtxScatterCB(GraphBuilder& g, const std::string& data, const std::string& batch_index,
                  const std::string& position_ids, const std::string& updates, const std::string& output);
std::string CtxGatherCB(GraphBuilder& g, const std::string& data, const std::string& batch_index,
                        const std::string& ctx_indices);
std::string CustomRMSNorm(GraphBuilder& g, const std::string& x, const std::string& weight, float epsilon);
// experts[e] = {gate, up, down} weights in [in, out] layout.
std::string SparseMoE(GraphBuilder& g, const std::string& x, const std::string& router,
                      const std::vector<std::array<std::string, 3>>& experts, int64_t top_k, bool normalize);

}  // namespace qeff::exporter
