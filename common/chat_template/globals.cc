#include "common/chat_template/globals.h"

#include <memory>
#include <unordered_map>

#include "common/chat_template/access.h"
#include "common/chat_template/args.h"
#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/strftime.h"

namespace qeff::chat {
namespace {

// jinja2.sandbox.MAX_RANGE
constexpr int64_t kMaxRange = 100000;

using GlobalFn = Value (*)(Interp& in, const CallArgs& args);

class Builtin : public Object {
 public:
  Builtin(std::string name, GlobalFn fn) : name_(std::move(name)), fn_(fn) {}
  std::string TypeName() const override { return "builtin_function_or_method"; }
  std::string Repr() const override { return "<built-in function " + name_ + ">"; }
  bool IsCallable() const override { return true; }
  Value Call(Interp& in, CallArgs args) const override { return fn_(in, args); }

 private:
  std::string name_;
  GlobalFn fn_;
};

// joiner(sep): "" on the first call, `sep` afterwards.
class Joiner : public Object {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  std::string TypeName() const override { return "Joiner"; }
  std::string Repr() const override { return "<jinja2.utils.Joiner object>"; }
  bool IsCallable() const override { return true; }
  Value Call(Interp&, CallArgs args) const override {
    BindArgs("joiner", args, {});
    if (!used_) {
      used_ = true;
      return Value::Str("");
    }
    return Value::Str(sep_);
  }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

// dict(*args, **kwargs) as Python builds it: a mapping or an iterable of pairs, then keywords.
Dict BuildDict(Interp& in, const CallArgs& args, const char* fn) {
  if (args.args.size() > 1) ThrowType(std::string(fn) + " expected at most 1 argument, got " + std::to_string(args.args.size()));
  Dict d;
  if (!args.args.empty()) {
    const Value& src = args.args[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.dict().items()) d.Set(k, v);
    } else {
      for (const Value& pair : Iterate(in, src)) {
        ValueList kv = Iterate(in, pair);
        if (kv.size() != 2) ThrowType("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        d.Set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.kwargs) d.Set(Value::Str(k), v);
  return d;
}

Value Range(Interp& in, const CallArgs& args) {
  if (!args.kwargs.empty()) ThrowType("range() takes no keyword arguments");
  if (args.args.empty() || args.args.size() > 3) ThrowType("range expected 1 to 3 arguments");
  int64_t start = 0, stop, step = 1;
  if (args.args.size() == 1) {
    stop = ArgInt("range", args.args[0]);
  } else {
    start = ArgInt("range", args.args[0]);
    stop = ArgInt("range", args.args[1]);
    if (args.args.size() == 3) step = ArgInt("range", args.args[2]);
  }
  if (step == 0) ThrowType("ValueError: range() arg 3 must not be zero");
  // Count without overflow: ceil((stop - start) / step) when positive.
  const long double span = static_cast<long double>(stop) - static_cast<long double>(start);
  long double count = span / static_cast<long double>(step);
  if (count < 0) count = 0;
  if (count > kMaxRange) {
    ThrowType("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    out.push_back(Value::Int(i));
    if (static_cast<int64_t>(out.size()) > kMaxRange || __builtin_add_overflow(i, step, &i)) break;
  }
  in.Charge(8 * out.size());
  return Value::List(std::move(out));
}

const std::unordered_map<std::string, Value>& Globals() {
  static const auto* globals = [] {
    auto* m = new std::unordered_map<std::string, Value>();
    auto add = [&](const char* name, GlobalFn fn) { (*m)[name] = Value::Obj(std::make_shared<Builtin>(name, fn)); };
    add("raise_exception", [](Interp&, const CallArgs& a) -> Value {
      const Value msg = BindArgs("raise_exception", a, {{"message", Value(), true}})[0];
      throw TemplateError(ErrorKind::kRaised, msg.ToStr());
    });
    add("strftime_now", [](Interp& in, const CallArgs& a) {
      const Value fmt = BindArgs("strftime_now", a, {{"format", Value(), true}})[0];
      return Value::Str(StrftimeNow(ArgStr("strftime", fmt), in.now()));
    });
    add("range", Range);
    add("dict", [](Interp& in, const CallArgs& a) { return Value::MakeDict(BuildDict(in, a, "dict")); });
    add("namespace", [](Interp& in, const CallArgs& a) {
      Dict d = BuildDict(in, a, "namespace");
      auto ns = std::make_shared<Namespace>();
      for (const auto& [k, v] : d.items()) ns->SetAttr(k.ToStr(), v);
      in.Track(ns);
      return Value::Obj(ns);
    });
    add("joiner", [](Interp&, const CallArgs& a) {
      const Value sep = BindArgs("joiner", a, {{"sep", Value::Str(", ")}})[0];
      return Value::Obj(std::make_shared<Joiner>(sep.ToStr()));
    });
    return m;
  }();
  return *globals;
}

}  // namespace

bool LookupGlobal(const std::string& name, Value* out) {
  auto it = Globals().find(name);
  if (it == Globals().end()) return false;
  *out = it->second;
  return true;
}

}  // namespace qeff::chat
