#include "common/chat_template/operators.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

const char* OpSymbol(ast::BinOp op) {
  switch (op) {
    case ast::BinOp::kAdd: return "+";
    case ast::BinOp::kSub: return "-";
    case ast::BinOp::kMul: return "*";
    case ast::BinOp::kDiv: return "/";
    case ast::BinOp::kFloorDiv: return "//";
    case ast::BinOp::kMod: return "%";
    case ast::BinOp::kPow: return "** or pow()";
    case ast::BinOp::kConcat: return "~";
  }
  return "?";
}

[[noreturn]] void Unsupported(ast::BinOp op, const Value& a, const Value& b) {
  ThrowType(std::string("unsupported operand type(s) for ") + OpSymbol(op) + ": '" + a.TypeName() + "' and '" +
            b.TypeName() + "'");
}

[[noreturn]] void Overflow() { ThrowType("integer overflow (this implementation uses 64-bit integers)"); }

void FailIfUndefined(const Value& a, const Value& b) {
  if (a.is_undefined()) ThrowUndefined(a.undefined_hint());
  if (b.is_undefined()) ThrowUndefined(b.undefined_hint());
}

Value Repeat(Interp& in, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? SameKind(seq, "") : Value::List({}, seq.is_tuple());
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && static_cast<uint64_t>(n) > (in.limits().max_output_bytes / s.size())) {
      in.CheckSize(in.limits().max_output_bytes + 1);
    }
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    in.Charge(out.size());
    return SameKind(seq, std::move(out));
  }
  const ValueList& items = seq.items();
  if (!items.empty() && static_cast<uint64_t>(n) > in.limits().max_list_items / items.size()) {
    in.CheckItems(in.limits().max_list_items + 1);
  }
  ValueList out;
  out.reserve(items.size() * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  in.Charge(out.size() * 8);
  return Value::List(std::move(out), seq.is_tuple());
}

double FloatFloorDiv(double a, double b) {
  // CPython's float_floor_div via divmod.
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div != 0) {
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    return floordiv;
  }
  return std::copysign(0.0, a / b);
}

double FloatMod(double a, double b) {
  double mod = std::fmod(a, b);
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

Value Arith(Interp& in, ast::BinOp op, const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    const int64_t x = a.int_value(), y = b.int_value();
    int64_t r = 0;
    switch (op) {
      case ast::BinOp::kAdd:
        if (__builtin_add_overflow(x, y, &r)) Overflow();
        return Value::Int(r);
      case ast::BinOp::kSub:
        if (__builtin_sub_overflow(x, y, &r)) Overflow();
        return Value::Int(r);
      case ast::BinOp::kMul:
        if (__builtin_mul_overflow(x, y, &r)) Overflow();
        return Value::Int(r);
      case ast::BinOp::kDiv:
        if (y == 0) ThrowType("division by zero");
        return Value::Float(static_cast<double>(x) / static_cast<double>(y));
      case ast::BinOp::kFloorDiv: {
        if (y == 0) ThrowType("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) Overflow();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::Int(q);
      }
      case ast::BinOp::kMod: {
        if (y == 0) ThrowType("integer modulo by zero");
        if (y == -1) return Value::Int(0);
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::Int(m);
      }
      case ast::BinOp::kPow: {
        if (y < 0) {
          if (x == 0) ThrowType("0.0 cannot be raised to a negative power");
          return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
        }
        int64_t result = 1, base = x, e = y;
        while (e > 0) {
          if (e & 1) {
            if (__builtin_mul_overflow(result, base, &result)) Overflow();
          }
          e >>= 1;
          if (e > 0 && __builtin_mul_overflow(base, base, &base)) Overflow();
        }
        return Value::Int(result);
      }
      default:
        break;
    }
  }
  const double x = a.float_value(), y = b.float_value();
  switch (op) {
    case ast::BinOp::kAdd:
      return Value::Float(x + y);
    case ast::BinOp::kSub:
      return Value::Float(x - y);
    case ast::BinOp::kMul:
      return Value::Float(x * y);
    case ast::BinOp::kDiv:
      if (y == 0) ThrowType("float division by zero");
      return Value::Float(x / y);
    case ast::BinOp::kFloorDiv:
      if (y == 0) ThrowType("float floor division by zero");
      return Value::Float(FloatFloorDiv(x, y));
    case ast::BinOp::kMod:
      if (y == 0) ThrowType("float modulo");
      return Value::Float(FloatMod(x, y));
    case ast::BinOp::kPow: {
      if (x == 0 && y < 0) ThrowType("0.0 cannot be raised to a negative power");
      if (x < 0 && y != std::floor(y)) ThrowType("negative number cannot be raised to a fractional power");
      const double r = std::pow(x, y);
      if (std::isinf(r) && !std::isinf(x) && !std::isinf(y)) ThrowType("(34, 'Numerical result out of range')");
      return Value::Float(r);
    }
    default:
      break;
  }
  (void)in;
  Unsupported(op, a, b);
}

// ---- printf-style formatting ----
struct Spec {
  std::string flags;
  int width = -1;
  int precision = -1;
  char conv = 's';
};

std::string Pad(const std::string& s, const Spec& spec) {
  const size_t len = pystr::Length(s);
  if (spec.width < 0 || len >= static_cast<size_t>(spec.width)) return s;
  const std::string fill(static_cast<size_t>(spec.width) - len, ' ');
  return spec.flags.find('-') != std::string::npos ? s + fill : fill + s;
}

std::string FormatOne(const Spec& spec, const Value& v, bool escape) {
  const char c = spec.conv;
  if (c == 's' || c == 'r' || c == 'a') {
    std::string s = c == 's' ? v.ToStr() : v.Repr();
    if (escape && !(c == 's' && v.is_markup())) s = HtmlEscape(s);  // Markup % args escapes them
    if (spec.precision >= 0) {
      s = pystr::Encode(std::u32string_view(pystr::Decode(s)).substr(0, static_cast<size_t>(spec.precision)));
    }
    return Pad(s, spec);
  }
  if (c == 'c') {
    std::string s;
    if (v.is_integral()) {
      const int64_t cp = v.int_value();
      if (cp < 0 || cp > 0x10FFFF) ThrowType("%c arg not in range(0x110000)");
      pystr::AppendUtf8(s, static_cast<char32_t>(cp));
    } else if (v.is_string() && pystr::Length(v.str()) == 1) {
      s = v.str();
    } else {
      ThrowType("%c requires int or char");
    }
    return Pad(s, spec);
  }
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  std::string fmt = "%" + spec.flags;
  if (spec.width >= 0) fmt += std::to_string(spec.width);
  if (spec.precision >= 0) fmt += "." + std::to_string(spec.precision);
  // Widths are bounded by the spec parser; size the buffer for them.
  std::vector<char> storage(static_cast<size_t>(std::max(spec.width, 0)) +
                            static_cast<size_t>(std::max(spec.precision, 0)) + 1024);
  char* buf = storage.data();
  const size_t bufsize = storage.size();
  if (c == 'd' || c == 'i' || c == 'u' || c == 'x' || c == 'X' || c == 'o') {
    int64_t n;
    if (v.is_integral()) {
      n = v.int_value();
    } else if (v.is_float() && (c == 'd' || c == 'i' || c == 'u')) {
      const double f = v.float_value();
      if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) ThrowType("cannot convert float to integer");
      n = static_cast<int64_t>(std::trunc(f));
    } else {
      ThrowType(std::string("%") + c + " format: " + (c == 'd' || c == 'i' || c == 'u' ? "a real number" : "an integer") +
                " is required, not " + v.TypeName());
    }
    const char conv = c == 'i' || c == 'u' ? 'd' : c;
    if (conv == 'd') {
      std::snprintf(buf, bufsize, (fmt + "lld").c_str(), static_cast<long long>(n));
      return buf;
    }
    // Python prints negative hex/octal with a sign, not in two's complement.
    std::string body;
    const unsigned long long mag =
        n < 0 ? static_cast<unsigned long long>(-(n + 1)) + 1ULL : static_cast<unsigned long long>(n);
    std::snprintf(buf, bufsize, (std::string("%") + (spec.flags.find('#') != std::string::npos ? "#" : "") +
                                     (spec.precision >= 0 ? "." + std::to_string(spec.precision) : "") + "ll" + conv)
                                        .c_str(),
                  mag);
    body = buf;
    if (conv == 'o' && spec.flags.find('#') != std::string::npos && body.rfind("0o", 0) != 0) {
      body = "0o" + (body.size() > 1 && body[0] == '0' ? body.substr(1) : body);
    }
    if (n < 0) {
      body = "-" + body;
    } else if (spec.flags.find('+') != std::string::npos) {
      body = "+" + body;
    } else if (spec.flags.find(' ') != std::string::npos) {
      body = " " + body;
    }
    if (spec.width >= 0 && body.size() < static_cast<size_t>(spec.width)) {
      const size_t fill = static_cast<size_t>(spec.width) - body.size();
      if (spec.flags.find('-') != std::string::npos) {
        body += std::string(fill, ' ');
      } else if (spec.flags.find('0') != std::string::npos) {
        size_t at = (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
        if (body.compare(at, 2, "0x") == 0 || body.compare(at, 2, "0X") == 0 || body.compare(at, 2, "0o") == 0) at += 2;
        body.insert(at, fill, '0');
      } else {
        body = std::string(fill, ' ') + body;
      }
    }
    return body;
  }
  if (c == 'e' || c == 'E' || c == 'f' || c == 'F' || c == 'g' || c == 'G') {
    if (!v.is_number()) ThrowType(std::string("must be real number, not ") + v.TypeName());
    const int width = spec.width;
    const int precision = spec.precision > 400 ? 400 : spec.precision;
    fmt = "%" + spec.flags;
    if (width >= 0) fmt += std::to_string(width);
    if (precision >= 0) fmt += "." + std::to_string(precision);
    std::snprintf(buf, bufsize, (fmt + c).c_str(), v.float_value());
    return buf;
  }
  ThrowType(std::string("unsupported format character '") + c + "'");
}

}  // namespace

Value BinaryOp(Interp& in, ast::BinOp op, const Value& a, const Value& b) {
  if (op == ast::BinOp::kConcat) {
    std::string s = a.ToStr();
    const std::string t = b.ToStr();
    in.CheckSize(s.size() + t.size());
    in.Charge(s.size() + t.size());
    return Value::Str(s + t);
  }
  // str % Undefined is fine in Python: Undefined has __getitem__, so it counts as a mapping.
  if (op == ast::BinOp::kMod && a.is_string()) return SameKind(a, PercentFormat(in, a.str(), b, a.is_markup()));
  FailIfUndefined(a, b);
  if (a.is_number() && b.is_number()) return Arith(in, op, a, b);
  switch (op) {
    case ast::BinOp::kAdd:
      if (a.is_string() && b.is_string()) {
        if (a.is_markup() || b.is_markup()) {
          // Markup.__add__/__radd__: the plain side is HTML-escaped, the result is Markup.
          const Value x = Escape(a), y = Escape(b);
          in.CheckSize(x.str().size() + y.str().size());
          in.Charge(x.str().size() + y.str().size());
          return Value::Markup(x.str() + y.str());
        }
        in.CheckSize(a.str().size() + b.str().size());
        in.Charge(a.str().size() + b.str().size());
        return Value::Str(a.str() + b.str());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        in.CheckItems(a.items().size() + b.items().size());
        in.Charge(8 * (a.items().size() + b.items().size()));
        ValueList out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return Value::List(std::move(out), a.is_tuple());
      }
      if (a.is_string()) ThrowType("can only concatenate str (not \"" + b.TypeName() + "\") to str");
      if (a.is_list()) ThrowType("can only concatenate " + a.TypeName() + " (not \"" + b.TypeName() + "\") to " + a.TypeName());
      break;
    case ast::BinOp::kMul:
      if ((a.is_string() || a.is_list()) && b.is_integral()) return Repeat(in, a, b.int_value());
      if ((b.is_string() || b.is_list()) && a.is_integral()) return Repeat(in, b, a.int_value());
      break;
    case ast::BinOp::kMod:
      if (a.is_string()) return SameKind(a, PercentFormat(in, a.str(), b, a.is_markup()));
      break;
    default:
      break;
  }
  Unsupported(op, a, b);
}

Value Negate(const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  if (v.is_integral()) {
    if (v.int_value() == std::numeric_limits<int64_t>::min()) Overflow();
    return Value::Int(-v.int_value());
  }
  if (v.is_float()) return Value::Float(-v.float_value());
  ThrowType("bad operand type for unary -: '" + v.TypeName() + "'");
}

Value Positive(const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  if (v.is_integral()) return Value::Int(v.int_value());
  if (v.is_float()) return v;
  ThrowType("bad operand type for unary +: '" + v.TypeName() + "'");
}

bool Less(const Value& a, const Value& b) {
  FailIfUndefined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() < b.int_value();
    return a.float_value() < b.float_value();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code point order
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const ValueList &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equals(x[i], y[i])) return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  ThrowType("'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

bool CompareOp(ast::CmpOp op, const Value& a, const Value& b) {
  switch (op) {
    case ast::CmpOp::kEq:
      return Equals(a, b);
    case ast::CmpOp::kNe:
      return !Equals(a, b);
    case ast::CmpOp::kLt:
      return Less(a, b);
    case ast::CmpOp::kGt:
      return Less(b, a);
    case ast::CmpOp::kLe:
      return Less(a, b) || Equals(a, b);
    case ast::CmpOp::kGe:
      return Less(b, a) || Equals(a, b);
    case ast::CmpOp::kIn:
      return Contains(b, a);
    case ast::CmpOp::kNotIn:
      return !Contains(b, a);
  }
  return false;
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kString:
      if (!item.is_string()) ThrowType("'in <string>' requires string as left operand, not " + item.TypeName());
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList: {
      int kind = 0;
      if (const std::string* error = container.deferred_error(&kind)) {
        throw TemplateError(static_cast<ErrorKind>(kind), *error);
      }
      for (const Value& e : container.items()) {
        if (Equals(e, item)) return true;
      }
      return false;
    }
    case Kind::kDict:
      if (!IsHashable(item)) ThrowType("unhashable type: '" + item.TypeName() + "'");
      return container.dict().Find(item) != nullptr;
    case Kind::kUndefined:
      return false;  // jinja2's Undefined iterates as empty
    default:
      ThrowType("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

std::string PercentFormat(Interp& in, const std::string& fmt, const Value& args, bool escape) {
  std::string out;
  const bool tuple = args.is_tuple();
  size_t next_arg = 0;
  bool used_single = false, used_mapping = false;
  auto take = [&]() -> Value {
    if (tuple) {
      if (next_arg >= args.items().size()) ThrowType("not enough arguments for format string");
      return args.items()[next_arg++];
    }
    if (used_single) ThrowType("not enough arguments for format string");
    used_single = true;
    return args;
  };
  size_t i = 0;
  while (i < fmt.size()) {
    const char ch = fmt[i];
    if (ch != '%') {
      out.push_back(ch);
      ++i;
      continue;
    }
    if (++i >= fmt.size()) ThrowType("incomplete format");
    if (fmt[i] == '%') {
      out.push_back('%');
      ++i;
      continue;
    }
    Spec spec;
    Value value;
    bool have_value = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) ThrowType("incomplete format key");
      if (!args.is_dict()) ThrowType("format requires a mapping");
      const Value* v = args.dict().Find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (v == nullptr) ThrowType("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
      value = *v;
      have_value = true;
      used_mapping = true;
      i = close + 1;
    }
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) spec.flags.push_back(fmt[i++]);
    auto number = [&](int* out_n) {
      if (i < fmt.size() && fmt[i] == '*') {
        ++i;
        Value w = take();
        if (!w.is_integral()) ThrowType("* wants int");
        *out_n = static_cast<int>(std::max<int64_t>(-1, std::min<int64_t>(w.int_value(), 100000)));
        return;
      }
      int n = -1;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        n = (n < 0 ? 0 : n) * 10 + (fmt[i++] - '0');
        if (n > 100000) ThrowType("width too big");
      }
      *out_n = n;
    };
    number(&spec.width);
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      number(&spec.precision);
      if (spec.precision < 0) spec.precision = 0;
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) ThrowType("incomplete format");
    spec.conv = fmt[i++];
    if (!have_value) value = take();
    std::string piece = FormatOne(spec, value, escape);
    in.CheckSize(out.size() + piece.size());
    out += piece;
  }
  if (tuple && next_arg < args.items().size()) ThrowType("not all arguments converted during string formatting");
  // Python treats any non-tuple with __getitem__ (dict, list) as a mapping: no surplus error.
  if (!tuple && !used_single && !used_mapping && !args.is_dict() && !args.is_list() && !args.is_undefined()) {
    ThrowType("not all arguments converted during string formatting");
  }
  in.Charge(out.size());
  return out;
}

}  // namespace qeff::chat
