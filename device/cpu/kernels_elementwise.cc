// Elementwise kernels with numpy broadcasting: binary arithmetic and comparisons, Where,
// unary math, Cast.
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "device/cpu/kernels.h"
#include "device/cpu/op_registry.h"
#include "device/cpu/vector_math.h"

namespace qeff::device {
namespace {

// Broadcast loops keep per-dimension state in fixed arrays: outputs have rank <= kMaxRank.
constexpr size_t kMaxRank = 8;

enum class BinaryKind {
  kAdd, kSub, kMul, kDiv, kMod, kPow, kMax, kMin,
  kGreater, kLess, kGreaterOrEqual, kLessOrEqual, kEqual, kAnd, kOr,
};
struct BinaryOp {
  const char* name;
  BinaryKind kind;
  bool compare;  // output bool
};
constexpr BinaryOp kBinaryOps[] = {
    {"Add", BinaryKind::kAdd, false},        {"Sub", BinaryKind::kSub, false},
    {"Mul", BinaryKind::kMul, false},        {"Div", BinaryKind::kDiv, false},
    {"Mod", BinaryKind::kMod, false},        {"Pow", BinaryKind::kPow, false},
    {"Max", BinaryKind::kMax, false},        {"Min", BinaryKind::kMin, false},
    {"Greater", BinaryKind::kGreater, true}, {"Less", BinaryKind::kLess, true},
    {"GreaterOrEqual", BinaryKind::kGreaterOrEqual, true},
    {"LessOrEqual", BinaryKind::kLessOrEqual, true},
    {"Equal", BinaryKind::kEqual, true},     {"And", BinaryKind::kAnd, true},
    {"Or", BinaryKind::kOr, true},
};

enum class UnaryKind {
  kSqrt, kTanh, kErf, kExp, kNeg, kSigmoid, kSin, kCos, kRelu, kAbs, kLog, kReciprocal, kSoftplus, kGeluTanh,
};
constexpr std::pair<const char*, UnaryKind> kUnaryOps[] = {
    {"Sqrt", UnaryKind::kSqrt}, {"Tanh", UnaryKind::kTanh},       {"Erf", UnaryKind::kErf},
    {"Exp", UnaryKind::kExp},   {"Neg", UnaryKind::kNeg},         {"Sigmoid", UnaryKind::kSigmoid},
    {"Sin", UnaryKind::kSin},   {"Cos", UnaryKind::kCos},         {"Relu", UnaryKind::kRelu},
    {"Abs", UnaryKind::kAbs},   {"Log", UnaryKind::kLog},         {"Reciprocal", UnaryKind::kReciprocal},
    {"Softplus", UnaryKind::kSoftplus},
    // Not ONNX: the compiler's FuseGeluTanh emits it for the 8-op tanh-GELU chain.
    {"GeluTanh", UnaryKind::kGeluTanh},
};

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

// Elementwise calls from this many outputs on split over the pool (below, dispatch costs more
// than it saves, and a descheduled worker would stall the step).
constexpr int64_t kParallelElements = int64_t{1} << 15;

template <typename T, typename R, typename Fn>
void Binary(const TensorRef& a, const TensorRef& b, const TensorRef& o, ThreadPool* pool, Fn fn) {
  const T* pa = a.as<T>();
  const T* pb = b.as<T>();
  R* po = o.as<R>();
  // Flat cases (same shapes, or one operand a single value: GELU's and the score scales'
  // constants): one contiguous loop the compiler vectorizes, split over the pool when large.
  const int64_t n = o.numel();
  const bool a_full = a.shape == o.shape, b_full = b.shape == o.shape;
  const bool a_one = a.numel() == 1, b_one = b.numel() == 1;
  if ((a_full || a_one) && (b_full || b_one)) {
    auto body = [&](int64_t i0, int64_t i1) {
      if (a_full && b_full) {
        for (int64_t i = i0; i < i1; ++i) po[i] = fn(pa[i], pb[i]);
      } else if (a_full) {
        const T y = *pb;
        for (int64_t i = i0; i < i1; ++i) po[i] = fn(pa[i], y);
      } else if (b_full) {
        const T x = *pa;
        for (int64_t i = i0; i < i1; ++i) po[i] = fn(x, pb[i]);
      } else {
        for (int64_t i = i0; i < i1; ++i) po[i] = fn(*pa, *pb);
      }
    };
    if (pool != nullptr && n >= kParallelElements) pool->ParallelFor(n, 4096, body);
    else body(0, n);
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
void BinaryTyped(BinaryKind k, const TensorRef& a, const TensorRef& b, const TensorRef& o, ThreadPool* pool) {
  switch (k) {
    case BinaryKind::kAdd: Binary<T, T>(a, b, o, pool, [](T x, T y) { return x + y; }); break;
    case BinaryKind::kSub: Binary<T, T>(a, b, o, pool, [](T x, T y) { return x - y; }); break;
    case BinaryKind::kMul: Binary<T, T>(a, b, o, pool, [](T x, T y) { return x * y; }); break;
    case BinaryKind::kDiv:
      if constexpr (std::is_integral_v<T>) {
        Binary<T, T>(a, b, o, pool, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(x / y); });
      } else {
        Binary<T, T>(a, b, o, pool, [](T x, T y) { return x / y; });
      }
      break;
    case BinaryKind::kMod:
      if constexpr (std::is_integral_v<T>) {
        Binary<T, T>(a, b, o, pool, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(((x % y) + y) % y); });
      } else {
        Binary<T, T>(a, b, o, pool, [](T x, T y) { return std::fmod(x, y); });
      }
      break;
    case BinaryKind::kPow:
      if constexpr (std::is_floating_point_v<T>) {
        // x³ (GELU's tanh form) and x² by a constant: a loop without a libm call vectorizes.
        if (b.numel() == 1 && (*b.as<T>() == T(3) || *b.as<T>() == T(2))) {
          if (*b.as<T>() == T(3)) Binary<T, T>(a, b, o, pool, [](T x, T) { return x * x * x; });
          else Binary<T, T>(a, b, o, pool, [](T x, T) { return x * x; });
          break;
        }
      }
      Binary<T, T>(a, b, o, pool, [](T x, T y) {
        if constexpr (std::is_floating_point_v<T>) {
          if (y == T(3)) return x * x * x;
          if (y == T(2)) return x * x;
        }
        return static_cast<T>(std::pow(x, y));
      });
      break;
    case BinaryKind::kMax: Binary<T, T>(a, b, o, pool, [](T x, T y) { return x > y ? x : y; }); break;
    case BinaryKind::kMin: Binary<T, T>(a, b, o, pool, [](T x, T y) { return x < y ? x : y; }); break;
    case BinaryKind::kGreater: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x > y; }); break;
    case BinaryKind::kLess: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x < y; }); break;
    case BinaryKind::kGreaterOrEqual: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x >= y; }); break;
    case BinaryKind::kLessOrEqual: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x <= y; }); break;
    case BinaryKind::kEqual: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x == y; }); break;
    case BinaryKind::kAnd: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x && y; }); break;
    case BinaryKind::kOr: Binary<T, uint8_t>(a, b, o, pool, [](T x, T y) -> uint8_t { return x || y; }); break;
  }
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

UnaryFn UnaryFor(UnaryKind k) {
  switch (k) {
    case UnaryKind::kSqrt: return [](float x) { return std::sqrt(x); };
    case UnaryKind::kTanh: return [](float x) { return std::tanh(x); };
    case UnaryKind::kErf: return [](float x) { return std::erf(x); };
    case UnaryKind::kExp: return [](float x) { return std::exp(x); };
    case UnaryKind::kNeg: return [](float x) { return -x; };
    case UnaryKind::kSigmoid: return [](float x) { return 1.0f / (1.0f + std::exp(-x)); };
    case UnaryKind::kSin: return [](float x) { return std::sin(x); };
    case UnaryKind::kCos: return [](float x) { return std::cos(x); };
    case UnaryKind::kRelu: return [](float x) { return x > 0 ? x : 0.0f; };
    case UnaryKind::kAbs: return [](float x) { return std::fabs(x); };
    case UnaryKind::kLog: return [](float x) { return std::log(x); };
    case UnaryKind::kReciprocal: return [](float x) { return 1.0f / x; };
    case UnaryKind::kSoftplus: return [](float x) { return std::log1p(std::exp(x)); };
    case UnaryKind::kGeluTanh: return nullptr;  // GeluTanhArray
  }
  return nullptr;
}

// Reads element i of any numeric tensor as double / writes it back (Cast).
double Load(const TensorRef& t, int64_t i) {
  switch (t.dtype) {
    case qeff::v1::F32: return t.as<float>()[i];
    case qeff::v1::I64: return static_cast<double>(t.as<int64_t>()[i]);
    case qeff::v1::I32: return t.as<int32_t>()[i];
    case qeff::v1::BOOL: return t.as<uint8_t>()[i];
    case qeff::v1::BF16: return Bf16ToFloat(t.as<uint16_t>()[i]);
    default: return 0;
  }
}

void Store(const TensorRef& t, int64_t i, double v) {
  switch (t.dtype) {
    case qeff::v1::F32: t.as<float>()[i] = static_cast<float>(v); break;
    case qeff::v1::I64: t.as<int64_t>()[i] = static_cast<int64_t>(v); break;
    case qeff::v1::I32: t.as<int32_t>()[i] = static_cast<int32_t>(v); break;
    case qeff::v1::BOOL: t.as<uint8_t>()[i] = v != 0; break;
    case qeff::v1::BF16: t.as<uint16_t>()[i] = FloatToBf16(static_cast<float>(v)); break;
    default: break;
  }
}

// ---- Binary: Add Sub Mul Div Mod Pow Max Min (same type out), comparisons And Or (bool out) ----

struct BinaryAttrs {
  BinaryKind kind = BinaryKind::kAdd;
  bool compare = false;
};

absl::Status ParseBinary(AttrReader& r, BinaryAttrs* a) {
  a->kind = kBinaryOps[r.variant()].kind;
  a->compare = kBinaryOps[r.variant()].compare;
  return absl::OkStatus();
}

absl::Status CheckBroadcastOutput(std::initializer_list<const Shape*> ins, const TensorRef& o) {
  auto want = BroadcastShapes(ins);
  if (!want.ok()) return want.status();
  if (o.shape.size() > kMaxRank) return RuleError(absl::StrCat("output rank ", o.shape.size(), " above ", kMaxRank));
  return ExpectShape(o, "output", *want);
}

absl::Status BinaryRule(const BinaryAttrs& a, const Tensors& in, const Tensors& out) {
  const auto types = {qeff::v1::F32, qeff::v1::I64, qeff::v1::I32, qeff::v1::BOOL};
  if (auto st = ExpectDType(in[0], "input 0", types); !st.ok()) return st;
  if (auto st = ExpectDType(in[1], "input 1", {in[0].dtype}); !st.ok()) return st;
  if (auto st = ExpectDType(out[0], "output", {a.compare ? qeff::v1::BOOL : in[0].dtype}); !st.ok()) return st;
  return CheckBroadcastOutput({&in[0].shape, &in[1].shape}, out[0]);
}

absl::Status BinaryKernel(const BinaryAttrs& a, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  switch (in[0].dtype) {
    case qeff::v1::F32: BinaryTyped<float>(a.kind, in[0], in[1], out[0], pool); break;
    case qeff::v1::I64: BinaryTyped<int64_t>(a.kind, in[0], in[1], out[0], pool); break;
    case qeff::v1::I32: BinaryTyped<int32_t>(a.kind, in[0], in[1], out[0], pool); break;
    default: BinaryTyped<uint8_t>(a.kind, in[0], in[1], out[0], pool); break;
  }
  return absl::OkStatus();
}

// ---- Where(cond, a, b) ----------------------------------------------------------------------------

absl::Status WhereRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (auto st = ExpectDType(in[0], "condition", {qeff::v1::BOOL}); !st.ok()) return st;
  const auto types = {qeff::v1::F32, qeff::v1::I64, qeff::v1::I32, qeff::v1::BOOL};
  if (auto st = ExpectDType(out[0], "output", types); !st.ok()) return st;
  if (auto st = ExpectDType(in[1], "input 1", {out[0].dtype}); !st.ok()) return st;
  if (auto st = ExpectDType(in[2], "input 2", {out[0].dtype}); !st.ok()) return st;
  return CheckBroadcastOutput({&in[0].shape, &in[1].shape, &in[2].shape}, out[0]);
}

absl::Status WhereKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& o = out[0];
  switch (o.dtype) {
    case qeff::v1::F32: WhereTyped<float>(in[0], in[1], in[2], o); break;
    case qeff::v1::I64: WhereTyped<int64_t>(in[0], in[1], in[2], o); break;
    case qeff::v1::I32: WhereTyped<int32_t>(in[0], in[1], in[2], o); break;
    default: WhereTyped<uint8_t>(in[0], in[1], in[2], o); break;
  }
  return absl::OkStatus();
}

// ---- Unary float math (Neg and Abs also on int64) ----------------------------------------------------

struct UnaryAttrs {
  UnaryKind kind = UnaryKind::kSqrt;
  UnaryFn fn = nullptr;
};

absl::Status ParseUnary(AttrReader& r, UnaryAttrs* a) {
  a->kind = kUnaryOps[r.variant()].second;
  a->fn = UnaryFor(a->kind);
  return absl::OkStatus();
}

absl::Status UnaryRule(const UnaryAttrs& a, const Tensors& in, const Tensors& out) {
  const bool int_ok = a.kind == UnaryKind::kNeg || a.kind == UnaryKind::kAbs;
  absl::Status st = int_ok ? ExpectDType(in[0], "input", {qeff::v1::F32, qeff::v1::I64})
                           : ExpectDType(in[0], "input", {qeff::v1::F32});
  if (!st.ok()) return st;
  return ExpectLike(out[0], "output", in[0].dtype, in[0].shape);
}

absl::Status UnaryKernel(const UnaryAttrs& a, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const TensorRef& x = in[0];
  const TensorRef& o = out[0];
  const int64_t n = x.numel();
  if (x.dtype == qeff::v1::I64) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = x.as<int64_t>()[i];
      o.as<int64_t>()[i] = a.kind == UnaryKind::kNeg ? -v : (v < 0 ? -v : v);
    }
    return absl::OkStatus();
  }
  const float* px = x.as<float>();
  float* po = o.as<float>();
  const UnaryFn fn = a.fn;
  const UnaryKind kind = a.kind;
  auto body = [&](int64_t b, int64_t e) {
    if (kind == UnaryKind::kTanh) TanhArray(px + b, po + b, e - b);
    else if (kind == UnaryKind::kExp) ExpArray(px + b, po + b, e - b);
    else if (kind == UnaryKind::kSigmoid) SigmoidArray(px + b, po + b, e - b);
    else if (kind == UnaryKind::kGeluTanh) GeluTanhArray(px + b, po + b, e - b);
    else for (int64_t i = b; i < e; ++i) po[i] = fn(px[i]);
  };
  if (pool != nullptr && n >= kParallelElements) {
    pool->ParallelFor(n, 4096, body);
  } else {
    body(0, n);
  }
  return absl::OkStatus();
}

// ---- SiluMul: (x · sigmoid(x)) · up (not ONNX: the compiler's FuseSiluMul) -------------------------

absl::Status SiluMulRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (auto st = ExpectDType(in[0], "x", {qeff::v1::F32}); !st.ok()) return st;
  if (auto st = ExpectLike(in[1], "up", qeff::v1::F32, in[0].shape); !st.ok()) return st;
  return ExpectLike(out[0], "output", qeff::v1::F32, in[0].shape);
}

// The unfused chain's arithmetic in its order (Sigmoid, x · s, · up), so the bits match.
absl::Status SiluMulKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool* pool) {
  const float* x = in[0].as<float>();
  const float* up = in[1].as<float>();
  float* o = out[0].as<float>();
  auto body = [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 1024;  // sigmoids of a block stay in L1 for the products
    float s[kBlock];
    for (int64_t i = b; i < e; i += kBlock) {
      const int64_t m = std::min(kBlock, e - i);
      SigmoidArray(x + i, s, m);
      for (int64_t j = 0; j < m; ++j) {
        const float silu = x[i + j] * s[j];
        o[i + j] = silu * up[i + j];
      }
    }
  };
  const int64_t n = in[0].numel();
  if (pool != nullptr && n >= kParallelElements) pool->ParallelFor(n, 4096, body);
  else body(0, n);
  return absl::OkStatus();
}

// ---- Not (bool), Cast (any type to any type, same shape) -----------------------------------------------

absl::Status NotRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (auto st = ExpectDType(in[0], "input", {qeff::v1::BOOL}); !st.ok()) return st;
  return ExpectLike(out[0], "output", qeff::v1::BOOL, in[0].shape);
}

absl::Status NotKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const int64_t n = in[0].numel();
  for (int64_t i = 0; i < n; ++i) out[0].as<uint8_t>()[i] = !in[0].as<uint8_t>()[i];
  return absl::OkStatus();
}

absl::Status CastRule(const NoAttrs&, const Tensors& in, const Tensors& out) {
  if (!Present(in[0]) || DTypeSize(in[0].dtype) == 0) return RuleError("input has no type");
  if (DTypeSize(out[0].dtype) == 0) return RuleError("output has no type");
  return ExpectShape(out[0], "output", in[0].shape);
}

absl::Status CastKernel(const NoAttrs&, const Tensors& in, const Tensors& out, ThreadPool*) {
  const TensorRef& x = in[0];
  const TensorRef& o = out[0];
  if (x.dtype == o.dtype) {
    if (x.bytes() > 0) std::memcpy(o.data, x.data, x.bytes());
  } else {
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) Store(o, i, Load(x, i));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterElementwiseOps(OpRegistry& r) {
  for (int i = 0; i < static_cast<int>(std::size(kBinaryOps)); ++i) {
    r.Add(MakeOp<BinaryAttrs, ParseBinary, BinaryRule, BinaryKernel>(kBinaryOps[i].name, {2, 2}, {1, 1}, i));
  }
  for (int i = 0; i < static_cast<int>(std::size(kUnaryOps)); ++i) {
    r.Add(MakeOp<UnaryAttrs, ParseUnary, UnaryRule, UnaryKernel>(kUnaryOps[i].first, {1, 1}, {1, 1}, i));
  }
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, WhereRule, WhereKernel>("Where", {3, 3}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, SiluMulRule, SiluMulKernel>("SiluMul", {2, 2}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, NotRule, NotKernel>("Not", {1, 1}, {1, 1}));
  r.Add(MakeOp<NoAttrs, ParseNoAttrs, CastRule, CastKernel>("Cast", {1, 1}, {1, 1}));
}

}  // namespace qeff::device
