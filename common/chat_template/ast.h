// The parse tree of a template: expressions and statements mirroring jinja2.nodes for the
// subset implemented here. Built by the parser, immutable afterwards, walked by the evaluator.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/chat_template/value.h"

namespace qeff::chat::ast {

enum class ExprKind {
  kLiteral,   // value
  kName,      // name
  kList,      // children = items
  kTuple,     // children = items
  kDict,      // children = key0, value0, key1, value1, ...
  kGetAttr,   // children[0] . name
  kGetItem,   // children[0] [ children[1] ]
  kSlice,     // children[0] [ children[1] : children[2] : children[3] ], each may be null
  kCall,      // children[0] ( children[1..], kwargs, *dyn_args, **dyn_kwargs )
  kFilter,    // children[0] | name ( children[1..], kwargs ); children[0] null in filter blocks
  kTest,      // children[0] is name ( children[1..], kwargs )
  kNot,       // not children[0]
  kNeg,       // -children[0]
  kPos,       // +children[0]
  kBinary,    // children[0] op children[1]
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ... (chained)
  kCond,      // children[1] if children[0] else children[2] (children[2] may be null)
};

enum class BinOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kConcat };
enum class CmpOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0, column = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
  BinOp op = BinOp::kAdd;
  std::vector<CmpOp> cmp_ops;
};

// Assignment targets: `x`, `a, b` and `ns.attr`.
struct Target {
  enum class Kind { kName, kTuple, kNamespaceAttr };
  Kind kind = Kind::kName;
  std::string name;  // variable, or the namespace variable
  std::string attr;  // kNamespaceAttr
  std::vector<Target> items;  // kTuple
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// A macro, or the anonymous `caller` of a call block.
struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  // jinja2 only accepts extra arguments when the body mentions varargs/kwargs.
  bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
};

enum class StmtKind {
  kData,         // text
  kPrint,        // {{ expr }}
  kIf,           // branches (cond, body) ..., else_body
  kFor,          // for target in expr [if filter] [recursive]: body, else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters]: body  endset
  kMacro,        // macro
  kCallBlock,    // call[(params)] expr: macro is the caller
  kFilterBlock,  // filter expr: body
  kWith,         // with assigns: body
  kBreak,
  kContinue,
  kBlock,        // {% generation %} / {% block %}: body rendered in place
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  int line = 0, column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  Target target;
  bool recursive = false;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::shared_ptr<MacroDef> macro;
  std::vector<std::pair<Target, ExprPtr>> assigns;
};

struct Program {
  Body body;
};

}  // namespace qeff::chat::ast
