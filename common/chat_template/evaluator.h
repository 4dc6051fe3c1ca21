// Tree-walking evaluator with jinja2's runtime semantics: scopes (a for-loop iteration and a
// macro call get their own; if-blocks do not), the `loop` object, loop controls, macros with
// defaults/varargs/kwargs/caller, namespace attribute assignment, and Undefined that prints as
// "" but fails when its attributes are used. Every render is bounded (output size, steps,
// call depth) so no template can hang or exhaust memory or the stack.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/chat_template/ast.h"
#include "common/chat_template/limits.h"
#include "common/chat_template/value.h"

namespace qeff::chat {

class MacroObject;
class LoopObject;

// One render. Not reusable; the parse tree must outlive it.
class Interp {
 public:
  Interp(const RenderLimits& limits, std::string now);
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // Renders `program` with `context` (messages, tools, special tokens, ...) as its variables.
  // Throws TemplateError.
  std::string Render(const ast::Program& program, const Dict& context);

  // ---- services for filters, tests, methods and globals ----
  // Counts `bytes` of data work against the step budget.
  void Charge(size_t bytes);
  // A string of `bytes` or a list of `n` items is about to be built.
  void CheckSize(size_t bytes) const;
  void CheckItems(size_t n) const;
  // "YYYY-MM-DD HH:MM:SS" frozen clock for strftime_now, or "" for the real clock.
  const std::string& now() const { return now_; }
  const RenderLimits& limits() const { return limits_; }
  // Keeps `o` until the render ends, then calls its Release() (breaks reference cycles).
  void Track(std::shared_ptr<Object> o);

 private:
  // A frame of variables. Frames are small (a loop iteration holds its target and `loop`), so a
  // flat vector beats a hash map.
  struct Scope {
    std::shared_ptr<Scope> parent;
    std::vector<std::pair<std::string, Value>> vars;
    explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
    const Value* Find(const std::string& name) const {
      for (const auto& kv : vars) {
        if (kv.first == name) return &kv.second;
      }
      return nullptr;
    }
    void Set(const std::string& name, Value v) {
      for (auto& kv : vars) {
        if (kv.first == name) {
          kv.second = std::move(v);
          return;
        }
      }
      vars.emplace_back(name, std::move(v));
    }
  };
  using ScopePtr = std::shared_ptr<Scope>;
  enum class Flow { kNormal, kBreak, kContinue };
  friend class MacroObject;
  friend class LoopObject;

  Flow Exec(const ast::Body& body, const ScopePtr& scope, std::string& out);
  Flow ExecOne(const ast::Stmt& s, const ScopePtr& scope, std::string& out);
  Flow ExecFor(const ast::Stmt& s, const ScopePtr& scope, std::string& out);
  Flow RunLoop(const ast::Stmt& s, const ScopePtr& scope, ValueList items, int depth, std::string& out);
  ValueList FilterLoopItems(const ast::Stmt& s, const ScopePtr& scope, ValueList items);
  void Assign(const ast::Target& t, const Value& v, const ScopePtr& scope);
  Value Eval(const ast::Expr& e, const ScopePtr& scope);
  Value EvalInner(const ast::Expr& e, const ScopePtr& scope);
  CallArgs EvalArgs(const ast::Expr& e, const ScopePtr& scope, size_t first);
  // Applies a filter chain whose innermost subject is null (set/filter blocks) to `subject`.
  Value ApplyFilterChain(const ast::Expr& e, const Value& subject, const ScopePtr& scope);
  Value Lookup(const std::string& name, const ScopePtr& scope) const;
  void Append(std::string& out, const std::string& s);
  void Step();

  Value CallMacro(const MacroObject& m, CallArgs args);
  Value CallLoop(const LoopObject& l, CallArgs args);

  class CallDepthGuard {
   public:
    explicit CallDepthGuard(Interp* in);
    ~CallDepthGuard() { --in_->call_depth_; }
    CallDepthGuard(const CallDepthGuard&) = delete;
    CallDepthGuard& operator=(const CallDepthGuard&) = delete;

   private:
    Interp* in_;
  };

  RenderLimits limits_;
  std::string now_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<std::shared_ptr<Object>> tracked_;
  ScopePtr root_;
};

}  // namespace qeff::chat
