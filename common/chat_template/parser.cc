#include "common/chat_template/parser.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/chat_template/error.h"
#include "common/chat_template/filters.h"
#include "common/chat_template/jinja_tests.h"
#include "common/chat_template/lexer.h"

namespace qeff::chat {
namespace {

using ast::Body;
using ast::Expr;
using ast::ExprKind;
using ast::ExprPtr;
using ast::Stmt;
using ast::StmtKind;
using ast::StmtPtr;
using ast::Target;

// Each nested expression or block costs a few levels; 300 allows ~100 nested brackets, about
// what CPython's own recursion limit lets jinja2 compile.
constexpr int kMaxParseDepth = 300;

using Names = std::vector<std::string_view>;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::unique_ptr<ast::Program> Run() {
    auto program = std::make_unique<ast::Program>();
    program->body = Subparse({});
    return program;
  }

 private:
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxParseDepth) p_->Fail("template nesting too deep", p_->Cur());
    }
    ~DepthGuard() { --p_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser* p_;
  };

  // ---- token stream ----
  const Token& Cur() const { return tokens_[i_]; }
  const Token& Look() const { return tokens_[std::min(i_ + 1, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = tokens_[i_];
    if (i_ + 1 < tokens_.size()) ++i_;
    return t;
  }
  static bool IsOp(const Token& t, std::string_view op) { return t.type == TokenType::kOperator && t.value == op; }
  static bool IsName(const Token& t, std::string_view n) { return t.type == TokenType::kName && t.value == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(Cur(), op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(Cur(), n)) return false;
    Next();
    return true;
  }
  void ExpectOp(std::string_view op) {
    if (!IsOp(Cur(), op)) Fail("expected token '" + std::string(op) + "', got " + DescribeToken(Cur()), Cur());
    Next();
  }
  void Expect(TokenType type, const char* what) {
    if (Cur().type != type) Fail(std::string("expected token '") + what + "', got " + DescribeToken(Cur()), Cur());
    Next();
  }
  std::string ExpectName() {
    if (Cur().type != TokenType::kName) Fail("expected token 'name', got " + DescribeToken(Cur()), Cur());
    return Next().value;
  }

  [[noreturn]] void Fail(const std::string& msg, const Token& at) const {
    throw TemplateError(ErrorKind::kSyntax, msg, at.line, at.column);
  }

  std::string LookingFor(const Names& end_tags) const {
    std::string msg;
    if (!end_tags.empty()) {
      msg += " Jinja was looking for the following tags: ";
      for (size_t k = 0; k < end_tags.size(); ++k) {
        if (k) msg += k + 1 == end_tags.size() ? " or " : ", ";
        msg += "'" + std::string(end_tags[k]) + "'";
      }
      msg += ".";
    }
    if (!tag_stack_.empty()) msg += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    return msg;
  }

  template <typename T>
  T Pos(T node, const Token& t) {
    node->line = t.line;
    node->column = t.column;
    return node;
  }
  ExprPtr NewExpr(ExprKind kind, const Token& t) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    return Pos(std::move(e), t);
  }
  StmtPtr NewStmt(StmtKind kind, const Token& t) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    return Pos(std::move(s), t);
  }

  // ---- statements ----
  Body Subparse(const Names& end_tags) {
    Body body;
    while (true) {
      const Token& t = Cur();
      switch (t.type) {
        case TokenType::kData: {
          auto s = NewStmt(StmtKind::kData, t);
          s->text = t.value;
          body.push_back(std::move(s));
          Next();
          break;
        }
        case TokenType::kVarBegin: {
          auto s = NewStmt(StmtKind::kPrint, t);
          Next();
          s->expr = ParseTuple(false, true, {}, false);
          Expect(TokenType::kVarEnd, "end of print statement");
          body.push_back(std::move(s));
          break;
        }
        case TokenType::kBlockBegin: {
          Next();
          if (Cur().type == TokenType::kName &&
              std::find(end_tags.begin(), end_tags.end(), Cur().value) != end_tags.end()) {
            return body;
          }
          body.push_back(ParseStatement(end_tags));
          Expect(TokenType::kBlockEnd, "end of statement block");
          break;
        }
        case TokenType::kEnd:
          if (!end_tags.empty()) Fail("Unexpected end of template." + LookingFor(end_tags), t);
          return body;
        default:
          Fail("unexpected " + DescribeToken(t), t);
      }
    }
  }

  // After the opening tag's arguments: `%}`, the body, and (drop_needle) the end tag's name.
  Body ParseStatements(const Names& end_tags, bool drop_needle) {
    SkipOp(":");
    Expect(TokenType::kBlockEnd, "end of statement block");
    Body body = Subparse(end_tags);
    if (drop_needle) Next();
    return body;
  }

  StmtPtr ParseStatement(const Names& enclosing_end_tags) {
    DepthGuard guard(this);
    const Token& t = Cur();
    if (t.type != TokenType::kName) Fail("tag name expected", t);
    const std::string tag = t.value;
    tag_stack_.push_back(tag);
    StmtPtr s;
    if (tag == "for") {
      s = ParseFor();
    } else if (tag == "if") {
      s = ParseIf();
    } else if (tag == "set") {
      s = ParseSet();
    } else if (tag == "macro") {
      s = ParseMacro();
    } else if (tag == "call") {
      s = ParseCallBlock();
    } else if (tag == "filter") {
      s = ParseFilterBlock();
    } else if (tag == "with") {
      s = ParseWith();
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) Fail("'" + tag + "' outside of a loop", t);
      s = NewStmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, t);
      Next();
    } else if (tag == "print") {
      s = NewStmt(StmtKind::kPrint, t);
      Next();
      s->expr = ParseTuple(false, true, {}, false);
    } else if (tag == "generation") {
      // transformers' AssistantTracker tag: renders its body in place.
      s = NewStmt(StmtKind::kBlock, t);
      Next();
      s->body = ParseStatements({"endgeneration"}, true);
    } else if (tag == "block") {
      s = NewStmt(StmtKind::kBlock, t);
      Next();
      const std::string name = ExpectName();
      SkipName("scoped");
      SkipName("required");
      s->body = ParseStatements({"endblock"}, true);
      SkipName(name);
    } else if (tag == "extends" || tag == "include" || tag == "import" || tag == "from" || tag == "autoescape") {
      Fail("tag '" + tag + "' is not supported in chat templates", t);
    } else {
      tag_stack_.pop_back();
      std::string msg = "Encountered unknown tag '" + tag + "'.";
      Fail(msg + LookingFor(enclosing_end_tags), t);
    }
    tag_stack_.pop_back();
    return s;
  }

  StmtPtr ParseFor() {
    auto s = NewStmt(StmtKind::kFor, Next());
    s->target = ParseAssignTarget(true, false, {"in"}, false);
    if (!SkipName("in")) Fail("expected token 'in', got " + DescribeToken(Cur()), Cur());
    s->expr = ParseTuple(false, false, {"recursive"}, false);
    if (SkipName("if")) s->filter = ParseExpression(true);
    s->recursive = SkipName("recursive");
    ++loop_depth_;
    s->body = ParseStatements({"endfor", "else"}, false);
    --loop_depth_;
    if (Next().value != "endfor") s->else_body = ParseStatements({"endfor"}, true);
    return s;
  }

  StmtPtr ParseIf() {
    auto s = NewStmt(StmtKind::kIf, Next());
    while (true) {
      ExprPtr cond = ParseTuple(false, false, {}, false);
      Body body = ParseStatements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(cond), std::move(body));
      const Token& t = Next();
      if (t.value == "elif") continue;
      if (t.value == "else") s->else_body = ParseStatements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr ParseSet() {
    const Token& t = Next();
    Target target = ParseAssignTarget(true, false, {}, true);
    if (SkipOp("=")) {
      auto s = NewStmt(StmtKind::kSet, t);
      s->target = std::move(target);
      s->expr = ParseTuple(false, true, {}, false);
      return s;
    }
    auto s = NewStmt(StmtKind::kSetBlock, t);
    s->target = std::move(target);
    s->filter = ParseFilter(nullptr, false);
    s->body = ParseStatements({"endset"}, true);
    return s;
  }

  void ParseSignature(ast::MacroDef* def) {
    ExpectOp("(");
    while (!IsOp(Cur(), ")")) {
      if (!def->params.empty()) ExpectOp(",");
      const Token& at = Cur();
      std::string name = ExpectName();
      if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
          name == "None") {
        Fail("can't assign to const", at);
      }
      if (SkipOp("=")) {
        def->defaults.push_back(ParseExpression(true));
      } else if (!def->defaults.empty()) {
        Fail("non-default argument follows default argument", at);
      }
      def->params.push_back(std::move(name));
    }
    ExpectOp(")");
  }

  // Macro bodies are functions: loop controls of an enclosing loop do not reach into them.
  Body ParseFunctionBody(const char* end_tag) {
    const int saved = loop_depth_;
    loop_depth_ = 0;
    Body body = ParseStatements({end_tag}, true);
    loop_depth_ = saved;
    return body;
  }

  StmtPtr ParseMacro() {
    auto s = NewStmt(StmtKind::kMacro, Next());
    s->macro = std::make_shared<ast::MacroDef>();
    s->macro->name = ExpectName();
    ParseSignature(s->macro.get());
    s->macro->body = ParseFunctionBody("endmacro");
    ScanSpecialNames(s->macro.get());
    return s;
  }

  StmtPtr ParseCallBlock() {
    auto s = NewStmt(StmtKind::kCallBlock, Next());
    s->macro = std::make_shared<ast::MacroDef>();
    s->macro->name = "caller";
    if (IsOp(Cur(), "(")) ParseSignature(s->macro.get());
    const Token& at = Cur();
    s->expr = ParseExpression(true);
    if (s->expr->kind != ExprKind::kCall) Fail("expected call", at);
    s->macro->body = ParseFunctionBody("endcall");
    ScanSpecialNames(s->macro.get());
    return s;
  }

  StmtPtr ParseFilterBlock() {
    auto s = NewStmt(StmtKind::kFilterBlock, Next());
    s->filter = ParseFilter(nullptr, true);
    s->body = ParseStatements({"endfilter"}, true);
    return s;
  }

  StmtPtr ParseWith() {
    auto s = NewStmt(StmtKind::kWith, Next());
    while (Cur().type != TokenType::kBlockEnd) {
      if (!s->assigns.empty()) ExpectOp(",");
      Target target = ParseAssignTarget(true, false, {}, false);
      ExpectOp("=");
      s->assigns.emplace_back(std::move(target), ParseExpression(true));
    }
    s->body = ParseStatements({"endwith"}, true);
    return s;
  }

  Target ParseAssignTarget(bool with_tuple, bool name_only, const Names& extra_end, bool with_namespace) {
    Target target;
    const Token& at = Cur();
    if (with_namespace && IsOp(Look(), ".")) {
      target.kind = Target::Kind::kNamespaceAttr;
      target.name = ExpectName();
      Next();
      target.attr = ExpectName();
      return target;
    }
    if (name_only) {
      target.name = ExpectName();
      return target;
    }
    ExprPtr e = with_tuple ? ParseTuple(true, true, extra_end, false) : ParsePrimary();
    if (!ToTarget(*e, &target)) Fail("can't assign to this expression", at);
    return target;
  }

  static bool ToTarget(const Expr& e, Target* out) {
    if (e.kind == ExprKind::kName) {
      out->kind = Target::Kind::kName;
      out->name = e.name;
      return true;
    }
    if (e.kind == ExprKind::kTuple) {
      out->kind = Target::Kind::kTuple;
      for (const auto& c : e.children) {
        Target t;
        if (!ToTarget(*c, &t)) return false;
        out->items.push_back(std::move(t));
      }
      return true;
    }
    return false;
  }

  // ---- expressions ----
  bool IsTupleEnd(const Names& extra_end) const {
    const Token& t = Cur();
    if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || IsOp(t, ")")) return true;
    return t.type == TokenType::kName && std::find(extra_end.begin(), extra_end.end(), t.value) != extra_end.end();
  }

  ExprPtr ParseTuple(bool simplified, bool with_condexpr, const Names& extra_end, bool explicit_parens) {
    const Token& start = Cur();
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      args.push_back(simplified ? ParsePrimary() : ParseExpression(with_condexpr));
      if (IsOp(Cur(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) Fail("Expected an expression, got " + DescribeToken(Cur()), Cur());
    }
    auto e = NewExpr(ExprKind::kTuple, start);
    e->children = std::move(args);
    return e;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    ExprPtr expr1 = ParseOr();
    while (IsName(Cur(), "if")) {
      auto e = NewExpr(ExprKind::kCond, Next());
      ExprPtr expr2 = ParseOr();
      ExprPtr expr3;
      if (SkipName("else")) {
        DepthGuard guard(this);
        expr3 = ParseCondExpr();
      }
      e->children.push_back(std::move(expr2));
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(expr3));
      expr1 = std::move(e);
    }
    return expr1;
  }

  ExprPtr Binary(ExprKind kind, const Token& at, ExprPtr l, ExprPtr r) {
    auto e = NewExpr(kind, at);
    e->children.push_back(std::move(l));
    e->children.push_back(std::move(r));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName(Cur(), "or")) {
      const Token& at = Next();
      left = Binary(ExprKind::kOr, at, std::move(left), ParseAnd());
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName(Cur(), "and")) {
      const Token& at = Next();
      left = Binary(ExprKind::kAnd, at, std::move(left), ParseNot());
    }
    return left;
  }

  ExprPtr ParseNot() {
    DepthGuard guard(this);
    if (IsName(Cur(), "not")) {
      auto e = NewExpr(ExprKind::kNot, Next());
      e->children.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const Token& start = Cur();
    ExprPtr expr = ParseMath1();
    std::vector<ast::CmpOp> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = Cur();
      ast::CmpOp op;
      if (t.type == TokenType::kOperator && (t.value == "==" || t.value == "!=" || t.value == "<" ||
                                             t.value == "<=" || t.value == ">" || t.value == ">=")) {
        op = t.value == "==" ? ast::CmpOp::kEq
             : t.value == "!=" ? ast::CmpOp::kNe
             : t.value == "<"  ? ast::CmpOp::kLt
             : t.value == "<=" ? ast::CmpOp::kLe
             : t.value == ">"  ? ast::CmpOp::kGt
                               : ast::CmpOp::kGe;
        Next();
      } else if (IsName(t, "in")) {
        op = ast::CmpOp::kIn;
        Next();
      } else if (IsName(t, "not") && IsName(Look(), "in")) {
        op = ast::CmpOp::kNotIn;
        Next();
        Next();
      } else {
        break;
      }
      ops.push_back(op);
      operands.push_back(ParseMath1());
    }
    if (ops.empty()) return expr;
    auto e = NewExpr(ExprKind::kCompare, start);
    e->children.push_back(std::move(expr));
    for (auto& o : operands) e->children.push_back(std::move(o));
    e->cmp_ops = std::move(ops);
    return e;
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp(Cur(), "+") || IsOp(Cur(), "-")) {
      const Token& at = Next();
      auto e = Binary(ExprKind::kBinary, at, std::move(left), ParseConcat());
      e->op = at.value == "+" ? ast::BinOp::kAdd : ast::BinOp::kSub;
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp(Cur(), "~")) {
      const Token& at = Next();
      auto e = Binary(ExprKind::kBinary, at, std::move(left), ParseMath2());
      e->op = ast::BinOp::kConcat;
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp(Cur(), "*") || IsOp(Cur(), "/") || IsOp(Cur(), "//") || IsOp(Cur(), "%")) {
      const Token& at = Next();
      auto e = Binary(ExprKind::kBinary, at, std::move(left), ParsePow());
      e->op = at.value == "*"    ? ast::BinOp::kMul
              : at.value == "/"  ? ast::BinOp::kDiv
              : at.value == "//" ? ast::BinOp::kFloorDiv
                                 : ast::BinOp::kMod;
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp(Cur(), "**")) {
      const Token& at = Next();
      auto e = Binary(ExprKind::kBinary, at, std::move(left), ParseUnary(true));
      e->op = ast::BinOp::kPow;
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    ExprPtr node;
    if (IsOp(Cur(), "-") || IsOp(Cur(), "+")) {
      const Token& at = Next();
      node = NewExpr(at.value == "-" ? ExprKind::kNeg : ExprKind::kPos, at);
      node->children.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    DepthGuard guard(this);
    const Token& t = Cur();
    if (t.type == TokenType::kName) {
      Next();
      if (t.value == "true" || t.value == "True" || t.value == "false" || t.value == "False") {
        auto e = NewExpr(ExprKind::kLiteral, t);
        e->value = Value::Bool(t.value[0] == 't' || t.value[0] == 'T');
        return e;
      }
      if (t.value == "none" || t.value == "None") {
        auto e = NewExpr(ExprKind::kLiteral, t);
        e->value = Value::None();
        return e;
      }
      auto e = NewExpr(ExprKind::kName, t);
      e->name = t.value;
      return e;
    }
    if (t.type == TokenType::kString) {
      auto e = NewExpr(ExprKind::kLiteral, t);
      std::string s;
      while (Cur().type == TokenType::kString) s += Next().value;  // "a" "b" concatenate
      e->value = Value::Str(std::move(s));
      return e;
    }
    if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
      auto e = NewExpr(ExprKind::kLiteral, t);
      e->value = t.type == TokenType::kInteger ? Value::Int(t.int_value) : Value::Float(t.float_value);
      Next();
      return e;
    }
    if (IsOp(t, "(")) {
      Next();
      ExprPtr e = ParseTuple(false, true, {}, true);
      ExpectOp(")");
      return e;
    }
    if (IsOp(t, "[")) return ParseList();
    if (IsOp(t, "{")) return ParseDict();
    Fail("unexpected " + DescribeToken(t), t);
  }

  ExprPtr ParseList() {
    auto e = NewExpr(ExprKind::kList, Next());
    while (!IsOp(Cur(), "]")) {
      if (!e->children.empty()) ExpectOp(",");
      if (IsOp(Cur(), "]")) break;
      e->children.push_back(ParseExpression(true));
    }
    ExpectOp("]");
    return e;
  }

  ExprPtr ParseDict() {
    auto e = NewExpr(ExprKind::kDict, Next());
    while (!IsOp(Cur(), "}")) {
      if (!e->children.empty()) ExpectOp(",");
      if (IsOp(Cur(), "}")) break;
      e->children.push_back(ParseExpression(true));
      ExpectOp(":");
      e->children.push_back(ParseExpression(true));
    }
    ExpectOp("}");
    return e;
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(Cur(), ".") || IsOp(Cur(), "[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp(Cur(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp(Cur(), "|")) {
        node = ParseFilter(std::move(node), false);
      } else if (IsName(Cur(), "is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp(Cur(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  struct Subscribed {
    bool is_slice = false;
    ExprPtr expr, start, stop, step;
  };

  Subscribed ParseSubscribed() {
    Subscribed s;
    if (IsOp(Cur(), ":")) {
      Next();
    } else {
      s.expr = ParseExpression(true);
      if (!IsOp(Cur(), ":")) return s;
      Next();
      s.start = std::move(s.expr);
    }
    s.is_slice = true;
    auto at_end = [&] { return IsOp(Cur(), "]") || IsOp(Cur(), ","); };
    if (!IsOp(Cur(), ":") && !at_end()) s.stop = ParseExpression(true);
    if (IsOp(Cur(), ":")) {
      Next();
      if (!at_end()) s.step = ParseExpression(true);
    }
    return s;
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& t = Next();
    if (t.value == ".") {
      const Token& attr = Cur();
      if (attr.type == TokenType::kName) {
        Next();
        auto e = NewExpr(ExprKind::kGetAttr, t);
        e->children.push_back(std::move(node));
        e->name = attr.value;
        return e;
      }
      if (attr.type != TokenType::kInteger) Fail("expected name or number", attr);
      Next();
      auto e = NewExpr(ExprKind::kGetItem, t);
      e->children.push_back(std::move(node));
      auto key = NewExpr(ExprKind::kLiteral, attr);
      key->value = Value::Int(attr.int_value);
      e->children.push_back(std::move(key));
      return e;
    }
    std::vector<Subscribed> args;
    while (!IsOp(Cur(), "]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    if (args.empty()) Fail("expected an index", t);
    if (args.size() == 1 && args[0].is_slice) {
      auto e = NewExpr(ExprKind::kSlice, t);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(args[0].start));
      e->children.push_back(std::move(args[0].stop));
      e->children.push_back(std::move(args[0].step));
      return e;
    }
    auto e = NewExpr(ExprKind::kGetItem, t);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0].expr));
      return e;
    }
    auto tuple = NewExpr(ExprKind::kTuple, t);
    for (auto& a : args) {
      if (a.is_slice) Fail("multi-dimensional slices are not supported", t);
      tuple->children.push_back(std::move(a.expr));
    }
    e->children.push_back(std::move(tuple));
    return e;
  }

  // `( args, name=value, *dyn, **dyn_kw )` into e->children[1..], kwargs, dyn_args, dyn_kwargs.
  void ParseCallArgs(Expr* e) {
    const Token& open = Cur();
    ExpectOp("(");
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) Fail("invalid syntax for function call expression", open);
    };
    while (!IsOp(Cur(), ")")) {
      if (require_comma) {
        ExpectOp(",");
        if (IsOp(Cur(), ")")) break;  // trailing comma
      }
      if (IsOp(Cur(), "*")) {
        ensure(!e->dyn_args && !e->dyn_kwargs);
        Next();
        e->dyn_args = ParseExpression(true);
      } else if (IsOp(Cur(), "**")) {
        ensure(!e->dyn_kwargs);
        Next();
        e->dyn_kwargs = ParseExpression(true);
      } else if (Cur().type == TokenType::kName && IsOp(Look(), "=")) {
        ensure(!e->dyn_kwargs);
        std::string key = Next().value;
        Next();
        e->kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        ensure(!e->dyn_args && !e->dyn_kwargs && e->kwargs.empty());
        e->children.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr node) {
    auto e = NewExpr(ExprKind::kCall, Cur());
    e->children.push_back(std::move(node));
    ParseCallArgs(e.get());
    return e;
  }

  std::string ParseDottedName() {
    std::string name = ExpectName();
    while (IsOp(Cur(), ".")) {
      Next();
      name += "." + ExpectName();
    }
    return name;
  }

  ExprPtr ParseFilter(ExprPtr node, bool start_inline) {
    while (IsOp(Cur(), "|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      const Token& at = Cur();
      std::string name = ParseDottedName();
      if (!IsKnownFilter(name)) Fail("No filter named '" + name + "'.", at);
      auto e = NewExpr(ExprKind::kFilter, at);
      e->name = std::move(name);
      e->children.push_back(std::move(node));
      if (IsOp(Cur(), "(")) ParseCallArgs(e.get());
      node = std::move(e);
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    const Token& is = Next();
    const bool negated = SkipName("not");
    const Token& at = Cur();
    std::string name = ParseDottedName();
    if (!IsKnownTest(name)) Fail("No test named '" + name + "'.", at);
    auto e = NewExpr(ExprKind::kTest, is);
    e->name = std::move(name);
    e->children.push_back(std::move(node));
    const Token& t = Cur();
    if (IsOp(t, "(")) {
      ParseCallArgs(e.get());
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || IsOp(t, "[") || IsOp(t, "{")) &&
               !IsName(t, "else") && !IsName(t, "or") && !IsName(t, "and")) {
      // jinja2 takes one bare argument: `x is divisibleby 3`, `x is sameas none`.
      if (IsName(t, "is")) Fail("You cannot chain multiple tests with is", t);
      ExprPtr arg = ParsePrimary();
      e->children.push_back(ParsePostfix(std::move(arg)));
    }
    if (!negated) return e;
    auto n = NewExpr(ExprKind::kNot, is);
    n->children.push_back(std::move(e));
    return n;
  }

  // ---- macro bodies: does the body mention caller / varargs / kwargs? ----
  static void ScanExpr(const Expr* e, ast::MacroDef* def) {
    if (e == nullptr) return;
    if (e->kind == ExprKind::kName) {
      if (e->name == "caller") def->uses_caller = true;
      if (e->name == "varargs") def->uses_varargs = true;
      if (e->name == "kwargs") def->uses_kwargs = true;
    }
    for (const auto& c : e->children) ScanExpr(c.get(), def);
    for (const auto& kw : e->kwargs) ScanExpr(kw.second.get(), def);
    ScanExpr(e->dyn_args.get(), def);
    ScanExpr(e->dyn_kwargs.get(), def);
  }
  static void ScanBody(const Body& body, ast::MacroDef* def) {
    for (const auto& s : body) {
      ScanExpr(s->expr.get(), def);
      ScanExpr(s->filter.get(), def);
      for (const auto& [cond, b] : s->branches) {
        ScanExpr(cond.get(), def);
        ScanBody(b, def);
      }
      for (const auto& [t, v] : s->assigns) ScanExpr(v.get(), def);
      ScanBody(s->body, def);
      ScanBody(s->else_body, def);
      if (s->macro) {
        for (const auto& d : s->macro->defaults) ScanExpr(d.get(), def);
        if (s->kind == StmtKind::kCallBlock) ScanBody(s->macro->body, def);
      }
    }
  }
  static void ScanSpecialNames(ast::MacroDef* def) {
    ScanBody(def->body, def);
    for (const auto& d : def->defaults) ScanExpr(d.get(), def);
  }

  std::vector<Token> tokens_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> tag_stack_;
};

}  // namespace

std::unique_ptr<ast::Program> ParseTemplate(std::string_view source) { return Parser(Lex(source)).Run(); }

}  // namespace qeff::chat
