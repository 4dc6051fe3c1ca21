// The values a template computes with: Python's None/bool/int/float/str/list/tuple/dict as
// jinja2 sees them after json.loads, jinja2's Undefined, and opaque objects (namespace(), loop,
// macros, functions, bound methods). Strings, lists and dicts are immutable and shared, as in
// jinja2's ImmutableSandboxedEnvironment; only namespace attributes change after creation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeff::chat {

class Interp;
class Value;
class Dict;
class Object;

using ValueList = std::vector<Value>;

// Containers nested deeper than this are refused (also bounds every recursive walk over values).
inline constexpr int kMaxNesting = 256;

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject };

// What Python type a kList value stands for. Only list and tuple are subscriptable; a generator
// (what map/select/... return) is always true and has no len(); dict views print as such.
enum class Seq : uint8_t { kList, kTuple, kGenerator, kDictItems, kDictKeys, kDictValues };

// Python call arguments: positional then keyword.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

class Value {
 public:
  Value() = default;  // Undefined
  static Value Undefined(std::string hint);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value Str(std::string s);
  // markupsafe.Markup: a string already "safe" (from |safe or |escape). Concatenating a plain
  // string to it HTML-escapes that string, which real templates (functionary) rely on.
  static Value Markup(std::string s);
  static Value List(ValueList items, bool tuple = false);
  static Value Sequence(ValueList items, Seq seq);
  // A generator that raises TypeError(`error`) when consumed: jinja2's generator filters
  // (map, select, items, ...) only fail once iterated.
  // `kind` is an ErrorKind (error.h), kept as an int so this header does not depend on it.
  static Value FailingGenerator(int kind, std::string error);
  // The deferred error of a FailingGenerator, or nullptr; *kind receives its ErrorKind.
  const std::string* deferred_error(int* kind = nullptr) const;
  static Value MakeDict(Dict d);
  static Value Obj(std::shared_ptr<Object> o);
  // json.loads semantics; keys keep their order. Nesting beyond kMaxNesting is an error.
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }
  // A Python list or tuple (subscriptable). Generators and dict views are kList values too
  // (kind() == Kind::kList, items() works) but not is_list().
  bool is_list() const { return kind_ == Kind::kList && (seq_ == Seq::kList || seq_ == Seq::kTuple); }
  bool is_tuple() const { return kind_ == Kind::kList && seq_ == Seq::kTuple; }
  bool is_generator() const { return kind_ == Kind::kList && seq_ == Seq::kGenerator; }
  Seq seq() const { return seq_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  // int-like: bool or int (Python's bool is an int).
  bool is_integral() const { return kind_ == Kind::kBool || kind_ == Kind::kInt; }

  bool bool_value() const { return std::get<bool>(data_); }
  // For bool or int.
  int64_t int_value() const;
  // For any number.
  double float_value() const;
  const std::string& str() const;
  const ValueList& items() const;
  const Dict& dict() const;
  Object* object() const;
  const std::shared_ptr<Object>& object_ptr() const;
  // Why it is undefined (jinja2's hint), for error messages.
  std::string undefined_hint() const;
  // 1 for scalars and objects, 1 + deepest element for containers.
  int depth() const;

  bool Truthy() const;          // Python bool()
  std::string ToStr() const;    // Python str(); Undefined prints as ""
  std::string Repr() const;     // Python repr()
  std::string TypeName() const; // Python type(x).__name__

 private:
  struct ListData {
    ValueList items;
    int depth = 1;
    std::string error;  // FailingGenerator
    int error_kind = 0;
  };
  Kind kind_ = Kind::kUndefined;
  Seq seq_ = Seq::kList;
  bool markup_ = false;
  std::variant<std::monostate, bool, int64_t, double, std::shared_ptr<const std::string>,
               std::shared_ptr<const ListData>, std::shared_ptr<const Dict>, std::shared_ptr<Object>>
      data_;
};

// markupsafe.escape(): Markup stays as is; anything else is str()-ed and HTML-escaped.
Value Escape(const Value& v);
// The HTML escaping of markupsafe: & < > " ' become &amp; &lt; &gt; &#34; &#39;.
std::string HtmlEscape(const std::string& s);
// A string result of the same kind (str or Markup) as `like`.
Value SameKind(const Value& like, std::string s);

// Python ==, including 1 == 1.0 == True and order-insensitive dicts.
bool Equals(const Value& a, const Value& b);
// Python's dict keys must be hashable: str, numbers, None, and tuples of those.
bool IsHashable(const Value& v);

// An insertion-ordered dict (Python 3.7+ semantics).
class Dict {
 public:
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  // Inserts or replaces in place (order of first insertion kept). TypeError for unhashable keys.
  void Set(const Value& key, Value value);
  size_t size() const { return items_.size(); }
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  int depth() const { return depth_; }

 private:
  std::vector<std::pair<Value, Value>> items_;
  std::unordered_map<std::string, size_t> str_index_;
  int depth_ = 1;
};

// Non-container objects: namespace(), loop, macros, functions, bound methods.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string TypeName() const = 0;
  virtual std::string Repr() const = 0;
  // Python attribute lookup; false when the object has no such attribute.
  virtual bool GetAttr(const std::string& name, Value* out) const { return false; }
  virtual bool IsCallable() const { return false; }
  virtual Value Call(Interp& in, CallArgs args) const;
  // Drops references that may form cycles (a macro and the scope holding it); called once a
  // render is over.
  virtual void Release() {}
};

// jinja2's namespace(): the one mutable object, changed by `{% set ns.attr = value %}`.
class Namespace : public Object {
 public:
  std::string TypeName() const override { return "Namespace"; }
  std::string Repr() const override;
  bool GetAttr(const std::string& name, Value* out) const override;
  void SetAttr(const std::string& name, Value value);
  const Dict& attrs() const { return attrs_; }
  void Release() override { attrs_ = Dict(); }

 private:
  Dict attrs_;
};

}  // namespace qeff::chat
