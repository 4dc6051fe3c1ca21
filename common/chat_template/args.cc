#include "common/chat_template/args.h"

#include "common/chat_template/error.h"

namespace qeff::chat {

std::vector<Value> BindArgs(std::string_view fn, const CallArgs& args, const std::vector<Param>& params) {
  const std::string name(fn);
  if (args.args.size() > params.size()) {
    ThrowType(name + "() takes at most " + std::to_string(params.size()) + " arguments (" +
              std::to_string(args.args.size()) + " given)");
  }
  std::vector<Value> out(params.size());
  std::vector<bool> set(params.size(), false);
  for (size_t i = 0; i < args.args.size(); ++i) {
    out[i] = args.args[i];
    set[i] = true;
  }
  for (const auto& [key, value] : args.kwargs) {
    size_t i = 0;
    while (i < params.size() && key != params[i].name) ++i;
    if (i == params.size()) ThrowType(name + "() got an unexpected keyword argument '" + key + "'");
    if (set[i]) ThrowType(name + "() got multiple values for argument '" + key + "'");
    out[i] = value;
    set[i] = true;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (set[i]) continue;
    if (params[i].required) {
      ThrowType(name + "() missing required argument '" + std::string(params[i].name) + "'");
    }
    out[i] = params[i].default_value;
  }
  return out;
}

int64_t ArgInt(std::string_view fn, const Value& v) {
  if (!v.is_integral()) {
    ThrowType(std::string(fn) + "(): '" + v.TypeName() + "' object cannot be interpreted as an integer");
  }
  return v.int_value();
}

std::string ArgStr(std::string_view fn, const Value& v) {
  if (!v.is_string()) ThrowType(std::string(fn) + "() argument must be str, not " + v.TypeName());
  return v.str();
}

std::optional<std::string> ArgOptStr(std::string_view fn, const Value& v) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  return ArgStr(fn, v);
}

}  // namespace qeff::chat
