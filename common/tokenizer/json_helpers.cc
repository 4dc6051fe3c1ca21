#include "common/tokenizer/json_helpers.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace qeff::tokenizer::internal {

absl::Status ComponentError(std::string_view component, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer ", std::string(component), ": ", std::string(message)));
}

bool Has(const Json& j, std::string_view key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

absl::StatusOr<bool> GetBool(const Json& j, std::string_view key, bool def,
                             std::string_view component) {
  if (!Has(j, key)) return def;
  const Json& v = j.at(std::string(key));
  if (!v.is_boolean()) return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be a boolean"));
  return v.get<bool>();
}

absl::StatusOr<std::string> GetString(const Json& j, std::string_view key, std::string_view def,
                                      std::string_view component) {
  if (!Has(j, key)) return std::string(def);
  const Json& v = j.at(std::string(key));
  if (!v.is_string()) return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be a string"));
  return v.get<std::string>();
}

absl::StatusOr<int64_t> GetInt(const Json& j, std::string_view key, int64_t def,
                               std::string_view component) {
  if (!Has(j, key)) return def;
  const Json& v = j.at(std::string(key));
  if (!v.is_number_integer()) {
    return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be an integer"));
  }
  return v.get<int64_t>();
}

absl::StatusOr<char32_t> GetChar(const Json& j, std::string_view key, char32_t def,
                                 std::string_view component) {
  if (!Has(j, key)) return def;
  const Json& v = j.at(std::string(key));
  if (!v.is_string()) return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be a string"));
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || !unicode::IsValidUtf8(s) || unicode::CountChars(s) != 1) {
    return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be exactly one character"));
  }
  size_t i = 0;
  return unicode::DecodeUtf8(s, &i);
}

absl::StatusOr<std::string> GetType(const Json& j, std::string_view component) {
  if (!j.is_object()) return ComponentError(component, "must be a JSON object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) return ComponentError(component, "missing \"type\"");
  return it->get<std::string>();
}

absl::StatusOr<unicode::Pattern> GetPattern(const Json& j, std::string_view key,
                                            std::string_view component) {
  if (!Has(j, key) || !j.at(std::string(key)).is_object()) {
    return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be {\"String\": ...} or {\"Regex\": ...}"));
  }
  const Json& p = j.at(std::string(key));
  if (auto it = p.find("String"); it != p.end() && it->is_string()) {
    return unicode::Pattern::FromLiteral(it->get<std::string>());
  }
  if (auto it = p.find("Regex"); it != p.end() && it->is_string()) {
    auto pattern = unicode::Pattern::FromRegex(it->get_ref<const std::string&>());
    if (!pattern.ok()) return ComponentError(component, std::string(pattern.status().message()));
    return pattern;
  }
  return ComponentError(component, absl::StrCat("\"", std::string(key), "\" must be {\"String\": ...} or {\"Regex\": ...}"));
}

}  // namespace qeff::tokenizer::internal
