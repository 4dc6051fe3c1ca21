// Tensors as the device sees them: a pointer, an element type and a static shape. No ownership.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "qeff/v1/program.pb.h"

namespace qeff::device {

using DType = qeff::v1::DType;
using Shape = std::vector<int64_t>;

// Bytes per element; 0 for DTYPE_UNSPECIFIED.
size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);
int64_t NumElements(const Shape& shape);
std::string ShapeString(const Shape& shape);

// A bfloat16 (the high 16 bits of a float32) as float32: exact.
inline float Bf16ToFloat(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// float32 -> bfloat16, rounded to nearest even; NaN stays a (quiet) NaN. The one rounding used
// by the compiler's packers, Cast and the bf16 KV cache.
inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

// A view of tensor memory (kernel inputs/outputs, host IO).
struct TensorRef {
  void* data = nullptr;
  DType dtype = qeff::v1::DTYPE_UNSPECIFIED;
  Shape shape;

  int64_t numel() const { return NumElements(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

// Host-side tensor handed to / returned by Session (read-only view).
struct HostTensor {
  const void* data = nullptr;
  DType dtype = qeff::v1::DTYPE_UNSPECIFIED;
  Shape shape;

  static HostTensor I64(const int64_t* data, Shape shape) { return {data, qeff::v1::I64, std::move(shape)}; }
  static HostTensor F32(const float* data, Shape shape) { return {data, qeff::v1::F32, std::move(shape)}; }
};

}  // namespace qeff::device
