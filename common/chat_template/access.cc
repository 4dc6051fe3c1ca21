#include "common/chat_template/access.h"

#include <algorithm>
#include <unordered_set>

#include "common/chat_template/args.h"
#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

const std::unordered_set<std::string>& StrMethods() {
  static const std::unordered_set<std::string> names = {
      "strip",     "lstrip",     "rstrip",    "split",     "rsplit",     "splitlines", "startswith",
      "endswith",  "upper",      "lower",     "title",     "capitalize", "casefold",   "swapcase",
      "replace",   "find",       "rfind",     "index",     "rindex",     "count",      "join",
      "format",    "isdigit",    "isalpha",   "isalnum",   "isspace",    "islower",    "isupper",
      "isnumeric", "isdecimal",  "center",    "ljust",     "rjust",      "zfill",      "partition",
      "rpartition", "removeprefix", "removesuffix"};
  return names;
}
const std::unordered_set<std::string>& ListMethods() {
  static const std::unordered_set<std::string> names = {"index", "count", "copy"};
  return names;
}
const std::unordered_set<std::string>& DictMethods() {
  static const std::unordered_set<std::string> names = {"items", "keys", "values", "get", "copy"};
  return names;
}
// Mutating methods: the immutable sandbox hands out an unusable Undefined for them.
bool IsUnsafe(const Value& obj, const std::string& name) {
  static const std::unordered_set<std::string> list = {"append", "extend", "insert", "pop", "remove",
                                                       "reverse", "sort", "clear"};
  static const std::unordered_set<std::string> dict = {"clear", "pop", "popitem", "setdefault", "update"};
  if (obj.is_list() && !obj.is_tuple()) return list.count(name) > 0;
  if (obj.is_dict()) return dict.count(name) > 0;
  return false;
}

std::string ObjectTypeRepr(const Value& obj) {
  if (obj.is_none()) return "None";
  return obj.TypeName() + " object";
}

Value NoAttribute(const Value& obj, const std::string& name) {
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute '" + name + "'");
}

Value CallMethod(Interp& in, const Value& self, const std::string& name, const CallArgs& args);

class BoundMethod : public Object {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  std::string TypeName() const override { return "builtin_function_or_method"; }
  std::string Repr() const override {
    return "<built-in method " + name_ + " of " + self_.TypeName() + " object>";
  }
  bool IsCallable() const override { return true; }
  Value Call(Interp& in, CallArgs args) const override { return CallMethod(in, self_, name_, args); }

 private:
  Value self_;
  std::string name_;
};

Value Method(const Value& self, const std::string& name) {
  return Value::Obj(std::make_shared<BoundMethod>(self, name));
}

// Python attribute lookup: methods of str/list/dict, object attributes.
bool PyGetAttr(const Value& obj, const std::string& name, Value* out) {
  switch (obj.kind()) {
    case Kind::kString:
      if (StrMethods().count(name)) {
        *out = Method(obj, name);
        return true;
      }
      return false;
    case Kind::kList:
      if (obj.is_list() && ListMethods().count(name) && (name != "copy" || !obj.is_tuple())) {
        *out = Method(obj, name);
        return true;
      }
      break;
    case Kind::kDict:
      if (DictMethods().count(name)) {
        *out = Method(obj, name);
        return true;
      }
      break;
    case Kind::kObject:
      return obj.object()->GetAttr(name, out);
    default:
      return false;
  }
  if (IsUnsafe(obj, name)) {
    *out = Value::Undefined("access to attribute '" + name + "' of '" + obj.TypeName() + "' object is unsafe.");
    return true;
  }
  return false;
}

// Python index normalization; false when out of range.
bool NormalizeIndex(int64_t idx, size_t len, size_t* out) {
  const int64_t n = static_cast<int64_t>(len);
  if (idx < 0) idx += n;
  if (idx < 0 || idx >= n) return false;
  *out = static_cast<size_t>(idx);
  return true;
}

// ---- str methods ----
std::string SliceCodePoints(const std::string& s, const Value& start, const Value& end) {
  if ((start.is_none() || start.is_undefined()) && (end.is_none() || end.is_undefined())) return s;
  std::u32string cps = pystr::Decode(s);
  const int64_t n = static_cast<int64_t>(cps.size());
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none() || v.is_undefined()) return dflt;
    int64_t i = ArgInt("slice", v);
    if (i < 0) i += n;
    return std::max<int64_t>(0, std::min(i, n));
  };
  const int64_t b = clamp(start, 0), e = clamp(end, n);
  if (b >= e) return "";
  return pystr::Encode(std::u32string_view(cps).substr(static_cast<size_t>(b), static_cast<size_t>(e - b)));
}

Value AffixTest(const std::string& fn, const std::string& s, const CallArgs& args, bool prefix) {
  auto p = BindArgs(fn, args, {{"prefix", Value(), true}, {"start"}, {"end"}});
  const std::string hay = SliceCodePoints(s, p[1], p[2]);
  auto test = [&](const Value& v) {
    const std::string a = ArgStr(fn, v);
    if (a.size() > hay.size()) return false;
    return prefix ? hay.compare(0, a.size(), a) == 0 : hay.compare(hay.size() - a.size(), a.size(), a) == 0;
  };
  if (p[0].is_tuple()) {
    for (const Value& v : p[0].items()) {
      if (test(v)) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (!p[0].is_string()) {
    ThrowType(fn + " first arg must be str or a tuple of str, not " + p[0].TypeName());
  }
  return Value::Bool(test(p[0]));
}

Value StrList(const std::vector<std::string>& parts) {
  ValueList out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back(Value::Str(p));
  return Value::List(std::move(out));
}

template <typename Pred>
Value AllChars(const std::string& s, Pred pred) {
  std::u32string cps = pystr::Decode(s);
  if (cps.empty()) return Value::Bool(false);
  for (char32_t c : cps) {
    if (!pred(c)) return Value::Bool(false);
  }
  return Value::Bool(true);
}

Value Justify(const std::string& fn, const std::string& s, const CallArgs& args, int where) {
  auto p = BindArgs(fn, args, {{"width", Value(), true}, {"fillchar", Value::Str(" ")}});
  const int64_t width = std::min<int64_t>(ArgInt(fn, p[0]), 1 << 20);
  const std::string fill = ArgStr(fn, p[1]);
  if (pystr::Length(fill) != 1) ThrowType("The fill character must be exactly one character long");
  const int64_t len = static_cast<int64_t>(pystr::Length(s));
  if (width <= len) return Value::Str(s);
  const int64_t total = width - len;
  int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < total - left; ++i) out += fill;
  return Value::Str(out);
}

// str.format with positional/keyword fields and !r/!s conversions (no format specs).
std::string StrFormat(Interp& in, const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  size_t i = 0;
  while (i < fmt.size()) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        i += 2;
        continue;
      }
      ThrowType("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      i += 2;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) ThrowType("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close + 1;
    char conv = 's';
    const size_t colon = field.find(':');
    if (colon != std::string::npos) {
      if (colon + 1 != field.size()) ThrowType("format specs in str.format are not supported");
      field.resize(colon);
    }
    const size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size()) ThrowType("invalid conversion in format string");
      conv = field[bang + 1];
      field.resize(bang);
    }
    Value v;
    if (field.empty()) {
      if (auto_index >= args.args.size()) ThrowType("Replacement index " + std::to_string(auto_index) + " out of range");
      v = args.args[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t idx = field.size() > 9 ? args.args.size() : std::stoul(field);
      if (idx >= args.args.size()) ThrowType("Replacement index " + field + " out of range");
      v = args.args[idx];
    } else {
      bool found = false;
      for (const auto& [k, val] : args.kwargs) {
        if (k == field) {
          v = val;
          found = true;
        }
      }
      if (!found) ThrowType("KeyError: '" + field + "'");
    }
    out += conv == 'r' || conv == 'a' ? v.Repr() : v.ToStr();
    in.CheckSize(out.size());
  }
  return out;
}

Value CallStrMethod(Interp& in, const std::string& s, const std::string& name, const CallArgs& args) {
  in.Charge(s.size());
  const std::string fn = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto p = BindArgs(fn, args, {{"chars"}});
    return Value::Str(pystr::Strip(s, ArgOptStr(fn, p[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    auto p = BindArgs(fn, args, {{"sep"}, {"maxsplit", Value::Int(-1)}});
    auto sep = ArgOptStr(fn, p[0]);
    if (sep && sep->empty()) ThrowType("empty separator");
    const int64_t maxsplit = ArgInt(fn, p[1]);
    return StrList(name == "split" ? pystr::Split(s, sep, maxsplit) : pystr::RSplit(s, sep, maxsplit));
  }
  if (name == "splitlines") {
    auto p = BindArgs(fn, args, {{"keepends", Value::Bool(false)}});
    return StrList(pystr::SplitLines(s, p[0].Truthy()));
  }
  if (name == "startswith" || name == "endswith") return AffixTest(fn, s, args, name == "startswith");
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "casefold" ||
      name == "swapcase") {
    BindArgs(fn, args, {});
    if (name == "upper") return Value::Str(pystr::Upper(s));
    if (name == "title") return Value::Str(pystr::Title(s));
    if (name == "capitalize") return Value::Str(pystr::Capitalize(s));
    if (name == "swapcase") {
      std::string out;
      for (char32_t c : pystr::Decode(s)) {
        std::string one;
        pystr::AppendUtf8(one, c);
        out += pystr::IsUpperChar(c) ? pystr::Lower(one) : pystr::IsLowerChar(c) ? pystr::Upper(one) : one;
      }
      return Value::Str(out);
    }
    return Value::Str(pystr::Lower(s));
  }
  if (name == "replace") {
    auto p = BindArgs(fn, args, {{"old", Value(), true}, {"new", Value(), true}, {"count", Value::Int(-1)}});
    const std::string old = ArgStr(fn, p[0]), repl = ArgStr(fn, p[1]);
    const int64_t count = ArgInt(fn, p[2]);
    const int64_t hits = old.empty() ? static_cast<int64_t>(pystr::Length(s)) + 1 : pystr::Count(s, old);
    const int64_t n = count < 0 ? hits : std::min(count, hits);
    in.CheckSize(s.size() + static_cast<size_t>(n) * repl.size());
    return Value::Str(pystr::Replace(s, old, repl, count));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    auto p = BindArgs(fn, args, {{"sub", Value(), true}});
    const int64_t at = pystr::Find(s, ArgStr(fn, p[0]), name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) ThrowType("ValueError: substring not found");
    return Value::Int(at);
  }
  if (name == "count") {
    auto p = BindArgs(fn, args, {{"sub", Value(), true}});
    return Value::Int(pystr::Count(s, ArgStr(fn, p[0])));
  }
  if (name == "join") {
    auto p = BindArgs(fn, args, {{"iterable", Value(), true}});
    std::string out;
    size_t k = 0;
    for (const Value& v : Iterate(in, p[0])) {
      if (!v.is_string()) {
        ThrowType("sequence item " + std::to_string(k) + ": expected str instance, " + v.TypeName() + " found");
      }
      if (k++) out += s;
      out += v.str();
      in.CheckSize(out.size());
    }
    return Value::Str(out);
  }
  if (name == "format") return Value::Str(StrFormat(in, s, args));
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") {
    return AllChars(s, [](char32_t c) { return pystr::IsDigit(c); });
  }
  if (name == "isalpha") return AllChars(s, [](char32_t c) { return pystr::IsAlpha(c); });
  if (name == "isalnum") return AllChars(s, [](char32_t c) { return pystr::IsAlpha(c) || pystr::IsDigit(c); });
  if (name == "isspace") return AllChars(s, [](char32_t c) { return pystr::IsSpace(c); });
  if (name == "islower") return Value::Bool(pystr::IsLower(s));
  if (name == "isupper") return Value::Bool(pystr::IsUpper(s));
  if (name == "center") return Justify(fn, s, args, 0);
  if (name == "ljust") return Justify(fn, s, args, -1);
  if (name == "rjust") return Justify(fn, s, args, 1);
  if (name == "zfill") {
    auto p = BindArgs(fn, args, {{"width", Value(), true}});
    const int64_t width = std::min<int64_t>(ArgInt(fn, p[0]), 1 << 20);
    const int64_t len = static_cast<int64_t>(pystr::Length(s));
    if (width <= len) return Value::Str(s);
    const size_t at = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    std::string out = s;
    out.insert(at, static_cast<size_t>(width - len), '0');
    return Value::Str(out);
  }
  if (name == "partition" || name == "rpartition") {
    auto p = BindArgs(fn, args, {{"sep", Value(), true}});
    const std::string sep = ArgStr(fn, p[0]);
    if (sep.empty()) ThrowType("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return name == "partition"
                 ? Value::List({Value::Str(s), Value::Str(""), Value::Str("")}, true)
                 : Value::List({Value::Str(""), Value::Str(""), Value::Str(s)}, true);
    }
    return Value::List({Value::Str(s.substr(0, at)), Value::Str(sep), Value::Str(s.substr(at + sep.size()))}, true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto p = BindArgs(fn, args, {{"affix", Value(), true}});
    const std::string a = ArgStr(fn, p[0]);
    if (name == "removeprefix") return Value::Str(s.compare(0, a.size(), a) == 0 ? s.substr(a.size()) : s);
    if (a.size() <= s.size() && s.compare(s.size() - a.size(), a.size(), a) == 0) {
      return Value::Str(s.substr(0, s.size() - a.size()));
    }
    return Value::Str(s);
  }
  ThrowType("'str' object has no attribute '" + name + "'");
}

// Markup's methods: most escape their string arguments and return Markup (markupsafe).
Value CallMarkupMethod(Interp& in, const Value& self, const std::string& name, const CallArgs& args) {
  static const std::unordered_set<std::string> wrapped = {"capitalize", "title", "lower", "upper", "replace",
                                                          "ljust", "rjust", "lstrip", "rstrip", "center",
                                                          "strip", "swapcase", "zfill", "partition", "rpartition"};
  auto escaped = [](const CallArgs& a) {
    CallArgs out = a;
    for (Value& v : out.args) {
      if (v.is_string()) v = Escape(v);
    }
    for (auto& kv : out.kwargs) {
      if (kv.second.is_string()) kv.second = Escape(kv.second);
    }
    return out;
  };
  auto markup_items = [](const Value& list) {
    ValueList items = list.items();
    for (Value& v : items) v = Value::Markup(v.str());
    return Value::List(std::move(items), list.is_tuple());
  };
  if (wrapped.count(name)) {
    Value r = CallStrMethod(in, self.str(), name, escaped(args));
    return r.is_list() ? markup_items(r) : Value::Markup(r.str());
  }
  if (name == "split" || name == "rsplit" || name == "splitlines") {
    return markup_items(CallStrMethod(in, self.str(), name, args));
  }
  if (name == "join") {
    auto p = BindArgs("Markup.join", args, {{"iterable", Value(), true}});
    ValueList items;
    for (const Value& v : Iterate(in, p[0])) items.push_back(Value::Str(Escape(v).str()));
    return Value::Markup(CallStrMethod(in, self.str(), name, CallArgs{{Value::List(std::move(items))}, {}}).str());
  }
  if (name == "format") return Value::Markup(CallStrMethod(in, self.str(), name, escaped(args)).str());
  return CallStrMethod(in, self.str(), name, args);
}

Value CallMethod(Interp& in, const Value& self, const std::string& name, const CallArgs& args) {
  if (self.is_markup()) return CallMarkupMethod(in, self, name, args);
  if (self.is_string()) return CallStrMethod(in, self.str(), name, args);
  if (self.is_list()) {
    const std::string fn = self.TypeName() + "." + name;
    if (name == "copy") {
      BindArgs(fn, args, {});
      return self;
    }
    auto p = BindArgs(fn, args, {{"value", Value(), true}});
    int64_t count = 0;
    const ValueList& items = self.items();
    for (size_t i = 0; i < items.size(); ++i) {
      if (Equals(items[i], p[0])) {
        if (name == "index") return Value::Int(static_cast<int64_t>(i));
        ++count;
      }
    }
    if (name == "index") ThrowType("ValueError: " + p[0].Repr() + " is not in list");
    return Value::Int(count);
  }
  if (self.is_dict()) {
    const std::string fn = "dict." + name;
    const Dict& d = self.dict();
    if (name == "get") {
      auto p = BindArgs(fn, args, {{"key", Value(), true}, {"default", Value::None()}});
      if (!IsHashable(p[0])) ThrowType("unhashable type: '" + p[0].TypeName() + "'");
      const Value* v = d.Find(p[0]);
      return v ? *v : p[1];
    }
    BindArgs(fn, args, {});
    if (name == "copy") return self;
    ValueList out;
    out.reserve(d.size());
    for (const auto& [k, v] : d.items()) {
      if (name == "items") {
        out.push_back(Value::List({k, v}, true));
      } else {
        out.push_back(name == "keys" ? k : v);
      }
    }
    return Value::Sequence(std::move(out), name == "items" ? Seq::kDictItems
                                           : name == "keys" ? Seq::kDictKeys
                                                            : Seq::kDictValues);
  }
  ThrowType("'" + self.TypeName() + "' object has no attribute '" + name + "'");
}

int64_t SliceBound(const Value& v, const char* what) {
  if (!v.is_integral()) ThrowType(std::string("slice indices must be integers or None, not ") + what);
  return v.int_value();
}

}  // namespace

Value GetAttr(Interp& in, const Value& obj, const std::string& name) {
  (void)in;
  if (obj.is_undefined()) ThrowUndefined(obj.undefined_hint());
  Value out;
  if (PyGetAttr(obj, name, &out)) return out;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return NoAttribute(obj, name);
}

Value GetItem(Interp& in, const Value& obj, const Value& key) {
  if (obj.is_undefined()) ThrowUndefined(obj.undefined_hint());
  switch (obj.kind()) {
    case Kind::kList:
    case Kind::kString:
      if (key.is_integral() && (obj.is_list() || obj.is_string())) {
        size_t idx;
        if (obj.is_list()) {
          if (NormalizeIndex(key.int_value(), obj.items().size(), &idx)) return obj.items()[idx];
        } else {
          std::u32string cps = pystr::Decode(obj.str());
          in.Charge(obj.str().size());
          if (NormalizeIndex(key.int_value(), cps.size(), &idx)) {
            std::string one;
            pystr::AppendUtf8(one, cps[idx]);
            return SameKind(obj, one);
          }
        }
        return Value::Undefined(std::string(obj.is_list() ? obj.TypeName() : "str") + " object has no element " +
                                std::to_string(key.int_value()));
      }
      break;
    case Kind::kDict:
      if (IsHashable(key)) {
        if (const Value* v = obj.dict().Find(key)) return *v;
      }
      break;
    default:
      break;
  }
  // jinja2 falls back to the attribute for string keys (d['items'] is the method when absent).
  if (key.is_string()) {
    Value out;
    if (PyGetAttr(obj, key.str(), &out)) return out;
  }
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute '" + key.ToStr() + "'");
}

Value GetSlice(Interp& in, const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) ThrowUndefined(obj.undefined_hint());
  auto omitted = [](const Value& v) { return v.is_none() || v.is_undefined(); };
  if (!obj.is_list() && !obj.is_string()) {
    return Value::Undefined("'" + ObjectTypeRepr(obj) + "' cannot be sliced");
  }
  for (const Value* b : {&start, &stop, &step}) {
    if (!omitted(*b) && !b->is_integral()) return Value::Undefined("slice indices must be integers or None");
  }
  const int64_t st = omitted(step) ? 1 : SliceBound(step, "step");
  if (st == 0) ThrowType("ValueError: slice step cannot be zero");
  std::u32string cps;
  int64_t len;
  if (obj.is_string()) {
    cps = pystr::Decode(obj.str());
    in.Charge(obj.str().size());
    len = static_cast<int64_t>(cps.size());
  } else {
    len = static_cast<int64_t>(obj.items().size());
  }
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (omitted(v)) return dflt;
    int64_t i = v.int_value();
    if (i < 0) {
      i += len;
      if (i < 0) i = st < 0 ? -1 : 0;
    } else if (i >= len) {
      i = st < 0 ? len - 1 : len;
    }
    return i;
  };
  const int64_t b = adjust(start, st < 0 ? len - 1 : 0);
  const int64_t e = adjust(stop, st < 0 ? -1 : len);
  std::vector<size_t> picks;
  for (int64_t i = b; st > 0 ? i < e : i > e;) {
    picks.push_back(static_cast<size_t>(i));
    if (__builtin_add_overflow(i, st, &i)) break;  // a huge step just ends the slice
  }
  if (obj.is_string()) {
    std::u32string out;
    out.reserve(picks.size());
    for (size_t i : picks) out.push_back(cps[i]);
    return SameKind(obj, pystr::Encode(out));
  }
  ValueList out;
  out.reserve(picks.size());
  for (size_t i : picks) out.push_back(obj.items()[i]);
  in.Charge(8 * out.size());
  return Value::List(std::move(out), obj.is_tuple());
}

ValueList Iterate(Interp& in, const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList: {
      int kind = 0;
      if (const std::string* error = v.deferred_error(&kind)) throw TemplateError(static_cast<ErrorKind>(kind), *error);
      in.Charge(8 * v.items().size());
      return v.items();
    }
    case Kind::kDict: {
      ValueList keys;
      keys.reserve(v.dict().size());
      for (const auto& kv : v.dict().items()) keys.push_back(kv.first);
      in.Charge(8 * keys.size());
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      in.Charge(v.str().size() * 8);
      for (char32_t c : pystr::Decode(v.str())) {
        std::string one;
        pystr::AppendUtf8(one, c);
        chars.push_back(Value::Str(std::move(one)));
      }
      return chars;
    }
    default:
      ThrowType("'" + v.TypeName() + "' object is not iterable");
  }
}

Value CallValue(Interp& in, const Value& fn, CallArgs args) {
  if (fn.is_undefined()) ThrowUndefined(fn.undefined_hint());
  if (!fn.is_object() || !fn.object()->IsCallable()) ThrowType("'" + fn.TypeName() + "' object is not callable");
  return fn.object()->Call(in, std::move(args));
}

}  // namespace qeff::chat
