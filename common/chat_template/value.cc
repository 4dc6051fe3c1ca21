#include "common/chat_template/value.h"

#include <cmath>
#include <limits>

#include "common/chat_template/error.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

// Namespaces can contain themselves, so walks that reach objects count their depth here.
thread_local int g_walk_depth = 0;

class WalkGuard {
 public:
  WalkGuard() {
    if (++g_walk_depth > 2 * kMaxNesting) {
      --g_walk_depth;
      throw TemplateError(ErrorKind::kLimit, "value nesting too deep");
    }
  }
  ~WalkGuard() { --g_walk_depth; }
  WalkGuard(const WalkGuard&) = delete;
  WalkGuard& operator=(const WalkGuard&) = delete;
};

Value FromJsonImpl(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxNesting) throw TemplateError(ErrorKind::kLimit, "input JSON nested too deep");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::Int(static_cast<int64_t>(u));
      }
      return Value::Float(static_cast<double>(u));  // beyond int64: approximate
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJsonImpl(e, depth + 1));
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) {
        d.Set(Value::Str(it.key()), FromJsonImpl(it.value(), depth + 1));
      }
      return Value::MakeDict(std::move(d));
    }
    default:
      return Value::None();  // binary and discarded values do not come from JSON text
  }
}

}  // namespace

Value Value::Undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.data_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}
Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.data_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.data_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.data_ = f;
  return v;
}
Value Value::Str(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.data_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::Markup(std::string s) {
  Value v = Str(std::move(s));
  v.markup_ = true;
  return v;
}
Value Value::List(ValueList items, bool tuple) { return Sequence(std::move(items), tuple ? Seq::kTuple : Seq::kList); }

Value Value::Sequence(ValueList items, Seq seq) {
  int depth = 1;
  for (const Value& e : items) depth = std::max(depth, e.depth() + 1);
  if (depth > kMaxNesting) throw TemplateError(ErrorKind::kLimit, "list nested too deep");
  Value v;
  v.kind_ = Kind::kList;
  v.seq_ = seq;
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->depth = depth;
  v.data_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}
Value Value::FailingGenerator(int kind, std::string error) {
  Value v;
  v.kind_ = Kind::kList;
  v.seq_ = Seq::kGenerator;
  auto data = std::make_shared<ListData>();
  data->error = std::move(error);
  data->error_kind = kind;
  v.data_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}
const std::string* Value::deferred_error(int* kind) const {
  if (kind_ != Kind::kList) return nullptr;
  const auto& d = std::get<std::shared_ptr<const ListData>>(data_);
  if (d->error.empty()) return nullptr;
  if (kind != nullptr) *kind = d->error_kind;
  return &d->error;
}
Value Value::MakeDict(Dict d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.data_ = std::make_shared<const Dict>(std::move(d));
  return v;
}
Value Value::Obj(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.data_ = std::move(o);
  return v;
}
Value Value::FromJson(const nlohmann::ordered_json& j) { return FromJsonImpl(j, 1); }

int64_t Value::int_value() const {
  if (kind_ == Kind::kBool) return std::get<bool>(data_) ? 1 : 0;
  return std::get<int64_t>(data_);
}
double Value::float_value() const {
  if (kind_ == Kind::kFloat) return std::get<double>(data_);
  return static_cast<double>(int_value());
}
const std::string& Value::str() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
const ValueList& Value::items() const { return std::get<std::shared_ptr<const ListData>>(data_)->items; }
const Dict& Value::dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
Object* Value::object() const { return std::get<std::shared_ptr<Object>>(data_).get(); }
const std::shared_ptr<Object>& Value::object_ptr() const { return std::get<std::shared_ptr<Object>>(data_); }
std::string Value::undefined_hint() const {
  if (const auto* p = std::get_if<std::shared_ptr<const std::string>>(&data_)) return **p;
  return "value is undefined";
}
int Value::depth() const {
  if (kind_ == Kind::kList) return std::get<std::shared_ptr<const ListData>>(data_)->depth;
  if (kind_ == Kind::kDict) return dict().depth();
  return 1;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return bool_value();
    case Kind::kInt:
      return int_value() != 0;
    case Kind::kFloat:
      return float_value() != 0.0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return seq_ == Seq::kGenerator || !items().empty();
    case Kind::kDict:
      return dict().size() != 0;
    case Kind::kObject:
      return true;
  }
  return false;
}

std::string Value::ToStr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return str();
    default:
      return Repr();
  }
}

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return bool_value() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(int_value());
    case Kind::kFloat:
      return pystr::FloatRepr(float_value());
    case Kind::kString:
      return markup_ ? "Markup(" + pystr::Repr(str()) + ")" : pystr::Repr(str());
    case Kind::kList: {
      if (seq_ == Seq::kGenerator) return "<generator object>";
      WalkGuard guard;
      const bool tuple = seq_ == Seq::kTuple;
      std::string out = tuple ? "(" : "[";
      const ValueList& v = items();
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += v[i].Repr();
      }
      if (tuple && v.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      if (seq_ == Seq::kDictItems || seq_ == Seq::kDictKeys || seq_ == Seq::kDictValues) {
        return TypeName() + "(" + out + ")";
      }
      return out;
    }
    case Kind::kDict: {
      WalkGuard guard;
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : dict().items()) {
        if (!first) out += ", ";
        first = false;
        out += k.Repr() + ": " + v.Repr();
      }
      return out + "}";
    }
    case Kind::kObject: {
      WalkGuard guard;
      return object()->Repr();
    }
  }
  return "";
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return markup_ ? "Markup" : "str";
    case Kind::kList:
      switch (seq_) {
        case Seq::kList: return "list";
        case Seq::kTuple: return "tuple";
        case Seq::kGenerator: return "generator";
        case Seq::kDictItems: return "dict_items";
        case Seq::kDictKeys: return "dict_keys";
        case Seq::kDictValues: return "dict_values";
      }
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kObject:
      return object()->TypeName();
  }
  return "object";
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Value Escape(const Value& v) {
  if (v.is_markup()) return v;
  return Value::Markup(HtmlEscape(v.ToStr()));
}

Value SameKind(const Value& like, std::string s) {
  return like.is_markup() ? Value::Markup(std::move(s)) : Value::Str(std::move(s));
}

bool Equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() == b.int_value();
    return a.float_value() == b.float_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kList: {
      if (a.seq() != b.seq() || a.is_generator()) return false;
      const ValueList &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      WalkGuard guard;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const Dict &x = a.dict(), &y = b.dict();
      if (x.size() != y.size()) return false;
      WalkGuard guard;
      for (const auto& [k, v] : x.items()) {
        const Value* other = y.Find(k);
        if (other == nullptr || !Equals(v, *other)) return false;
      }
      return true;
    }
    case Kind::kObject:
      return a.object() == b.object();
    default:
      return false;
  }
}

bool IsHashable(const Value& v) {
  switch (v.kind()) {
    case Kind::kNone:
    case Kind::kBool:
    case Kind::kInt:
    case Kind::kFloat:
    case Kind::kString:
    case Kind::kUndefined:
    case Kind::kObject:
      return true;
    case Kind::kList:
      if (!v.is_tuple()) return false;
      for (const Value& e : v.items()) {
        if (!IsHashable(e)) return false;
      }
      return true;
    case Kind::kDict:
      return false;
  }
  return false;
}

const Value* Dict::Find(const Value& key) const {
  if (key.is_string()) return Find(std::string_view(key.str()));
  for (const auto& [k, v] : items_) {
    if (!k.is_string() && Equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::Find(std::string_view key) const {
  auto it = str_index_.find(std::string(key));
  return it == str_index_.end() ? nullptr : &items_[it->second].second;
}

void Dict::Set(const Value& key, Value value) {
  if (!IsHashable(key)) ThrowType("unhashable type: '" + key.TypeName() + "'");
  const int d = std::max(key.depth(), value.depth()) + 1;
  if (d > kMaxNesting) throw TemplateError(ErrorKind::kLimit, "dict nested too deep");
  depth_ = std::max(depth_, d);
  if (key.is_string()) {
    auto [it, inserted] = str_index_.emplace(key.str(), items_.size());
    if (!inserted) {
      items_[it->second].second = std::move(value);
      return;
    }
    items_.emplace_back(key, std::move(value));
    return;
  }
  for (auto& [k, v] : items_) {
    if (!k.is_string() && Equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items_.emplace_back(key, std::move(value));
}

Value Object::Call(Interp&, CallArgs) const { ThrowType("'" + TypeName() + "' object is not callable"); }

std::string Namespace::Repr() const { return "<Namespace " + Value::MakeDict(attrs_).Repr() + ">"; }

bool Namespace::GetAttr(const std::string& name, Value* out) const {
  const Value* v = attrs_.Find(name);
  if (v == nullptr) return false;
  *out = *v;
  return true;
}

void Namespace::SetAttr(const std::string& name, Value value) { attrs_.Set(Value::Str(name), std::move(value)); }

}  // namespace qeff::chat
