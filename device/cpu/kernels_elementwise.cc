// Elementwise kernels with numpy broadcasting: binary arithmetic and comparisons, Where,
// unary math, Cast.
#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/vector_math.h"

namespace qeff::device {
namespace {

using qeff::v1::Op;

const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Greater", "Less",
                                       "Equal", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Mod"};
const std::set<std::string> kUnary = {"Sqrt", "Tanh", "Erf", "Exp", "Neg", "Sigmoid", "Sin", "Cos", "Relu",
                                      "Abs", "Log", "Reciprocal", "Not", "Cast", "Softplus"};

// Input strides broadcast to the output's rank (0 on broadcast dimensions).
Shape BroadcastStrides(const Shape& in, const Shape& out) {
  Shape s(out.size(), 0);
  Shape st = Strides(in);
  const size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : st[i];
  return s;
}

// Calls f(out_offset, count, in_offsets[], in_inner_strides[]) for every run along the last
// output dimension.
template <int N, typename F>
void ForEachRow(const Shape& out, const Shape* const in_shapes[N], F f) {
  const int r = static_cast<int>(out.size());
  int64_t strides[N][8] = {};
  for (int k = 0; k < N; ++k) {
    Shape s = BroadcastStrides(*in_shapes[k], out);
    for (int d = 0; d < r; ++d) strides[k][d] = s[d];
  }
  const int64_t inner = r == 0 ? 1 : out[r - 1];
  const int64_t total = NumElements(out);
  if (inner == 0 || total == 0) return;
  const int64_t rows = total / inner;
  int64_t idx[8] = {};
  int64_t off[N];
  int64_t inner_stride[N];
  for (int k = 0; k < N; ++k) inner_stride[k] = r == 0 ? 0 : strides[k][r - 1];
  for (int64_t row = 0; row < rows; ++row) {
    for (int k = 0; k < N; ++k) {
      off[k] = 0;
      for (int d = 0; d + 1 < r; ++d) off[k] += idx[d] * strides[k][d];
    }
    f(row * inner, inner, off, inner_stride);
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
}

template <typename T, typename R, typename Fn>
void Binary(const TensorRef& a, const TensorRef& b, const TensorRef& o, Fn fn) {
  const T* pa = a.as<T>();
  const T* pb = b.as<T>();
  R* po = o.as<R>();
  if (a.shape == o.shape && b.shape == o.shape) {
    const int64_t n = o.numel();
    for (int64_t i = 0; i < n; ++i) po[i] = fn(pa[i], pb[i]);
    return;
  }
  const Shape* shapes[2] = {&a.shape, &b.shape};
  ForEachRow<2>(o.shape, shapes, [&](int64_t o0, int64_t n, const int64_t* off, const int64_t* st) {
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    R* z = po + o0;
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) z[i] = fn(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) z[i] = fn(x[i], yv);
    } else {
      for (int64_t i = 0; i < n; ++i) z[i] = fn(x[i * st[0]], y[i * st[1]]);
    }
  });
}

template <typename T>
absl::Status BinaryTyped(const std::string& t, const TensorRef& a, const TensorRef& b, const TensorRef& o) {
  if (t == "Add") Binary<T, T>(a, b, o, [](T x, T y) { return x + y; });
  else if (t == "Sub") Binary<T, T>(a, b, o, [](T x, T y) { return x - y; });
  else if (t == "Mul") Binary<T, T>(a, b, o, [](T x, T y) { return x * y; });
  else if (t == "Div") {
    if constexpr (std::is_integral_v<T>) {
      Binary<T, T>(a, b, o, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(x / y); });
    } else {
      Binary<T, T>(a, b, o, [](T x, T y) { return x / y; });
    }
  } else if (t == "Mod") {
    if constexpr (std::is_integral_v<T>) {
      Binary<T, T>(a, b, o, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(((x % y) + y) % y); });
    } else {
      Binary<T, T>(a, b, o, [](T x, T y) { return std::fmod(x, y); });
    }
  } else if (t == "Pow") {
    Binary<T, T>(a, b, o, [](T x, T y) {
      if constexpr (std::is_floating_point_v<T>) {
        if (y == T(3)) return x * x * x;
        if (y == T(2)) return x * x;
      }
      return static_cast<T>(std::pow(x, y));
    });
  } else if (t == "Max") Binary<T, T>(a, b, o, [](T x, T y) { return x > y ? x : y; });
  else if (t == "Min") Binary<T, T>(a, b, o, [](T x, T y) { return x < y ? x : y; });
  else if (t == "Greater") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x > y; });
  else if (t == "Less") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x < y; });
  else if (t == "GreaterOrEqual") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x >= y; });
  else if (t == "LessOrEqual") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x <= y; });
  else if (t == "Equal") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x == y; });
  else if (t == "And") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x && y; });
  else if (t == "Or") Binary<T, uint8_t>(a, b, o, [](T x, T y) -> uint8_t { return x || y; });
  else return absl::UnimplementedError(absl::StrCat("binary op ", t));
  return absl::OkStatus();
}

template <typename T>
void WhereTyped(const TensorRef& c, const TensorRef& a, const TensorRef& b, const TensorRef& o) {
  const uint8_t* pc = c.as<uint8_t>();
  const T* pa = a.as<T>();
  const T* pb = b.as<T>();
  T* po = o.as<T>();
  const Shape* shapes[3] = {&c.shape, &a.shape, &b.shape};
  ForEachRow<3>(o.shape, shapes, [&](int64_t o0, int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; ++i) {
      po[o0 + i] = pc[off[0] + i * st[0]] ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
    }
  });
}

using UnaryFn = float (*)(float);

UnaryFn UnaryFor(const std::string& t) {
  if (t == "Sqrt") return [](float x) { return std::sqrt(x); };
  if (t == "Tanh") return [](float x) { return std::tanh(x); };
  if (t == "Erf") return [](float x) { return std::erf(x); };
  if (t == "Exp") return [](float x) { return std::exp(x); };
  if (t == "Neg") return [](float x) { return -x; };
  if (t == "Sigmoid") return [](float x) { return 1.0f / (1.0f + std::exp(-x)); };
  if (t == "Sin") return [](float x) { return std::sin(x); };
  if (t == "Cos") return [](float x) { return std::cos(x); };
  if (t == "Relu") return [](float x) { return x > 0 ? x : 0.0f; };
  if (t == "Abs") return [](float x) { return std::fabs(x); };
  if (t == "Log") return [](float x) { return std::log(x); };
  if (t == "Reciprocal") return [](float x) { return 1.0f / x; };
  if (t == "Softplus") return [](float x) { return std::log1p(std::exp(x)); };
  return nullptr;
}

// Reads element i of any numeric tensor as double / writes it back (Cast).
double Load(const TensorRef& t, int64_t i) {
  switch (t.dtype) {
    case qeff::v1::F32: return t.as<float>()[i];
    case qeff::v1::I64: return static_cast<double>(t.as<int64_t>()[i]);
    case qeff::v1::I32: return t.as<int32_t>()[i];
    case qeff::v1::BOOL: return t.as<uint8_t>()[i];
    case qeff::v1::BF16: {
      uint32_t bits = static_cast<uint32_t>(t.as<uint16_t>()[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: return 0;
  }
}

void Store(const TensorRef& t, int64_t i, double v) {
  switch (t.dtype) {
    case qeff::v1::F32: t.as<float>()[i] = static_cast<float>(v); break;
    case qeff::v1::I64: t.as<int64_t>()[i] = static_cast<int64_t>(v); break;
    case qeff::v1::I32: t.as<int32_t>()[i] = static_cast<int32_t>(v); break;
    case qeff::v1::BOOL: t.as<uint8_t>()[i] = v != 0; break;
    case qeff::v1::BF16: {
      float f = static_cast<float>(v);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
      t.as<uint16_t>()[i] = static_cast<uint16_t>(bits >> 16);
      break;
    }
    default: break;
  }
}

}  // namespace

bool IsElementwise(const std::string& type) {
  return kBinary.count(type) > 0 || kUnary.count(type) > 0 || type == "Where";
}

absl::Status RunElementwise(const Op& op, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out,
                            ThreadPool* pool) {
  const std::string& t = op.type();
  if (out.size() != 1) return absl::InvalidArgumentError(absl::StrCat(t, " needs one output"));
  const TensorRef& o = out[0];
  if (t == "Where") {
    if (in.size() != 3) return absl::InvalidArgumentError("Where needs 3 inputs");
    switch (o.dtype) {
      case qeff::v1::F32: WhereTyped<float>(in[0], in[1], in[2], o); break;
      case qeff::v1::I64: WhereTyped<int64_t>(in[0], in[1], in[2], o); break;
      case qeff::v1::I32: WhereTyped<int32_t>(in[0], in[1], in[2], o); break;
      case qeff::v1::BOOL: WhereTyped<uint8_t>(in[0], in[1], in[2], o); break;
      default: return absl::UnimplementedError(absl::StrCat("Where on ", DTypeName(o.dtype)));
    }
    return absl::OkStatus();
  }
  if (kBinary.count(t)) {
    if (in.size() != 2) return absl::InvalidArgumentError(absl::StrCat(t, " needs 2 inputs"));
    switch (in[0].dtype) {
      case qeff::v1::F32: return BinaryTyped<float>(t, in[0], in[1], o);
      case qeff::v1::I64: return BinaryTyped<int64_t>(t, in[0], in[1], o);
      case qeff::v1::I32: return BinaryTyped<int32_t>(t, in[0], in[1], o);
      case qeff::v1::BOOL: return BinaryTyped<uint8_t>(t, in[0], in[1], o);
      default: return absl::UnimplementedError(absl::StrCat(t, " on ", DTypeName(in[0].dtype)));
    }
  }
  if (in.size() != 1) return absl::InvalidArgumentError(absl::StrCat(t, " needs 1 input"));
  const TensorRef& x = in[0];
  const int64_t n = x.numel();
  if (t == "Cast") {
    if (x.dtype == o.dtype) {
      if (x.bytes() > 0) std::memcpy(o.data, x.data, x.bytes());
    } else {
      for (int64_t i = 0; i < n; ++i) Store(o, i, Load(x, i));
    }
    return absl::OkStatus();
  }
  if (t == "Not") {
    for (int64_t i = 0; i < n; ++i) o.as<uint8_t>()[i] = !x.as<uint8_t>()[i];
    return absl::OkStatus();
  }
  if (x.dtype == qeff::v1::I64 && (t == "Neg" || t == "Abs")) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = x.as<int64_t>()[i];
      o.as<int64_t>()[i] = t == "Neg" ? -v : (v < 0 ? -v : v);
    }
    return absl::OkStatus();
  }
  if (x.dtype != qeff::v1::F32) return absl::UnimplementedError(absl::StrCat(t, " on ", DTypeName(x.dtype)));
  const float* px = x.as<float>();
  float* po = o.as<float>();
  const UnaryFn fn = UnaryFor(t);
  if (fn == nullptr) return absl::UnimplementedError(absl::StrCat("unary op ", t));
  auto body = [&](int64_t b, int64_t e) {
    if (t == "Tanh") TanhArray(px + b, po + b, e - b);
    else if (t == "Exp") ExpArray(px + b, po + b, e - b);
    else if (t == "Sigmoid") SigmoidArray(px + b, po + b, e - b);
    else for (int64_t i = b; i < e; ++i) po[i] = fn(px[i]);
  };
  if (pool != nullptr && n >= 1 << 15) {
    pool->ParallelFor(n, 4096, body);
  } else {
    body(0, n);
  }
  return absl::OkStatus();
}

}  // namespace qeff::device
