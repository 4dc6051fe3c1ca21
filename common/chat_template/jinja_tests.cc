#include "common/chat_template/jinja_tests.h"

#include <string>
#include <unordered_map>

#include "common/chat_template/args.h"
#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/filters.h"
#include "common/chat_template/operators.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

using TestFn = bool (*)(Interp& in, const Value& v, const CallArgs& args);

Value OneArg(std::string_view name, const CallArgs& args) {
  return BindArgs(name, args, {{"other", Value(), true}})[0];
}
void NoArgs(std::string_view name, const CallArgs& args) { BindArgs(name, args, {}); }

bool Odd(Interp& in, const Value& v, bool odd) {
  if (v.is_undefined()) ThrowUndefined(v.undefined_hint());
  // jinja2: odd is `value % 2 == 1`, even is `value % 2 == 0` (2.5 is neither).
  if (v.is_number()) {
    const Value m = BinaryOp(in, ast::BinOp::kMod, v, Value::Int(2));
    return m.float_value() == (odd ? 1.0 : 0.0);
  }
  ThrowType("unsupported operand type(s) for %: '" + v.TypeName() + "' and 'int'");
}

bool IsSequence(const Value& v) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }
bool IsIterable(const Value& v) { return IsSequence(v) || v.kind() == Kind::kList; }

bool SameAs(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.is_object()) return a.object() == b.object();
  return Equals(a, b);
}

const std::unordered_map<std::string_view, TestFn>& Tests() {
  static const auto* tests = new std::unordered_map<std::string_view, TestFn>{
      {"defined", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("defined", a), !v.is_undefined(); }},
      {"undefined", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("undefined", a), v.is_undefined(); }},
      {"none", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("none", a), v.is_none(); }},
      {"boolean", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("boolean", a), v.is_bool(); }},
      {"true", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("true", a), v.is_bool() && v.bool_value(); }},
      {"false", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("false", a), v.is_bool() && !v.bool_value(); }},
      {"integer", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("integer", a), v.is_int(); }},
      {"float", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("float", a), v.is_float(); }},
      {"number", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("number", a), v.is_number(); }},
      {"string", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("string", a), v.is_string(); }},
      {"mapping", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("mapping", a), v.is_dict(); }},
      {"sequence", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("sequence", a), IsSequence(v); }},
      {"iterable", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("iterable", a), IsIterable(v); }},
      {"callable",
       [](Interp&, const Value& v, const CallArgs& a) {
         // jinja2's Undefined has __call__ (which raises), so it counts as callable.
         return NoArgs("callable", a), v.is_undefined() || (v.is_object() && v.object()->IsCallable());
       }},
      {"escaped", [](Interp&, const Value&, const CallArgs& a) { return NoArgs("escaped", a), false; }},
      {"lower", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("lower", a), pystr::IsLower(v.ToStr()); }},
      {"upper", [](Interp&, const Value& v, const CallArgs& a) { return NoArgs("upper", a), pystr::IsUpper(v.ToStr()); }},
      {"odd", [](Interp& in, const Value& v, const CallArgs& a) { return NoArgs("odd", a), Odd(in, v, true); }},
      {"even", [](Interp& in, const Value& v, const CallArgs& a) { return NoArgs("even", a), Odd(in, v, false); }},
      {"divisibleby",
       [](Interp& in, const Value& v, const CallArgs& a) {
         const Value num = BindArgs("divisibleby", a, {{"num", Value(), true}})[0];
         const Value m = BinaryOp(in, ast::BinOp::kMod, v, num);
         return Equals(m, Value::Int(0));
       }},
      {"eq", [](Interp&, const Value& v, const CallArgs& a) { return Equals(v, OneArg("eq", a)); }},
      {"ne", [](Interp&, const Value& v, const CallArgs& a) { return !Equals(v, OneArg("ne", a)); }},
      {"lt", [](Interp&, const Value& v, const CallArgs& a) { return Less(v, OneArg("lt", a)); }},
      {"gt", [](Interp&, const Value& v, const CallArgs& a) { return Less(OneArg("gt", a), v); }},
      {"le", [](Interp&, const Value& v, const CallArgs& a) { return CompareOp(ast::CmpOp::kLe, v, OneArg("le", a)); }},
      {"ge", [](Interp&, const Value& v, const CallArgs& a) { return CompareOp(ast::CmpOp::kGe, v, OneArg("ge", a)); }},
      {"in",
       [](Interp&, const Value& v, const CallArgs& a) {
         return Contains(BindArgs("in", a, {{"seq", Value(), true}})[0], v);
       }},
      {"sameas", [](Interp&, const Value& v, const CallArgs& a) { return SameAs(v, OneArg("sameas", a)); }},
      {"filter",
       [](Interp&, const Value& v, const CallArgs& a) {
         return NoArgs("filter", a), v.is_string() && IsKnownFilter(v.str());
       }},
      {"test",
       [](Interp&, const Value& v, const CallArgs& a) {
         return NoArgs("test", a), v.is_string() && IsKnownTest(v.str());
       }},
  };
  return *tests;
}

// jinja2's aliases.
std::string_view Canonical(std::string_view name) {
  if (name == "equalto" || name == "==") return "eq";
  if (name == "!=") return "ne";
  if (name == "lessthan" || name == "<") return "lt";
  if (name == "greaterthan" || name == ">") return "gt";
  if (name == "<=") return "le";
  if (name == ">=") return "ge";
  return name;
}

}  // namespace

bool IsKnownTest(std::string_view name) { return Tests().count(Canonical(name)) > 0; }

bool ApplyTest(Interp& in, std::string_view name, const Value& v, const CallArgs& args) {
  auto it = Tests().find(Canonical(name));
  if (it == Tests().end()) ThrowType("No test named '" + std::string(name) + "'.");
  return it->second(in, v, args);
}

}  // namespace qeff::chat
