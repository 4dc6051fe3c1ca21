#include "common/chat_template/filters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/chat_template/access.h"
#include "common/chat_template/args.h"
#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/jinja_tests.h"
#include "common/chat_template/json_dump.h"
#include "common/chat_template/operators.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

using FilterFn = Value (*)(Interp& in, const Value& v, const CallArgs& args);

// ---- helpers ----

// jinja2's make_attrgetter: dotted path, integer parts as indices, each step via getitem.
Value GetPath(Interp& in, const Value& item, const Value& attribute) {
  if (attribute.is_integral()) return GetItem(in, item, attribute);
  const std::string path = attribute.ToStr();
  Value cur = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = GetItem(in, cur, numeric && part.size() < 18 ? Value::Int(std::stoll(part)) : Value::Str(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort key with jinja2's ignore_case: strings compare lowercased unless case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::Str(pystr::Lower(v.str()));
  return v;
}

// Python's int(str, base): optional sign, underscores between digits, surrounding whitespace.
std::optional<int64_t> ParsePyInt(const std::string& text, int base) {
  std::string s = pystr::Strip(text, std::nullopt, true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < s.size() && s[i] == '0') {
      const char p = static_cast<char>(s[i + 1] | 0x20);
      const int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (prefixed && (base == 0 || base == prefixed)) {
        base = prefixed;
        i += 2;
        if (i < s.size() && s[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (!prev_digit || i + 1 >= s.size()) return std::nullopt;
      prev_digit = false;
      continue;
    }
    int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'z' ? (c | 0x20) - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return std::nullopt;
    prev_digit = true;
  }
  if (!prev_digit) return std::nullopt;
  return neg ? -v : v;
}

// Python's float(str).
std::optional<double> ParsePyFloat(const std::string& text) {
  std::string s = pystr::Strip(text, std::nullopt, true, true);
  std::string lower = pystr::Lower(s);
  std::string body = lower;
  double sign = 1;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    sign = body[0] == '-' ? -1 : 1;
    body.erase(0, 1);
  }
  if (body == "inf" || body == "infinity") return sign * HUGE_VAL;
  if (body == "nan") return std::nan("");
  std::string clean;
  bool prev_digit = false, digits = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool is_digit = c >= '0' && c <= '9';
    if (c == '_') {
      if (!prev_digit || i + 1 >= s.size() || !(s[i + 1] >= '0' && s[i + 1] <= '9')) return std::nullopt;
      continue;
    }
    if (!is_digit && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') return std::nullopt;
    digits = digits || is_digit;
    prev_digit = is_digit;
    clean.push_back(c);
  }
  if (!digits) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(clean.c_str(), &end);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

// Generator filters fail only when consumed; a non-iterable input gives a failing generator.
std::optional<Value> LazyFailure(const Value& v) {
  if (v.deferred_error() != nullptr) return v;  // pass an upstream failure along, still lazily
  switch (v.kind()) {
    case Kind::kList:
    case Kind::kDict:
    case Kind::kString:
    case Kind::kUndefined:
      return std::nullopt;
    default:
      return Value::FailingGenerator(static_cast<int>(ErrorKind::kType), "'" + v.TypeName() + "' object is not iterable");
  }
}

// Runs a generator filter's body now, but turns its error into a FailingGenerator: jinja2
// would only raise it when the generator is consumed (resource limits still stop at once).
template <typename F>
Value Deferred(F&& body) {
  try {
    return body();
  } catch (const TemplateError& e) {
    if (e.kind() == ErrorKind::kLimit || e.kind() == ErrorKind::kRaised) throw;
    return Value::FailingGenerator(static_cast<int>(e.kind()), e.message());
  }
}

// select/reject/selectattr/rejectattr share jinja2's prepare_select_or_reject.
Value SelectOrReject(Interp& in, const Value& seq, const CallArgs& args, bool select, bool by_attr) {
  if (!seq.Truthy()) return Value::Sequence({}, Seq::kGenerator);  // jinja2 checks `if value:` first
  if (auto lazy = LazyFailure(seq)) return *lazy;
  size_t off = 0;
  Value attribute;
  if (by_attr) {
    if (args.args.empty()) ThrowType("Missing parameter for attribute name");
    attribute = args.args[0];
    off = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.args.size() > off) {
    if (!args.args[off].is_string()) ThrowType("test name must be a string");
    test = args.args[off].str();
    if (!IsKnownTest(*test)) ThrowType("No test named '" + *test + "'.");
    test_args.args.assign(args.args.begin() + static_cast<std::ptrdiff_t>(off) + 1, args.args.end());
    test_args.kwargs = args.kwargs;
  }
  ValueList out;
  for (const Value& item : Iterate(in, seq)) {
    in.Charge(64);
    const Value subject = by_attr ? GetPath(in, item, attribute) : item;
    const bool hit = test ? ApplyTest(in, *test, subject, test_args) : subject.Truthy();
    if (hit == select) out.push_back(item);
  }
  return Value::Sequence(std::move(out), Seq::kGenerator);
}

std::vector<std::pair<Value, Value>> SortedBy(Interp& in, ValueList items, const Value& attribute,
                                              bool case_sensitive) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& v : items) {
    Value key = attribute.is_none() || attribute.is_undefined() ? v : GetPath(in, v, attribute);
    keyed.emplace_back(SortKey(key, case_sensitive), std::move(v));
  }
  in.Charge(64 * keyed.size());
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return Less(a.first, b.first); });
  return keyed;
}

Value Length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return Value::Int(0);
    case Kind::kString:
      return Value::Int(static_cast<int64_t>(pystr::Length(v.str())));
    case Kind::kList:
      if (v.is_generator()) break;
      return Value::Int(static_cast<int64_t>(v.items().size()));
    case Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.dict().size()));
    default:
      break;
  }
  ThrowType("object of type '" + v.TypeName() + "' has no len()");
}

Value MinMax(Interp& in, const Value& v, const CallArgs& args, bool max) {
  auto p = BindArgs(max ? "max" : "min", args, {{"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}});
  ValueList items = Iterate(in, v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  auto keyed = SortedBy(in, std::move(items), p[1], p[0].Truthy());
  // Python's min/max return the first of equal extremes.
  if (!max) return keyed.front().second;
  size_t best = 0;
  for (size_t i = 1; i < keyed.size(); ++i) {
    if (Less(keyed[best].first, keyed[i].first)) best = i;
  }
  return keyed[best].second;
}

Value ToJson(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("tojson", args,
                    {{"ensure_ascii", Value::Bool(false)},
                     {"indent", Value::None()},
                     {"separators", Value::None()},
                     {"sort_keys", Value::Bool(false)}});
  JsonDumpOptions o;
  o.ensure_ascii = p[0].Truthy();
  o.sort_keys = p[3].Truthy();
  if (p[1].is_string()) {
    o.indent = p[1].str();
  } else if (p[1].is_integral()) {
    o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(p[1].int_value(), 0, 1024)), ' ');
  } else if (!p[1].is_none()) {
    ThrowType("can't multiply sequence by non-int of type '" + p[1].TypeName() + "'");
  }
  if (o.indent) o.item_separator = ",";
  if (!p[2].is_none()) {
    if (!p[2].is_list() || p[2].items().size() != 2 || !p[2].items()[0].is_string() || !p[2].items()[1].is_string()) {
      ThrowType("separators must be a pair of strings");
    }
    o.item_separator = p[2].items()[0].str();
    o.key_separator = p[2].items()[1].str();
  }
  std::string out = JsonDumps(v, o);
  in.CheckSize(out.size());
  in.Charge(out.size());
  return Value::Str(std::move(out));
}

Value Indent(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("indent", args, {{"width", Value::Int(4)}, {"first", Value::Bool(false)}, {"blank", Value::Bool(false)}});
  std::string indention;
  if (p[0].is_string()) {
    indention = p[0].str();
  } else {
    indention.assign(static_cast<size_t>(std::clamp<int64_t>(ArgInt("indent", p[0]), 0, 1024)), ' ');
  }
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  if (!v.is_string()) ThrowType("unsupported operand type(s) for +=: '" + v.TypeName() + "' and 'str'");
  const std::string s = v.str() + "\n";  // jinja2's quirk so splitlines keeps a trailing empty line
  std::vector<std::string> lines = pystr::SplitLines(s, false);
  in.CheckSize(s.size() + lines.size() * indention.size());
  std::string rv;
  if (p[2].Truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention + lines[i];
    }
  }
  if (p[1].Truthy()) rv = indention + rv;
  return SameKind(v, rv);
}

Value Round(const Value& v, const CallArgs& args) {
  auto p = BindArgs("round", args, {{"precision", Value::Int(0)}, {"method", Value::Str("common")}});
  const int64_t precision = std::clamp<int64_t>(ArgInt("round", p[0]), -308, 308);
  const std::string method = ArgStr("round", p[1]);
  if (method != "common" && method != "ceil" && method != "floor") {
    ThrowType("method must be common, ceil or floor");
  }
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  if (!v.is_number()) ThrowType("type " + v.TypeName() + " doesn't define __round__ method");
  if (method == "common") {
    if (v.is_integral()) {
      if (precision >= 0) return Value::Int(v.int_value());
      const double scale = std::pow(10.0, static_cast<double>(-precision));
      const double r = std::nearbyint(static_cast<double>(v.int_value()) / scale) * scale;
      if (!(std::fabs(r) < 9.2e18)) ThrowType("integer overflow in round()");
      return Value::Int(static_cast<int64_t>(r));
    }
    const double x = v.float_value();
    if (!std::isfinite(x)) return v;
    if (precision >= 0) {
      // printf rounds the exact binary value half-to-even, as CPython's round() does.
      char buf[512];
      std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::min<int64_t>(precision, 340)), x);
      return Value::Float(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::Float(std::nearbyint(x / scale) * scale);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.float_value() * scale;
  return Value::Float((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value Truncate(const Value& v, const CallArgs& args) {
  auto p = BindArgs("truncate", args,
                    {{"length", Value::Int(255)}, {"killwords", Value::Bool(false)}, {"end", Value::Str("...")},
                     {"leeway", Value::Int(5)}});
  // jinja2 takes len() of the value itself (no str()), and returns it unchanged when short.
  if (v.is_undefined()) return v;
  if (!v.is_string()) {
    if (v.is_generator() || (v.kind() != Kind::kList && !v.is_dict())) {
      ThrowType("object of type '" + v.TypeName() + "' has no len()");
    }
    const int64_t n = static_cast<int64_t>(v.is_dict() ? v.dict().size() : v.items().size());
    const long double limit = static_cast<long double>(ArgInt("truncate", p[0])) +
                              static_cast<long double>(p[3].is_none() ? 5 : ArgInt("truncate", p[3]));
    if (static_cast<long double>(n) <= limit) return v;
    ThrowType("'" + v.TypeName() + "' object has no attribute 'rsplit'");
  }
  const std::u32string s = pystr::Decode(v.str());
  const int64_t length = ArgInt("truncate", p[0]);
  const std::u32string end = pystr::Decode(ArgStr("truncate", p[2]));
  const int64_t leeway = p[3].is_none() ? 5 : ArgInt("truncate", p[3]);
  if (length < static_cast<int64_t>(end.size())) ThrowType("expected length >= " + std::to_string(end.size()));
  if (leeway < 0) ThrowType("expected leeway >= 0");
  if (static_cast<long double>(s.size()) <= static_cast<long double>(length) + static_cast<long double>(leeway)) {
    return Value::Str(pystr::Encode(s));
  }
  std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
  if (!p[1].Truthy()) {
    const size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head.resize(sp);
  }
  return Value::Str(pystr::Encode(head + end));
}

Value Map(Interp& in, const Value& v, const CallArgs& args) {
  if (!v.Truthy()) return Value::Sequence({}, Seq::kGenerator);  // jinja2 checks `if value:` first
  if (auto lazy = LazyFailure(v)) return *lazy;
  ValueList items = Iterate(in, v);
  ValueList out;
  out.reserve(items.size());
  if (args.args.empty()) {
    Value attribute, dflt;
    bool have_default = false;
    for (const auto& [k, val] : args.kwargs) {
      if (k == "attribute") {
        attribute = val;
      } else if (k == "default") {
        dflt = val;
        have_default = true;
      } else {
        ThrowType("Unexpected keyword argument '" + k + "'");
      }
    }
    if (attribute.is_undefined()) ThrowType("map requires a filter argument");
    for (const Value& item : items) {
      in.Charge(64);
      Value got = GetPath(in, item, attribute);
      out.push_back(have_default && got.is_undefined() ? dflt : got);
    }
    return Value::Sequence(std::move(out), Seq::kGenerator);
  }
  if (!args.args[0].is_string()) ThrowType("map filter name must be a string");
  const std::string name = args.args[0].str();
  if (!IsKnownFilter(name)) ThrowType("No filter named '" + name + "'.");
  CallArgs rest;
  rest.args.assign(args.args.begin() + 1, args.args.end());
  rest.kwargs = args.kwargs;
  for (const Value& item : items) {
    in.Charge(64);
    out.push_back(ApplyFilter(in, name, item, rest));
  }
  return Value::Sequence(std::move(out), Seq::kGenerator);
}

Value Join(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("join", args, {{"d", Value::Str("")}, {"attribute", Value::None()}});
  const std::string sep = p[0].ToStr();
  const bool markup = p[0].is_markup();  // Markup.join escapes the items
  std::string out;
  bool first = true;
  for (const Value& item : Iterate(in, v)) {
    if (!first) out += sep;
    first = false;
    const Value piece = p[1].is_none() ? item : GetPath(in, item, p[1]);
    out += markup ? Escape(piece).str() : piece.ToStr();
    in.CheckSize(out.size());
  }
  in.Charge(out.size());
  return markup ? Value::Markup(std::move(out)) : Value::Str(std::move(out));
}

Value Unique(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("unique", args, {{"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}});
  if (auto lazy = LazyFailure(v)) return *lazy;
  ValueList out, seen;
  for (const Value& item : Iterate(in, v)) {
    in.Charge(8 * seen.size() + 64);
    Value key = SortKey(p[1].is_none() ? item : GetPath(in, item, p[1]), p[0].Truthy());
    if (!IsHashable(key)) ThrowType("unhashable type: '" + key.TypeName() + "'");
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::Sequence(std::move(out), Seq::kGenerator);
}

Value DictSort(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("dictsort", args,
                    {{"case_sensitive", Value::Bool(false)}, {"by", Value::Str("key")}, {"reverse", Value::Bool(false)}});
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  if (!v.is_dict()) ThrowType("'" + v.TypeName() + "' object has no attribute 'items'");
  const std::string by = ArgStr("dictsort", p[1]);
  if (by != "key" && by != "value") ThrowType("You can only sort by either \"key\" or \"value\"");
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.dict().items()) {
    keyed.emplace_back(SortKey(by == "key" ? k : val, p[0].Truthy()), Value::List({k, val}, true));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return Less(a.first, b.first); });
  if (p[2].Truthy()) std::reverse(keyed.begin(), keyed.end());
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  in.Charge(64 * out.size());
  return Value::List(std::move(out));
}

Value Sort(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("sort", args,
                    {{"reverse", Value::Bool(false)}, {"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}});
  auto keyed = SortedBy(in, Iterate(in, v), p[2], p[1].Truthy());
  if (p[0].Truthy()) {
    // sorted(reverse=True) keeps equal elements in their original order.
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return Less(b.first, a.first); });
  }
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::List(std::move(out));
}

Value Batch(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("batch", args, {{"linecount", Value(), true}, {"fill_with", Value::None()}});
  const int64_t n = ArgInt("batch", p[0]);
  if (n <= 0) ThrowType("batch size must be positive");
  if (auto lazy = LazyFailure(v)) return *lazy;
  ValueList out, cur;
  for (const Value& item : Iterate(in, v)) {
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::List(std::move(cur)));
      cur.clear();
    }
    cur.push_back(item);
  }
  if (!cur.empty()) {
    if (!p[1].is_none()) {
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(p[1]);
    }
    out.push_back(Value::List(std::move(cur)));
  }
  return Value::Sequence(std::move(out), Seq::kGenerator);
}

Value Sum(Interp& in, const Value& v, const CallArgs& args) {
  auto p = BindArgs("sum", args, {{"attribute", Value::None()}, {"start", Value::Int(0)}});
  Value total = p[1];
  for (const Value& item : Iterate(in, v)) {
    total = BinaryOp(in, ast::BinOp::kAdd, total, p[0].is_none() ? item : GetPath(in, item, p[0]));
  }
  return total;
}

Value Reverse(Interp& in, const Value& v) {
  if (v.is_string()) {
    std::u32string cps = pystr::Decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return SameKind(v, pystr::Encode(cps));
  }
  if (v.kind() == Kind::kList || v.is_dict() || v.is_undefined()) {
    ValueList items = Iterate(in, v);
    std::reverse(items.begin(), items.end());
    // jinja2 returns reversed(value), an iterator, or a list when the value is not reversible.
    return Value::Sequence(std::move(items), v.is_generator() ? Seq::kList : Seq::kGenerator);
  }
  ThrowType("argument to reversed() must be a sequence");
}

Value IntFilter(const Value& v, const CallArgs& args) {
  auto p = BindArgs("int", args, {{"default", Value::Int(0)}, {"base", Value::Int(10)}});
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());  // Undefined.__int__ raises
  if (v.is_string()) {
    if (auto i = ParsePyInt(v.str(), static_cast<int>(ArgInt("int", p[1])))) return Value::Int(*i);
    if (auto f = ParsePyFloat(v.str())) {
      if (std::isfinite(*f) && std::fabs(*f) < 9.2e18) return Value::Int(static_cast<int64_t>(std::trunc(*f)));
    }
    return p[0];
  }
  if (v.is_integral()) return Value::Int(v.int_value());
  if (v.is_float()) {
    const double f = v.float_value();
    if (std::isnan(f)) return p[0];
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) ThrowType("cannot convert float infinity to integer");
    return Value::Int(static_cast<int64_t>(std::trunc(f)));
  }
  return p[0];
}

Value FloatFilter(const Value& v, const CallArgs& args) {
  auto p = BindArgs("float", args, {{"default", Value::Float(0.0)}});
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());  // Undefined.__float__ raises
  if (v.is_number()) return Value::Float(v.float_value());
  if (v.is_string()) {
    if (auto f = ParsePyFloat(v.str())) return Value::Float(*f);
  }
  return p[0];
}

Value Format(Interp& in, const Value& v, const CallArgs& args) {
  if (!args.args.empty() && !args.kwargs.empty()) {
    ThrowType("can't handle positional and keyword arguments at the same time");
  }
  if (!args.kwargs.empty()) {
    Dict d;
    for (const auto& [k, val] : args.kwargs) d.Set(Value::Str(k), val);
    return SameKind(v, PercentFormat(in, v.ToStr(), Value::MakeDict(std::move(d)), v.is_markup()));
  }
  return SameKind(v, PercentFormat(in, v.ToStr(), Value::List(args.args, true), v.is_markup()));
}

Value WordCount(const Value& v) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : pystr::Decode(v.ToStr())) {
    const bool word = c == '_' || pystr::IsAlpha(c) || pystr::IsDigit(c);
    if (word && !in_word) ++n;
    in_word = word;
  }
  return Value::Int(n);
}

// jinja2's do_title: capitalize each piece between runs of [-\s({\[<].
Value TitleFilter(const Value& v) {
  std::u32string s = pystr::Decode(v.ToStr());
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || pystr::IsSpace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    const bool sep = is_sep(s[i]);
    while (j < s.size() && is_sep(s[j]) == sep) ++j;
    const std::string piece = pystr::Encode(std::u32string_view(s).substr(i, j - i));
    if (sep) {
      out += piece;
    } else {
      std::string first;
      pystr::AppendUtf8(first, s[i]);
      out += pystr::Upper(first) + pystr::Lower(pystr::Encode(std::u32string_view(s).substr(i + 1, j - i - 1)));
    }
    i = j;
  }
  return Value::Str(out);
}

Value Items(const Value& v) {
  if (v.is_undefined()) return Value::Sequence({}, Seq::kGenerator);
  if (!v.is_dict()) {
    return Value::FailingGenerator(static_cast<int>(ErrorKind::kType), "Can only get item pairs from a mapping.");
  }
  ValueList out;
  for (const auto& [k, val] : v.dict().items()) out.push_back(Value::List({k, val}, true));
  return Value::Sequence(std::move(out), Seq::kGenerator);
}

Value First(Interp& in, const Value& v) {
  if (v.is_string()) {
    std::u32string cps = pystr::Decode(v.str());
    if (cps.empty()) return Value::Undefined("No first item, sequence was empty.");
    std::string one;
    pystr::AppendUtf8(one, cps[0]);
    return Value::Str(one);
  }
  ValueList items = Iterate(in, v);
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}

Value Last(Interp& in, const Value& v) {
  if (!v.is_string() && !v.is_list() && !v.is_dict() && !v.is_undefined() &&
      !(v.kind() == Kind::kList && !v.is_generator())) {
    ThrowType("'" + v.TypeName() + "' object is not reversible");
  }
  ValueList items = Iterate(in, v);
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

const std::unordered_map<std::string_view, FilterFn>& Filters() {
  static const auto* filters = new std::unordered_map<std::string_view, FilterFn>{
      {"tojson", ToJson},
      {"trim",
       [](Interp& in, const Value& v, const CallArgs& a) {
         auto p = BindArgs("trim", a, {{"chars", Value::None()}});
         const std::string s = v.ToStr();
         in.Charge(s.size());
         std::optional<std::string> chars = ArgOptStr("trim", p[0]);
         if (chars && v.is_markup()) chars = HtmlEscape(*chars);  // Markup.strip escapes its argument
         return SameKind(v, pystr::Strip(s, chars, true, true));
       }},
      {"length", [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("length", a, {}), Length(v); }},
      {"count", [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("count", a, {}), Length(v); }},
      {"upper",
       [](Interp& in, const Value& v, const CallArgs& a) {
         BindArgs("upper", a, {});
         in.Charge(v.ToStr().size());
         return SameKind(v, pystr::Upper(v.ToStr()));
       }},
      {"lower",
       [](Interp& in, const Value& v, const CallArgs& a) {
         BindArgs("lower", a, {});
         in.Charge(v.ToStr().size());
         return SameKind(v, pystr::Lower(v.ToStr()));
       }},
      {"capitalize",
       [](Interp&, const Value& v, const CallArgs& a) {
         return BindArgs("capitalize", a, {}), SameKind(v, pystr::Capitalize(v.ToStr()));
       }},
      {"title", [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("title", a, {}), TitleFilter(v); }},
      {"replace",
       [](Interp& in, const Value& v, const CallArgs& a) {
         auto p = BindArgs("replace", a, {{"old", Value(), true}, {"new", Value(), true}, {"count", Value::None()}});
         const std::string s = v.ToStr(), old = p[0].ToStr(), repl = p[1].ToStr();
         const int64_t count = p[2].is_none() ? -1 : ArgInt("replace", p[2]);
         const int64_t hits = old.empty() ? static_cast<int64_t>(pystr::Length(s)) + 1 : pystr::Count(s, old);
         const int64_t n = count < 0 ? hits : std::min(count, hits);
         in.CheckSize(s.size() + static_cast<size_t>(n) * repl.size());
         in.Charge(s.size());
         return Value::Str(pystr::Replace(s, old, repl, count));
       }},
      {"join", Join},
      {"first", [](Interp& in, const Value& v, const CallArgs& a) { return BindArgs("first", a, {}), First(in, v); }},
      {"last", [](Interp& in, const Value& v, const CallArgs& a) { return BindArgs("last", a, {}), Last(in, v); }},
      {"default",
       [](Interp&, const Value& v, const CallArgs& a) {
         auto p = BindArgs("default", a, {{"default_value", Value::Str("")}, {"boolean", Value::Bool(false)}});
         return v.is_undefined() || (p[1].Truthy() && !v.Truthy()) ? p[0] : v;
       }},
      {"select",
       [](Interp& in, const Value& v, const CallArgs& a) {
         return Deferred([&] { return SelectOrReject(in, v, a, true, false); });
       }},
      {"reject",
       [](Interp& in, const Value& v, const CallArgs& a) {
         return Deferred([&] { return SelectOrReject(in, v, a, false, false); });
       }},
      {"selectattr",
       [](Interp& in, const Value& v, const CallArgs& a) {
         return Deferred([&] { return SelectOrReject(in, v, a, true, true); });
       }},
      {"rejectattr",
       [](Interp& in, const Value& v, const CallArgs& a) {
         return Deferred([&] { return SelectOrReject(in, v, a, false, true); });
       }},
      {"map", [](Interp& in, const Value& v, const CallArgs& a) { return Deferred([&] { return Map(in, v, a); }); }},
      {"list",
       [](Interp& in, const Value& v, const CallArgs& a) { return BindArgs("list", a, {}), Value::List(Iterate(in, v)); }},
      {"string",
       [](Interp&, const Value& v, const CallArgs& a) {
         return BindArgs("string", a, {}), v.is_markup() ? v : Value::Str(v.ToStr());
       }},
      {"int", [](Interp&, const Value& v, const CallArgs& a) { return IntFilter(v, a); }},
      {"float", [](Interp&, const Value& v, const CallArgs& a) { return FloatFilter(v, a); }},
      {"items", [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("items", a, {}), Items(v); }},
      {"dictsort", DictSort},
      {"sort", Sort},
      {"unique", [](Interp& in, const Value& v, const CallArgs& a) { return Deferred([&] { return Unique(in, v, a); }); }},
      {"indent", Indent},
      {"safe",
       [](Interp&, const Value& v, const CallArgs& a) {
         return BindArgs("safe", a, {}), v.is_markup() ? v : Value::Markup(v.ToStr());
       }},
      {"escape",
       [](Interp&, const Value& v, const CallArgs& a) {
         return BindArgs("escape", a, {}), Escape(v);
       }},
      {"forceescape",
       [](Interp&, const Value& v, const CallArgs& a) {
         return BindArgs("forceescape", a, {}), Value::Markup(HtmlEscape(v.ToStr()));
       }},
      {"round", [](Interp&, const Value& v, const CallArgs& a) { return Round(v, a); }},
      {"abs",
       [](Interp&, const Value& v, const CallArgs& a) {
         BindArgs("abs", a, {});
         if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
         if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
         if (v.is_integral()) return v.int_value() < 0 ? Negate(v) : Value::Int(v.int_value());
         ThrowType("bad operand type for abs(): '" + v.TypeName() + "'");
       }},
      {"batch", [](Interp& in, const Value& v, const CallArgs& a) { return Deferred([&] { return Batch(in, v, a); }); }},
      {"sum", Sum},
      {"min", [](Interp& in, const Value& v, const CallArgs& a) { return MinMax(in, v, a, false); }},
      {"max", [](Interp& in, const Value& v, const CallArgs& a) { return MinMax(in, v, a, true); }},
      {"reverse", [](Interp& in, const Value& v, const CallArgs& a) { return BindArgs("reverse", a, {}), Reverse(in, v); }},
      {"center",
       [](Interp& in, const Value& v, const CallArgs& a) {
         auto p = BindArgs("center", a, {{"width", Value::Int(80)}});
         return CallValue(in, GetAttr(in, v.is_string() ? v : Value::Str(v.ToStr()), "center"), CallArgs{{p[0]}, {}});
       }},
      {"format", Format},
      {"wordcount",
       [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("wordcount", a, {}), WordCount(v); }},
      {"truncate", [](Interp&, const Value& v, const CallArgs& a) { return Truncate(v, a); }},
      {"pprint", [](Interp&, const Value& v, const CallArgs& a) { return BindArgs("pprint", a, {}), Value::Str(v.Repr()); }},
      {"attr",
       [](Interp& in, const Value& v, const CallArgs& a) {
         auto p = BindArgs("attr", a, {{"name", Value(), true}});
         const std::string name = p[0].ToStr();
         Value m = GetAttr(in, v, name);
         // getattr() never reaches dict keys, only methods.
         if (v.is_dict() && !m.is_object()) return Value::Undefined("'dict object' has no attribute '" + name + "'");
         return m;
       }},
  };
  return *filters;
}

std::string_view Canonical(std::string_view name) {
  if (name == "d") return "default";
  if (name == "e") return "escape";
  return name;
}

}  // namespace

bool IsKnownFilter(std::string_view name) { return Filters().count(Canonical(name)) > 0; }

Value ApplyFilter(Interp& in, std::string_view name, const Value& v, const CallArgs& args) {
  auto it = Filters().find(Canonical(name));
  if (it == Filters().end()) ThrowType("No filter named '" + std::string(name) + "'.");
  in.Charge(64);
  return it->second(in, v, args);
}

}  // namespace qeff::chat
