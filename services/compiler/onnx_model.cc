#include "services/compiler/onnx_model.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/util/huge_buffer.h"
#include "common/util/status_macros.h"

namespace qeff::compiler {
namespace fs = std::filesystem;
using device::DType;

namespace {

constexpr uint64_t kMaxOnnxBytes = 2ull << 30;  // protobuf's own limit

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

size_t OnnxElemSize(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: case onnx::TensorProto::INT32: return 4;
    case onnx::TensorProto::INT64: case onnx::TensorProto::DOUBLE: return 8;
    case onnx::TensorProto::BOOL: case onnx::TensorProto::UINT8: case onnx::TensorProto::INT8: return 1;
    case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: return 2;
    default: return 0;
  }
}

// Builds a ConstTensor from raw little-endian bytes of ONNX type `t`, widening where needed.
absl::StatusOr<ConstPtr> FromRaw(int t, device::Shape shape, const uint8_t* raw, size_t bytes,
                                 std::shared_ptr<const void> owner, const std::string& name) {
  const int64_t n = device::NumElements(shape);
  const size_t es = OnnxElemSize(t);
  if (es == 0) return absl::UnimplementedError(absl::StrCat("tensor ", name, ": unsupported ONNX element type ", t));
  if (n < 0 || static_cast<uint64_t>(n) * es != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, ": ", bytes, " bytes of data for shape ",
                                                   device::ShapeString(shape)));
  }
  const DType dt = DTypeFromOnnx(t);
  const bool zero_copy = (t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::INT64 ||
                          t == onnx::TensorProto::INT32 || t == onnx::TensorProto::BOOL) &&
                         owner != nullptr && reinterpret_cast<uintptr_t>(raw) % 8 == 0;
  if (zero_copy) {
    auto c = std::make_shared<ConstTensor>();
    c->dtype = dt;
    c->shape = std::move(shape);
    c->data = raw;
    c->owner = std::move(owner);
    c->file_backed = true;
    return ConstPtr(c);
  }
  auto c = ConstTensor::Allocate(dt, shape);
  switch (t) {
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, raw + i * 2, 2);
        float f;
        if (t == onnx::TensorProto::FLOAT16) {
          f = HalfToFloat(h);
        } else {
          uint32_t bits = static_cast<uint32_t>(h) << 16;
          std::memcpy(&f, &bits, 4);
        }
        reinterpret_cast<float*>(c->mutable_data())[i] = f;
      }
      break;
    case onnx::TensorProto::DOUBLE:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, raw + i * 8, 8);
        reinterpret_cast<float*>(c->mutable_data())[i] = static_cast<float>(d);
      }
      break;
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT8:
      for (int64_t i = 0; i < n; ++i) {
        reinterpret_cast<int32_t*>(c->mutable_data())[i] =
            t == onnx::TensorProto::INT8 ? static_cast<int8_t>(raw[i]) : raw[i];
      }
      break;
    default:
      std::memcpy(c->mutable_data(), raw, bytes);
  }
  return ConstPtr(c);
}

IoDecl DeclFromValueInfo(const onnx::ValueInfoProto& v) {
  IoDecl d;
  d.name = v.name();
  d.dtype = DTypeFromOnnx(v.type().tensor_type().elem_type());
  for (const auto& dim : v.type().tensor_type().shape().dim()) {
    if (dim.has_dim_value()) {
      d.dims.push_back(dim.dim_value());
      d.symbols.emplace_back();
    } else {
      d.dims.push_back(-1);
      d.symbols.push_back(dim.dim_param());
    }
  }
  return d;
}

}  // namespace

bool ShapeWithinLimits(const device::Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxTensorElements) return false;
    if (d > 0 && n > kMaxTensorElements / d) return false;
    n *= d;
  }
  return true;
}

std::shared_ptr<ConstTensor> ConstTensor::Allocate(DType dtype, device::Shape shape) {
  auto c = std::make_shared<ConstTensor>();
  c->dtype = dtype;
  c->shape = std::move(shape);
  const size_t bytes = (std::max<size_t>(c->bytes(), 1) + 63) / 64 * 64;
  if (bytes >= (size_t{2} << 20)) {
    // Packed weights and folded tables: fresh anonymous huge pages come zeroed, so no memset
    // and one fault per 2 MB (a memset over 4 KB faults was a third of an fp32 compile).
    auto buffer = std::make_shared<util::HugeBuffer>(bytes);
    c->data = buffer->data();
    if (c->data != nullptr) c->owner = std::move(buffer);
    return c;
  }
  void* p = std::aligned_alloc(64, bytes);
  if (p != nullptr) std::memset(p, 0, bytes);
  c->owner = std::shared_ptr<void>(p, std::free);
  c->data = static_cast<const uint8_t*>(p);
  return c;
}

DType DTypeFromOnnx(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16:
    case onnx::TensorProto::DOUBLE:
      return qeff::v1::F32;
    case onnx::TensorProto::INT64: return qeff::v1::I64;
    case onnx::TensorProto::INT32: case onnx::TensorProto::INT8: case onnx::TensorProto::UINT8: return qeff::v1::I32;
    case onnx::TensorProto::BOOL: return qeff::v1::BOOL;
    default: return qeff::v1::DTYPE_UNSPECIFIED;
  }
}

absl::StatusOr<ConstPtr> TensorFromProto(const onnx::TensorProto& t) {
  device::Shape shape(t.dims().begin(), t.dims().end());
  if (!ShapeWithinLimits(shape)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name(), ": shape ", device::ShapeString(shape),
                                                   " is negative or too large"));
  }
  if (t.has_raw_data()) {
    auto owner = std::make_shared<std::string>(t.raw_data());
    return FromRaw(t.data_type(), shape, reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), nullptr,
                   t.name());
  }
  const int64_t n = device::NumElements(shape);
  auto c = ConstTensor::Allocate(DTypeFromOnnx(t.data_type()), shape);
  auto count_error = [&] {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name(), ": element count does not match its shape"));
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.float_data_size() != n) return count_error();
      if (n > 0) std::memcpy(c->mutable_data(), t.float_data().data(), n * 4);
      break;
    case onnx::TensorProto::DOUBLE:
      if (t.double_data_size() != n) return count_error();
      for (int64_t i = 0; i < n; ++i) reinterpret_cast<float*>(c->mutable_data())[i] = static_cast<float>(t.double_data(i));
      break;
    case onnx::TensorProto::INT64:
      if (t.int64_data_size() != n) return count_error();
      if (n > 0) std::memcpy(c->mutable_data(), t.int64_data().data(), n * 8);
      break;
    case onnx::TensorProto::INT32: case onnx::TensorProto::INT8: case onnx::TensorProto::UINT8:
      if (t.int32_data_size() != n) return count_error();
      if (n > 0) std::memcpy(c->mutable_data(), t.int32_data().data(), n * 4);
      break;
    case onnx::TensorProto::BOOL:
      if (t.int32_data_size() != n) return count_error();
      for (int64_t i = 0; i < n; ++i) c->mutable_data()[i] = t.int32_data(i) != 0;
      break;
    case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: {
      if (t.int32_data_size() != n) return count_error();
      std::vector<uint16_t> h(n);
      for (int64_t i = 0; i < n; ++i) h[i] = static_cast<uint16_t>(t.int32_data(i));
      return FromRaw(t.data_type(), shape, reinterpret_cast<const uint8_t*>(h.data()), n * 2, nullptr, t.name());
    }
    default:
      return absl::UnimplementedError(absl::StrCat("tensor ", t.name(), ": unsupported ONNX element type ", t.data_type()));
  }
  return ConstPtr(c);
}

absl::StatusOr<std::unique_ptr<OnnxModel>> OnnxModel::Load(const fs::path& dir, const std::string& file) {
  auto m = std::make_unique<OnnxModel>();
  QEFF_ASSIGN_OR_RETURN(std::string bytes, util::ReadFile(dir / file, kMaxOnnxBytes));
  if (!m->model_.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(file, " is not a valid ONNX model (protobuf parse failed)"));
  }
  for (const auto& op : m->model_.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") m->opset_ = op.version();
  }
  const auto& g = m->model_.graph();
  for (const auto& t : g.initializer()) {
    if (m->initializers_.count(t.name())) return absl::InvalidArgumentError(absl::StrCat("duplicate initializer ", t.name()));
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      std::string location;
      uint64_t offset = 0, length = 0;
      bool has_length = false;
      for (const auto& kv : t.external_data()) {
        if (kv.key() == "location") location = kv.value();
        else if (kv.key() == "offset" && !absl::SimpleAtoi(kv.value(), &offset)) return absl::InvalidArgumentError("bad external offset");
        else if (kv.key() == "length") {
          if (!absl::SimpleAtoi(kv.value(), &length)) return absl::InvalidArgumentError("bad external length");
          has_length = true;
        }
      }
      QEFF_ASSIGN_OR_RETURN(fs::path data_path, util::ConfinePath(dir, location));
      auto it = m->data_files_.find(data_path.string());
      if (it == m->data_files_.end()) {
        QEFF_ASSIGN_OR_RETURN(util::MappedFile mf, util::MappedFile::Open(data_path));
        it = m->data_files_.emplace(data_path.string(), std::make_shared<util::MappedFile>(std::move(mf))).first;
      }
      const auto& mf = it->second;
      device::Shape shape(t.dims().begin(), t.dims().end());
      if (!ShapeWithinLimits(shape)) {
        return absl::InvalidArgumentError(absl::StrCat("initializer ", t.name(), ": shape ", device::ShapeString(shape),
                                                       " is negative or too large"));
      }
      const uint64_t expect = static_cast<uint64_t>(std::max<int64_t>(0, device::NumElements(shape))) * OnnxElemSize(t.data_type());
      if (!has_length) length = expect;
      if (offset > mf->size() || length > mf->size() - offset) {
        return absl::InvalidArgumentError(absl::StrCat("initializer ", t.name(), ": external data [", offset, ", +", length,
                                                       ") lies outside ", location, " (", mf->size(), " bytes)"));
      }
      QEFF_ASSIGN_OR_RETURN(ConstPtr c, FromRaw(t.data_type(), shape, mf->data() + offset, length, mf, t.name()));
      m->initializers_[t.name()] = c;
    } else {
      QEFF_ASSIGN_OR_RETURN(ConstPtr c, TensorFromProto(t));
      m->initializers_[t.name()] = c;
    }
  }
  for (const auto& v : g.input()) {
    if (m->initializers_.count(v.name())) continue;
    m->inputs_.push_back(DeclFromValueInfo(v));
  }
  for (const auto& v : g.output()) m->outputs_.push_back(DeclFromValueInfo(v));
  return m;
}

std::string OnnxModel::Metadata(const std::string& key) const {
  for (const auto& p : model_.metadata_props()) {
    if (p.key() == key) return p.value();
  }
  return "";
}

}  // namespace qeff::compiler
