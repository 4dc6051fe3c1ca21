#include "services/exporter/graph_builder.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::exporter {
namespace {

constexpr uint64_t kAlign = 64;
constexpr float kF16Max = 65504.0f;

void SetDims(onnx::TypeProto* type, int32_t elem_type, const std::vector<Dim>& dims) {
  auto* t = type->mutable_tensor_type();
  t->set_elem_type(elem_type);
  auto* shape = t->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (d.param.empty()) {
      dim->set_dim_value(d.value);
    } else {
      dim->set_dim_param(d.param);
    }
  }
}

}  // namespace

Attr AttrInt(const std::string& name, int64_t v) {
  Attr a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

Attr AttrFloat(const std::string& name, float v) {
  Attr a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(v);
  return a;
}

Attr AttrInts(const std::string& name, const std::vector<int64_t>& v) {
  Attr a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

absl::StatusOr<GraphBuilder> GraphBuilder::Open(const std::filesystem::path& data_path, bool fp16_clip) {
  GraphBuilder b;
  b.data_ = std::fopen(data_path.c_str(), "wb");
  if (b.data_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create ", data_path.string(), ": ", std::strerror(errno)));
  }
  b.data_path_ = data_path;
  b.fp16_clip_ = fp16_clip;
  b.model_.set_ir_version(kOnnxIrVersion);
  b.model_.set_producer_name("qeff-exporter");
  b.model_.mutable_graph()->set_name("qeff");  // the checker requires a name
  auto* op = b.model_.add_opset_import();
  op->set_domain("");
  op->set_version(kOnnxOpset);
  return b;
}

GraphBuilder::GraphBuilder(GraphBuilder&& o) noexcept
    : model_(std::move(o.model_)),
      data_(o.data_),
      data_path_(std::move(o.data_path_)),
      offset_(o.offset_),
      fp16_clip_(o.fp16_clip_),
      num_parameters_(o.num_parameters_),
      counter_(o.counter_),
      scratch_(std::move(o.scratch_)),
      const_cache_(std::move(o.const_cache_)) {
  o.data_ = nullptr;
}

GraphBuilder::~GraphBuilder() {
  if (data_ != nullptr) std::fclose(data_);
}

std::string GraphBuilder::Fresh(const std::string& hint) {
  return absl::StrCat(hint.empty() ? "t" : hint, "_", counter_++);
}

std::vector<std::string> GraphBuilder::NodeN(const std::string& op, const std::vector<std::string>& inputs,
                                             int num_outputs, const std::vector<Attr>& attrs,
                                             const std::string& hint, const std::string& domain) {
  std::vector<std::string> outs;
  const std::string base = hint.empty() ? op : hint;
  for (int i = 0; i < num_outputs; ++i) outs.push_back(Fresh(base));
  NodeNamed(op, inputs, outs, attrs, domain);
  return outs;
}

std::string GraphBuilder::Node(const std::string& op, const std::vector<std::string>& inputs,
                               const std::vector<Attr>& attrs, const std::string& hint, const std::string& domain) {
  return NodeN(op, inputs, 1, attrs, hint, domain)[0];
}

void GraphBuilder::NodeNamed(const std::string& op, const std::vector<std::string>& inputs,
                             const std::vector<std::string>& outputs, const std::vector<Attr>& attrs,
                             const std::string& domain) {
  auto* n = graph().add_node();
  n->set_op_type(op);
  n->set_name(absl::StrCat(op, "_", counter_++));
  if (!domain.empty()) n->set_domain(domain);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  for (const auto& a : attrs) *n->add_attribute() = a;
}

std::string GraphBuilder::ConstI64(const std::vector<int64_t>& values, const std::vector<int64_t>& dims) {
  std::string raw(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
  std::string key = "i64:";
  for (int64_t d : dims) absl::StrAppend(&key, d, ",");
  key += raw;
  auto it = const_cache_.find(key);
  if (it != const_cache_.end()) return it->second;
  std::string name = Fresh("const_i64");
  auto* t = graph().add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(raw);
  const_cache_[key] = name;
  return name;
}

std::string GraphBuilder::ScalarF32(float v) {
  if (fp16_clip_ && std::isfinite(v)) v = std::fmax(-kF16Max, std::fmin(kF16Max, v));
  std::string raw(reinterpret_cast<const char*>(&v), sizeof(v));
  std::string key = "f32:" + raw;
  auto it = const_cache_.find(key);
  if (it != const_cache_.end()) return it->second;
  std::string name = Fresh("const_f32");
  auto* t = graph().add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->set_raw_data(raw);
  const_cache_[key] = name;
  return name;
}

absl::StatusOr<std::string> GraphBuilder::Weight(const std::string& name, const hf::TensorView& view) {
  if (!hf::IsFloatingWeight(view.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("weight tensor \"", name, "\" has dtype ", hf::DTypeName(view.dtype),
                                                   "; expected F32, F16 or BF16"));
  }
  // Align every tensor to 64 bytes so a loader can mmap and use it in place.
  static const char kZeros[kAlign] = {};
  const uint64_t pad = (kAlign - offset_ % kAlign) % kAlign;
  if (pad != 0 && std::fwrite(kZeros, 1, pad, data_) != pad) {
    return absl::InternalError(absl::StrCat("cannot write ", data_path_.string(), ": ", std::strerror(errno)));
  }
  offset_ += pad;
  const int64_t n = view.numel();
  const uint64_t length = static_cast<uint64_t>(n) * sizeof(float);
  const void* src = view.data;
  if (view.dtype != hf::DType::kF32 || fp16_clip_) {
    // A float view already in the scratch buffer (LoadLinearWeight's transpose) is clipped in place.
    const bool in_scratch = view.data == scratch_.data() && view.dtype == hf::DType::kF32;
    float* buf = in_scratch ? reinterpret_cast<float*>(scratch_.data()) : Scratch(n);
    if (buf == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", length, " bytes for ", name));
    if (!in_scratch) QEFF_RETURN_IF_ERROR(hf::ConvertToFloat(view, buf));
    if (fp16_clip_) {
      for (int64_t i = 0; i < n; ++i) {
        if (std::isfinite(buf[i])) buf[i] = std::fmax(-kF16Max, std::fmin(kF16Max, buf[i]));
      }
    }
    src = buf;
  }
  if (length != 0 && std::fwrite(src, 1, length, data_) != length) {
    return absl::InternalError(absl::StrCat("cannot write ", data_path_.string(), ": ", std::strerror(errno)));
  }
  auto* t = graph().add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : view.shape) t->add_dims(d);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add_kv = [t](const std::string& k, const std::string& v) {
    auto* e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add_kv("location", data_path_.filename().string());
  add_kv("offset", std::to_string(offset_));
  add_kv("length", std::to_string(length));
  offset_ += length;
  num_parameters_ += n;
  return name;
}

float* GraphBuilder::Scratch(int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  if (scratch_.size() < bytes) {
    scratch_ = util::HugeBuffer();  // release before mapping the larger one
    scratch_ = util::HugeBuffer(bytes);
  }
  return reinterpret_cast<float*>(scratch_.data());
}

void GraphBuilder::Input(const std::string& name, int32_t elem_type, const std::vector<Dim>& dims) {
  auto* v = graph().add_input();
  v->set_name(name);
  SetDims(v->mutable_type(), elem_type, dims);
}

void GraphBuilder::Output(const std::string& name, int32_t elem_type, const std::vector<Dim>& dims) {
  auto* v = graph().add_output();
  v->set_name(name);
  SetDims(v->mutable_type(), elem_type, dims);
}

absl::Status GraphBuilder::Finish(const std::filesystem::path& model_path) {
  if (data_ != nullptr) {
    const bool ok = std::fflush(data_) == 0;
    const bool closed = std::fclose(data_) == 0;
    data_ = nullptr;
    if (!ok || !closed) return absl::InternalError(absl::StrCat("cannot write ", data_path_.string()));
  }
  if (model_.ByteSizeLong() > (1ull << 31) - 1) {
    return absl::InternalError("the ONNX graph itself exceeds protobuf's 2 GB limit");
  }
  std::ofstream out(model_path, std::ios::binary | std::ios::trunc);
  if (!out || !model_.SerializeToOstream(&out)) {
    return absl::InternalError(absl::StrCat("cannot write ", model_path.string()));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", model_path.string()));
  return absl::OkStatus();
}

}  // namespace qeff::exporter
