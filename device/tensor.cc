#include "device/tensor.h"

namespace qeff::device {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case qeff::v1::F32: return 4;
    case qeff::v1::I64: return 8;
    case qeff::v1::BOOL: return 1;
    case qeff::v1::BF16: return 2;
    case qeff::v1::I32: return 4;
    case qeff::v1::I8: return 1;
    case qeff::v1::I4: return 1;  // bytes of the packed shape
    default: return 0;
  }
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case qeff::v1::F32: return "float32";
    case qeff::v1::I64: return "int64";
    case qeff::v1::BOOL: return "bool";
    case qeff::v1::BF16: return "bfloat16";
    case qeff::v1::I32: return "int32";
    case qeff::v1::I8: return "int8";
    case qeff::v1::I4: return "int4";
    default: return "unspecified";
  }
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace qeff::device
