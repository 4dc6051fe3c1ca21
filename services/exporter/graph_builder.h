// Small helpers to build an onnx::ModelProto: nodes with unique names, inline constants, and
// weights written as external data into one 64-byte-aligned side file (model.onnx.data), so
// the protobuf stays small whatever the model size.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/util/huge_buffer.h"
#include "common/hf/safetensors.h"

namespace qeff::exporter {

inline constexpr int kOnnxOpset = 17;
inline constexpr int kOnnxIrVersion = 8;  // Debian's onnx 1.12 checker rejects newer IR versions
inline constexpr char kExternalDataName[] = "model.onnx.data";

// One node attribute; build with the helpers below.
using Attr = onnx::AttributeProto;
Attr AttrInt(const std::string& name, int64_t v);
Attr AttrFloat(const std::string& name, float v);
Attr AttrInts(const std::string& name, const std::vector<int64_t>& v);

// A symbolic or fixed dimension of a graph input/output.
struct Dim {
  Dim(int64_t v) : value(v) {}            // NOLINT: implicit for brevity in shape lists
  Dim(int v) : value(v) {}                // NOLINT: keeps a literal 0 from meaning nullptr
  Dim(const char* p) : param(p) {}        // NOLINT
  int64_t value = -1;
  std::string param;
};

class GraphBuilder {
 public:
  // `data_path` is the external data file (created/truncated by Open).
  static absl::StatusOr<GraphBuilder> Open(const std::filesystem::path& data_path, bool fp16_clip);
  GraphBuilder(GraphBuilder&& other) noexcept;
  GraphBuilder& operator=(GraphBuilder&&) = delete;
  GraphBuilder(const GraphBuilder&) = delete;
  ~GraphBuilder();

  onnx::ModelProto& model() { return model_; }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }

  // Adds a node and returns its first output name. Outputs are named `<hint>_<n>` unless
  // `outputs` gives explicit names.
  std::string Node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::vector<Attr>& attrs = {}, const std::string& hint = "",
                   const std::string& domain = "");
  std::vector<std::string> NodeN(const std::string& op, const std::vector<std::string>& inputs, int num_outputs,
                                 const std::vector<Attr>& attrs = {}, const std::string& hint = "",
                                 const std::string& domain = "");
  // A node whose outputs have exactly the given names (graph outputs).
  void NodeNamed(const std::string& op, const std::vector<std::string>& inputs,
                 const std::vector<std::string>& outputs, const std::vector<Attr>& attrs = {},
                 const std::string& domain = "");

  // Small inline constants (initializers with raw data; deduplicated by value).
  std::string ConstI64(const std::vector<int64_t>& values, const std::vector<int64_t>& dims);
  std::string ScalarI64(int64_t v) { return ConstI64({v}, {}); }
  std::string VectorI64(const std::vector<int64_t>& v) { return ConstI64(v, {static_cast<int64_t>(v.size())}); }
  std::string ScalarF32(float v);

  // A float32 weight from a checkpoint tensor (F32/F16/BF16 converted to float32), stored as
  // external data under `name`. Returns `name`. Counts toward num_parameters().
  absl::StatusOr<std::string> Weight(const std::string& name, const hf::TensorView& view);
  // A float buffer of at least n values for building one weight before Weight() writes it (in
  // huge pages, kept and reused across weights: an export converts gigabytes through it). Its
  // contents are valid until the next Scratch() call.
  float* Scratch(int64_t n);

  void Input(const std::string& name, int32_t elem_type, const std::vector<Dim>& dims);
  void Output(const std::string& name, int32_t elem_type, const std::vector<Dim>& dims);

  int64_t num_parameters() const { return num_parameters_; }
  uint64_t external_bytes() const { return offset_; }

  // Flushes and closes the data file and writes the model to `model_path`.
  absl::Status Finish(const std::filesystem::path& model_path);

 private:
  GraphBuilder() = default;
  std::string Fresh(const std::string& hint);

  onnx::ModelProto model_;
  std::FILE* data_ = nullptr;
  std::filesystem::path data_path_;
  uint64_t offset_ = 0;
  bool fp16_clip_ = false;
  int64_t num_parameters_ = 0;
  int64_t counter_ = 0;
  util::HugeBuffer scratch_;
  std::map<std::string, std::string> const_cache_;  // (type + bytes) -> initializer name
};

}  // namespace qeff::exporter
