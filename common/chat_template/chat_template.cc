#include "common/chat_template/chat_template.h"

#include <exception>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/chat_template/ast.h"
#include "common/chat_template/error.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/parser.h"
#include "common/chat_template/strftime.h"
#include "common/chat_template/value.h"
#include "common/util/files.h"

namespace qeff::chat {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kRaisedPayload[] = "type.qeff/chat_template.raise_exception";
constexpr uint64_t kMaxConfigBytes = 64u << 20;

const char* KindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kSyntax: return "TemplateSyntaxError";
    case ErrorKind::kRaised: return "TemplateError";
    case ErrorKind::kUndefined: return "UndefinedError";
    case ErrorKind::kType: return "TypeError";
    case ErrorKind::kSecurity: return "SecurityError";
    case ErrorKind::kRuntime: return "TemplateRuntimeError";
    case ErrorKind::kLimit: return "LimitExceeded";
  }
  return "Error";
}

std::string Where(const TemplateError& e) {
  if (e.line() == 0) return "chat template: ";
  return absl::StrCat("chat template line ", e.line(), ", column ", e.column(), ": ");
}

absl::Status RenderStatus(const TemplateError& e) {
  if (e.kind() == ErrorKind::kRaised) {
    absl::Status s = absl::InvalidArgumentError(e.message());
    s.SetPayload(kRaisedPayload, absl::Cord("1"));
    return s;
  }
  const std::string msg = absl::StrCat(Where(e), KindName(e.kind()), ": ", e.message());
  if (e.kind() == ErrorKind::kLimit) return absl::ResourceExhaustedError(msg);
  return absl::InvalidArgumentError(msg);
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

absl::StatusOr<Json> ReadJsonFile(const std::filesystem::path& path) {
  auto text = util::ReadFile(path, kMaxConfigBytes);
  if (!text.ok()) return text.status();
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  return j;
}

// A token entry is a string or an AddedToken object {"content": ...}.
std::string TokenContent(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// transformers' special_tokens_map for a tokenizer loaded from `config`.
void CollectSpecialTokens(const Json& config, Json* out) {
  for (const char* key :
       {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!config.contains(key)) continue;
    const std::string content = TokenContent(config[key]);
    if (!content.empty()) {
      (*out)[key] = content;
    } else if (config[key].is_null()) {
      out->erase(key);
    }
  }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    Json list = Json::array();
    for (const Json& t : config["additional_special_tokens"]) {
      const std::string content = TokenContent(t);
      if (!content.empty()) list.push_back(content);
    }
    if (!list.empty()) {
      (*out)["additional_special_tokens"] = list;
    } else {
      out->erase("additional_special_tokens");
    }
  }
  if (config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object()) {
    for (auto it = config["extra_special_tokens"].begin(); it != config["extra_special_tokens"].end(); ++it) {
      const std::string content = TokenContent(it.value());
      if (!content.empty()) (*out)[it.key()] = content;
    }
  }
}

// The template string out of chat_template's two forms.
absl::StatusOr<std::string> PickTemplate(const Json& ct, bool with_tools, const std::string& where) {
  if (ct.is_string()) return ct.get<std::string>();
  if (!ct.is_array()) return absl::InvalidArgumentError(where + ": chat_template must be a string or a list");
  const Json* by_default = nullptr;
  const Json* tool_use = nullptr;
  for (const Json& entry : ct) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
        !entry["template"].is_string()) {
      return absl::InvalidArgumentError(where + ": chat_template list entries must be {\"name\", \"template\"}");
    }
    const std::string name = entry["name"].get<std::string>();
    if (name == "default") by_default = &entry["template"];
    if (name == "tool_use") tool_use = &entry["template"];
  }
  if (with_tools && tool_use != nullptr) return tool_use->get<std::string>();
  if (by_default != nullptr) return by_default->get<std::string>();
  return absl::InvalidArgumentError(where + ": this model has multiple chat templates with no default specified");
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string source, nlohmann::ordered_json special_tokens) {
  if (!IsValidUtf8(source)) return absl::InvalidArgumentError("chat template is not valid UTF-8");
  if (!special_tokens.is_object()) return absl::InvalidArgumentError("special tokens must be a JSON object");
  ChatTemplate t;
  try {
    t.program_ = ParseTemplate(source);
  } catch (const TemplateError& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template syntax error at line ", e.line(), ", column ",
                                                   e.column(), ": ", e.message()));
  } catch (const std::exception& e) {  // std::bad_alloc and the like
    return absl::ResourceExhaustedError(absl::StrCat("chat template: ", e.what()));
  }
  t.source_ = std::make_shared<const std::string>(std::move(source));
  t.special_tokens_ = std::make_shared<const nlohmann::ordered_json>(std::move(special_tokens));
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(const std::filesystem::path& dir, bool with_tools) {
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  std::error_code ec;
  Json config = Json::object();
  if (std::filesystem::exists(config_path, ec)) {
    auto c = ReadJsonFile(config_path);
    if (!c.ok()) return c.status();
    config = std::move(*c);
  }
  // transformers: chat_template.jinja clobbers the config's chat_template; named templates may
  // also come from additional_chat_templates/<name>.jinja. chat_template.json (a processor file)
  // is the last resort.
  std::string source;
  bool found = false;
  const std::filesystem::path tool_use_file = dir / "additional_chat_templates" / "tool_use.jinja";
  if (with_tools && std::filesystem::exists(tool_use_file, ec)) {
    auto s = util::ReadFile(tool_use_file, kMaxConfigBytes);
    if (!s.ok()) return s.status();
    source = std::move(*s);
    found = true;
  } else if (std::filesystem::exists(dir / "chat_template.jinja", ec)) {
    auto s = util::ReadFile(dir / "chat_template.jinja", kMaxConfigBytes);
    if (!s.ok()) return s.status();
    source = std::move(*s);
    found = true;
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    auto s = PickTemplate(config["chat_template"], with_tools, config_path.string());
    if (!s.ok()) return s.status();
    source = std::move(*s);
    found = true;
  } else if (std::filesystem::exists(dir / "chat_template.json", ec)) {
    auto j = ReadJsonFile(dir / "chat_template.json");
    if (!j.ok()) return j.status();
    if (j->contains("chat_template") && !(*j)["chat_template"].is_null()) {
      auto s = PickTemplate((*j)["chat_template"], with_tools, (dir / "chat_template.json").string());
      if (!s.ok()) return s.status();
      source = std::move(*s);
      found = true;
    }
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no chat_template in ", config_path.string()));

  Json special = Json::object();
  CollectSpecialTokens(config, &special);
  if (std::filesystem::exists(dir / "special_tokens_map.json", ec)) {
    auto m = ReadJsonFile(dir / "special_tokens_map.json");
    if (!m.ok()) return m.status();
    CollectSpecialTokens(*m, &special);
  }
  return Parse(std::move(source), std::move(special));
}

absl::StatusOr<std::string> ChatTemplate::Render(const Inputs& in) const {
  if (!in.tools.is_null() && !in.tools.is_array()) return absl::InvalidArgumentError("tools must be null or a list");
  if (!in.kwargs.is_null() && !in.kwargs.is_object()) return absl::InvalidArgumentError("kwargs must be an object");
  if (!in.now.empty() && !IsValidFrozenTime(in.now)) {
    return absl::InvalidArgumentError("now must look like \"2025-01-15 14:30:00\", got \"" + in.now + "\"");
  }
  try {
    Dict context;
    context.Set(Value::Str("messages"), Value::FromJson(in.messages));
    context.Set(Value::Str("tools"), Value::FromJson(in.tools));
    context.Set(Value::Str("documents"), Value::None());
    context.Set(Value::Str("add_generation_prompt"), Value::Bool(in.add_generation_prompt));
    for (auto it = special_tokens_->begin(); it != special_tokens_->end(); ++it) {
      context.Set(Value::Str(it.key()), Value::FromJson(it.value()));
    }
    if (in.kwargs.is_object()) {
      for (auto it = in.kwargs.begin(); it != in.kwargs.end(); ++it) {
        const std::string& k = it.key();
        if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt") {
          // transformers passes these by name too: Python rejects the duplicate keyword.
          return absl::InvalidArgumentError("render() got multiple values for keyword argument '" + k + "'");
        }
        context.Set(Value::Str(k), Value::FromJson(it.value()));
      }
    }
    Interp interp(limits_, in.now);
    return interp.Render(*program_, context);
  } catch (const TemplateError& e) {
    return RenderStatus(e);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("chat template: out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("chat template: ", e.what()));
  }
}

bool ChatTemplate::IsRaisedByTemplate(const absl::Status& status) {
  return status.GetPayload(kRaisedPayload).has_value();
}

}  // namespace qeff::chat
