#include "common/chat_template/evaluator.h"

#include <optional>
#include <utility>

#include "common/chat_template/access.h"
#include "common/chat_template/args.h"
#include "common/chat_template/error.h"
#include "common/chat_template/filters.h"
#include "common/chat_template/globals.h"
#include "common/chat_template/jinja_tests.h"
#include "common/chat_template/operators.h"

namespace qeff::chat {

using ast::Expr;
using ast::ExprKind;
using ast::Stmt;
using ast::StmtKind;

// A macro (or the `caller` of a call block) closed over the scope it was defined in.
class MacroObject : public Object {
 public:
  MacroObject(const ast::MacroDef* def, std::shared_ptr<Interp::Scope> closure)
      : def_(def), closure_(std::move(closure)) {}
  std::string TypeName() const override { return "Macro"; }
  std::string Repr() const override { return "<Macro '" + def_->name + "'>"; }
  bool IsCallable() const override { return true; }
  Value Call(Interp& in, CallArgs args) const override { return in.CallMacro(*this, std::move(args)); }
  void Release() override { closure_.reset(); }

  const ast::MacroDef* def_;
  std::shared_ptr<Interp::Scope> closure_;
};

// jinja2's LoopContext: one object per loop run, advanced each iteration.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  LoopObject(const Stmt* stmt, std::shared_ptr<Interp::Scope> scope, ValueList items, int depth)
      : stmt_(stmt), scope_(std::move(scope)), items_(std::move(items)), depth_(depth) {}

  std::string TypeName() const override { return "LoopContext"; }
  std::string Repr() const override {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_.size()) + ">";
  }
  bool IsCallable() const override { return true; }
  Value Call(Interp& in, CallArgs args) const override { return in.CallLoop(*this, std::move(args)); }
  void Release() override {
    scope_.reset();
    items_.clear();
    last_changed_.reset();
  }

  bool GetAttr(const std::string& name, Value* out) const override {
    const int64_t i = static_cast<int64_t>(index_), n = static_cast<int64_t>(items_.size());
    if (name == "index") {
      *out = Value::Int(i + 1);
    } else if (name == "index0") {
      *out = Value::Int(i);
    } else if (name == "revindex") {
      *out = Value::Int(n - i);
    } else if (name == "revindex0") {
      *out = Value::Int(n - i - 1);
    } else if (name == "first") {
      *out = Value::Bool(i == 0);
    } else if (name == "last") {
      *out = Value::Bool(i == n - 1);
    } else if (name == "length") {
      *out = Value::Int(n);
    } else if (name == "depth") {
      *out = Value::Int(depth_);
    } else if (name == "depth0") {
      *out = Value::Int(depth_ - 1);
    } else if (name == "previtem") {
      *out = i > 0 ? items_[index_ - 1] : Value::Undefined("there is no previous item");
    } else if (name == "nextitem") {
      *out = i + 1 < n ? items_[index_ + 1] : Value::Undefined("there is no next item");
    } else if (name == "cycle" || name == "changed") {
      *out = Value::Obj(std::make_shared<Method>(std::const_pointer_cast<LoopObject>(shared_from_this()), name));
    } else {
      return false;
    }
    return true;
  }

  const Stmt* stmt_;
  std::shared_ptr<Interp::Scope> scope_;
  ValueList items_;
  int depth_;
  size_t index_ = 0;
  mutable std::optional<ValueList> last_changed_;

 private:
  // loop.cycle(...) and loop.changed(...).
  class Method : public Object {
   public:
    Method(std::shared_ptr<LoopObject> loop, std::string name) : loop_(std::move(loop)), name_(std::move(name)) {}
    std::string TypeName() const override { return "method"; }
    std::string Repr() const override { return "<bound method LoopContext." + name_ + ">"; }
    bool IsCallable() const override { return true; }
    Value Call(Interp&, CallArgs args) const override {
      if (!args.kwargs.empty()) ThrowType(name_ + "() takes no keyword arguments");
      if (name_ == "cycle") {
        if (args.args.empty()) ThrowType("no items for cycling given");
        return args.args[loop_->index_ % args.args.size()];
      }
      if (loop_->last_changed_ && loop_->last_changed_->size() == args.args.size()) {
        bool same = true;
        for (size_t k = 0; k < args.args.size() && same; ++k) same = Equals((*loop_->last_changed_)[k], args.args[k]);
        if (same) return Value::Bool(false);
      }
      loop_->last_changed_ = args.args;
      return Value::Bool(true);
    }

   private:
    std::shared_ptr<LoopObject> loop_;
    std::string name_;
  };
};

Interp::CallDepthGuard::CallDepthGuard(Interp* in) : in_(in) {
  if (++in_->call_depth_ > in_->limits_.max_call_depth) {
    --in_->call_depth_;
    throw TemplateError(ErrorKind::kLimit, "maximum recursion depth exceeded (" +
                                               std::to_string(in_->limits_.max_call_depth) + " nested calls)");
  }
}

Interp::Interp(const RenderLimits& limits, std::string now) : limits_(limits), now_(std::move(now)) {}

Interp::~Interp() {
  for (auto& o : tracked_) o->Release();
  tracked_.clear();
  root_.reset();
}

std::string Interp::Render(const ast::Program& program, const Dict& context) {
  root_ = std::make_shared<Scope>(nullptr);
  for (const auto& [k, v] : context.items()) root_->Set(k.ToStr(), v);
  std::string out;
  Exec(program.body, root_, out);
  return out;
}

void Interp::Step() {
  if (++steps_ > limits_.max_steps) {
    throw TemplateError(ErrorKind::kLimit, "template exceeded its evaluation budget of " +
                                               std::to_string(limits_.max_steps) + " steps");
  }
}

void Interp::Charge(size_t bytes) {
  steps_ += bytes / 64;
  Step();
}

void Interp::CheckSize(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    throw TemplateError(ErrorKind::kLimit, "string of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                                               std::to_string(limits_.max_output_bytes));
  }
}

void Interp::CheckItems(size_t n) const {
  if (n > limits_.max_list_items) {
    throw TemplateError(ErrorKind::kLimit, "list of " + std::to_string(n) + " items exceeds the limit of " +
                                               std::to_string(limits_.max_list_items));
  }
}

void Interp::Track(std::shared_ptr<Object> o) { tracked_.push_back(std::move(o)); }

void Interp::Append(std::string& out, const std::string& s) {
  if (out.size() + s.size() > limits_.max_output_bytes) {
    throw TemplateError(ErrorKind::kLimit,
                        "rendered output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
  Charge(s.size());
  out += s;
}

Interp::Flow Interp::Exec(const ast::Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    const Flow f = ExecOne(*s, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interp::Flow Interp::ExecOne(const Stmt& s, const ScopePtr& scope, std::string& out) {
  try {
    Step();
    switch (s.kind) {
      case StmtKind::kData:
        Append(out, s.text);
        return Flow::kNormal;
      case StmtKind::kPrint:
        Append(out, Eval(*s.expr, scope).ToStr());
        return Flow::kNormal;
      case StmtKind::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (Eval(*cond, scope).Truthy()) return Exec(body, scope, out);
        }
        return Exec(s.else_body, scope, out);
      case StmtKind::kFor:
        return ExecFor(s, scope, out);
      case StmtKind::kSet:
        Assign(s.target, Eval(*s.expr, scope), scope);
        return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string buf;
        Exec(s.body, std::make_shared<Scope>(scope), buf);
        Value v = Value::Str(std::move(buf));
        if (s.filter) v = ApplyFilterChain(*s.filter, v, scope);
        Assign(s.target, v, scope);
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        auto m = std::make_shared<MacroObject>(s.macro.get(), scope);
        Track(m);
        scope->Set(s.macro->name, Value::Obj(m));
        return Flow::kNormal;
      }
      case StmtKind::kCallBlock: {
        auto caller = std::make_shared<MacroObject>(s.macro.get(), scope);
        Track(caller);
        const Expr& call = *s.expr;
        Value callee = Eval(*call.children[0], scope);
        CallArgs args = EvalArgs(call, scope, 1);
        args.kwargs.emplace_back("caller", Value::Obj(caller));
        Append(out, CallValue(*this, callee, std::move(args)).ToStr());
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        std::string buf;
        const Flow f = Exec(s.body, scope, buf);
        Append(out, ApplyFilterChain(*s.filter, Value::Str(std::move(buf)), scope).ToStr());
        return f;
      }
      case StmtKind::kWith: {
        auto inner = std::make_shared<Scope>(scope);
        for (const auto& [target, expr] : s.assigns) Assign(target, Eval(*expr, scope), inner);
        return Exec(s.body, inner, out);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kBlock:
        return Exec(s.body, scope, out);
    }
  } catch (TemplateError& e) {
    e.SetPositionIfUnset(s.line, s.column);
    throw;
  }
  return Flow::kNormal;
}

ValueList Interp::FilterLoopItems(const Stmt& s, const ScopePtr& scope, ValueList items) {
  if (!s.filter) return items;
  ValueList kept;
  for (Value& item : items) {
    Step();
    auto fs = std::make_shared<Scope>(scope);
    Assign(s.target, item, fs);
    if (Eval(*s.filter, fs).Truthy()) kept.push_back(std::move(item));
  }
  return kept;
}

Interp::Flow Interp::ExecFor(const Stmt& s, const ScopePtr& scope, std::string& out) {
  ValueList items = Iterate(*this, Eval(*s.expr, scope));
  items = FilterLoopItems(s, scope, std::move(items));
  return RunLoop(s, scope, std::move(items), 1, out);
}

Interp::Flow Interp::RunLoop(const Stmt& s, const ScopePtr& scope, ValueList items, int depth, std::string& out) {
  if (items.empty()) {
    if (!s.else_body.empty()) Exec(s.else_body, std::make_shared<Scope>(scope), out);
    return Flow::kNormal;
  }
  auto loop = std::make_shared<LoopObject>(&s, scope, std::move(items), depth);
  Track(loop);
  for (size_t i = 0; i < loop->items_.size(); ++i) {
    Step();
    loop->index_ = i;
    auto iteration = std::make_shared<Scope>(scope);
    Assign(s.target, loop->items_[i], iteration);
    iteration->Set("loop", Value::Obj(loop));
    if (Exec(s.body, iteration, out) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Interp::CallLoop(const LoopObject& l, CallArgs args) {
  if (!l.stmt_->recursive) {
    ThrowType("Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
  }
  const Value iterable = BindArgs("loop", args, {{"iterable", Value(), true}})[0];
  CallDepthGuard guard(this);
  ValueList items = FilterLoopItems(*l.stmt_, l.scope_, Iterate(*this, iterable));
  std::string buf;
  RunLoop(*l.stmt_, l.scope_, std::move(items), l.depth_ + 1, buf);
  return Value::Str(std::move(buf));
}

Value Interp::CallMacro(const MacroObject& m, CallArgs args) {
  CallDepthGuard guard(this);
  Step();
  const ast::MacroDef& def = *m.def_;
  auto ms = std::make_shared<Scope>(m.closure_);
  const size_t n = def.params.size();
  std::vector<std::optional<Value>> bound(n);
  for (size_t i = 0; i < n && i < args.args.size(); ++i) bound[i] = args.args[i];
  bool caller_is_param = false;
  for (const auto& p : def.params) caller_is_param = caller_is_param || p == "caller";
  std::optional<Value> caller;
  Dict extra_kwargs;
  for (auto& [key, value] : args.kwargs) {
    size_t idx = 0;
    while (idx < n && def.params[idx] != key) ++idx;
    if (idx < n && idx >= args.args.size() && !bound[idx]) {
      bound[idx] = std::move(value);
    } else if (key == "caller" && def.uses_caller && !caller_is_param && !caller) {
      caller = std::move(value);
    } else {
      if (!def.uses_kwargs) ThrowType("macro '" + def.name + "' takes no keyword argument '" + key + "'");
      extra_kwargs.Set(Value::Str(key), std::move(value));
    }
  }
  if (args.args.size() > n && !def.uses_varargs) {
    ThrowType("macro '" + def.name + "' takes not more than " + std::to_string(n) + " argument(s)");
  }
  const size_t first_default = n - def.defaults.size();
  for (size_t i = 0; i < n; ++i) {
    Value v;
    if (bound[i]) {
      v = std::move(*bound[i]);
    } else if (i >= first_default) {
      v = Eval(*def.defaults[i - first_default], ms);  // defaults may use earlier parameters
    } else {
      v = Value::Undefined("parameter '" + def.params[i] + "' was not provided");
    }
    ms->Set(def.params[i], std::move(v));
  }
  if (def.uses_caller && !caller_is_param) ms->Set("caller", caller ? *caller : Value::Undefined("No caller defined"));
  if (def.uses_varargs) {
    ValueList rest;
    for (size_t i = n; i < args.args.size(); ++i) rest.push_back(args.args[i]);
    ms->Set("varargs", Value::List(std::move(rest), true));
  }
  if (def.uses_kwargs) ms->Set("kwargs", Value::MakeDict(std::move(extra_kwargs)));
  std::string buf;
  Exec(def.body, ms, buf);
  return Value::Str(std::move(buf));
}

void Interp::Assign(const ast::Target& t, const Value& v, const ScopePtr& scope) {
  switch (t.kind) {
    case ast::Target::Kind::kName:
      scope->Set(t.name, v);
      return;
    case ast::Target::Kind::kTuple: {
      ValueList items = Iterate(*this, v);
      if (items.size() < t.items.size()) {
        ThrowType("not enough values to unpack (expected " + std::to_string(t.items.size()) + ", got " +
                  std::to_string(items.size()) + ")");
      }
      if (items.size() > t.items.size()) {
        ThrowType("too many values to unpack (expected " + std::to_string(t.items.size()) + ")");
      }
      for (size_t i = 0; i < items.size(); ++i) Assign(t.items[i], items[i], scope);
      return;
    }
    case ast::Target::Kind::kNamespaceAttr: {
      Value ns = Lookup(t.name, scope);
      auto* obj = ns.is_object() ? dynamic_cast<Namespace*>(ns.object()) : nullptr;
      if (obj == nullptr) throw TemplateError(ErrorKind::kRuntime, "Cannot assign attribute on non-namespace object");
      obj->SetAttr(t.attr, v);
      return;
    }
  }
}

Value Interp::Lookup(const std::string& name, const ScopePtr& scope) const {
  for (const Scope* s = scope.get(); s != nullptr; s = s->parent.get()) {
    if (const Value* v = s->Find(name)) return *v;
  }
  Value g;
  if (LookupGlobal(name, &g)) return g;
  return Value::Undefined("'" + name + "' is undefined");
}

CallArgs Interp::EvalArgs(const Expr& e, const ScopePtr& scope, size_t first) {
  CallArgs args;
  for (size_t i = first; i < e.children.size(); ++i) args.args.push_back(Eval(*e.children[i], scope));
  for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, Eval(*v, scope));
  if (e.dyn_args) {
    for (Value& v : Iterate(*this, Eval(*e.dyn_args, scope))) args.args.push_back(std::move(v));
  }
  if (e.dyn_kwargs) {
    const Value d = Eval(*e.dyn_kwargs, scope);
    if (!d.is_dict()) ThrowType("argument after ** must be a mapping, not " + d.TypeName());
    for (const auto& [k, v] : d.dict().items()) {
      if (!k.is_string()) ThrowType("keywords must be strings");
      args.kwargs.emplace_back(k.str(), v);
    }
  }
  return args;
}

Value Interp::ApplyFilterChain(const Expr& e, const Value& subject, const ScopePtr& scope) {
  const Value inner = e.children[0] ? ApplyFilterChain(*e.children[0], subject, scope) : subject;
  return ApplyFilter(*this, e.name, inner, EvalArgs(e, scope, 1));
}

Value Interp::Eval(const Expr& e, const ScopePtr& scope) {
  try {
    return EvalInner(e, scope);
  } catch (TemplateError& err) {
    err.SetPositionIfUnset(e.line, e.column);
    throw;
  }
}

Value Interp::EvalInner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.value;
    case ExprKind::kName:
      return Lookup(e.name, scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      CheckItems(e.children.size());
      ValueList items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) items.push_back(Eval(*c, scope));
      return Value::List(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        Value k = Eval(*e.children[i], scope);
        d.Set(k, Eval(*e.children[i + 1], scope));
      }
      return Value::MakeDict(std::move(d));
    }
    case ExprKind::kGetAttr:
      return GetAttr(*this, Eval(*e.children[0], scope), e.name);
    case ExprKind::kGetItem: {
      Value obj = Eval(*e.children[0], scope);
      return GetItem(*this, obj, Eval(*e.children[1], scope));
    }
    case ExprKind::kSlice: {
      Value obj = Eval(*e.children[0], scope);
      auto bound = [&](size_t i) { return e.children[i] ? Eval(*e.children[i], scope) : Value::None(); };
      Value start = bound(1), stop = bound(2), step = bound(3);
      return GetSlice(*this, obj, start, stop, step);
    }
    case ExprKind::kCall: {
      Value callee = Eval(*e.children[0], scope);
      return CallValue(*this, callee, EvalArgs(e, scope, 1));
    }
    case ExprKind::kFilter: {
      Value subject = Eval(*e.children[0], scope);
      return ApplyFilter(*this, e.name, subject, EvalArgs(e, scope, 1));
    }
    case ExprKind::kTest: {
      Value subject = Eval(*e.children[0], scope);
      return Value::Bool(ApplyTest(*this, e.name, subject, EvalArgs(e, scope, 1)));
    }
    case ExprKind::kNot:
      return Value::Bool(!Eval(*e.children[0], scope).Truthy());
    case ExprKind::kNeg:
      return Negate(Eval(*e.children[0], scope));
    case ExprKind::kPos:
      return Positive(Eval(*e.children[0], scope));
    case ExprKind::kBinary: {
      Value a = Eval(*e.children[0], scope);
      Value b = Eval(*e.children[1], scope);
      return BinaryOp(*this, e.op, a, b);
    }
    case ExprKind::kAnd: {
      Value a = Eval(*e.children[0], scope);
      return a.Truthy() ? Eval(*e.children[1], scope) : a;
    }
    case ExprKind::kOr: {
      Value a = Eval(*e.children[0], scope);
      return a.Truthy() ? a : Eval(*e.children[1], scope);
    }
    case ExprKind::kCompare: {
      Value left = Eval(*e.children[0], scope);
      for (size_t i = 0; i < e.cmp_ops.size(); ++i) {
        Value right = Eval(*e.children[i + 1], scope);
        if (!CompareOp(e.cmp_ops[i], left, right)) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case ExprKind::kCond:
      if (Eval(*e.children[0], scope).Truthy()) return Eval(*e.children[1], scope);
      if (e.children[2]) return Eval(*e.children[2], scope);
      return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
  }
  return Value();
}

}  // namespace qeff::chat
