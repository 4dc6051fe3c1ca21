#include "common/chat_template/json_dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/chat_template/error.h"
#include "common/chat_template/pystr.h"

namespace qeff::chat {
namespace {

void AppendU(std::string& out, uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\u%04x", v);
  out += buf;
}

std::string FloatJson(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return pystr::FloatRepr(f);
}

std::string KeyString(const Value& k) {
  switch (k.kind()) {
    case Kind::kString:
      return k.str();
    case Kind::kFloat:
      return FloatJson(k.float_value());
    case Kind::kBool:
      return k.bool_value() ? "true" : "false";
    case Kind::kNone:
      return "null";
    case Kind::kInt:
      return std::to_string(k.int_value());
    default:
      ThrowType("keys must be str, int, float, bool or None, not " + k.TypeName());
  }
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {}

  void Dump(const Value& v, int level) {
    if (level > 2 * kMaxNesting) throw TemplateError(ErrorKind::kLimit, "value nesting too deep for tojson");
    switch (v.kind()) {
      case Kind::kNone:
        out_ += "null";
        return;
      case Kind::kBool:
        out_ += v.bool_value() ? "true" : "false";
        return;
      case Kind::kInt:
        out_ += std::to_string(v.int_value());
        return;
      case Kind::kFloat:
        out_ += FloatJson(v.float_value());
        return;
      case Kind::kString:
        out_ += JsonQuote(v.str(), o_.ensure_ascii);
        return;
      case Kind::kList:
        if (!v.is_list()) break;  // generators and dict views are not serializable
        DumpList(v.items(), level);
        return;
      case Kind::kDict:
        DumpDict(v.dict(), level);
        return;
      default:
        break;
    }
    ThrowType("Object of type " + v.TypeName() + " is not JSON serializable");
  }

  std::string Take() { return std::move(out_); }

 private:
  // Python: newline + indent * level, or nothing without indent.
  std::string Newline(int level) const {
    if (!o_.indent) return "";
    std::string s = "\n";
    for (int i = 0; i < level; ++i) s += *o_.indent;
    return s;
  }

  void DumpList(const ValueList& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return;
    }
    out_ += "[";
    const std::string nl = Newline(level + 1);
    out_ += nl;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_ += o_.item_separator + nl;
      Dump(items[i], level + 1);
    }
    out_ += Newline(level);
    out_ += "]";
  }

  void DumpDict(const Dict& d, int level) {
    if (d.size() == 0) {
      out_ += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.items()) entries.push_back(&e);
    if (o_.sort_keys) SortEntries(entries);
    out_ += "{";
    const std::string nl = Newline(level + 1);
    out_ += nl;
    bool first = true;
    for (const auto* e : entries) {
      if (!first) out_ += o_.item_separator + nl;
      first = false;
      out_ += JsonQuote(KeyString(e->first), o_.ensure_ascii);
      out_ += o_.key_separator;
      Dump(e->second, level + 1);
    }
    out_ += Newline(level);
    out_ += "}";
  }

  // sorted(dct.items()): keys of one comparable type only, as Python would.
  static void SortEntries(std::vector<const std::pair<Value, Value>*>& entries) {
    bool all_str = true, all_num = true;
    for (const auto* e : entries) {
      all_str = all_str && e->first.is_string();
      all_num = all_num && e->first.is_number();
    }
    if (all_str) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return a->first.str() < b->first.str(); });
    } else if (all_num) {
      std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) {
        return a->first.float_value() < b->first.float_value();
      });
    } else {
      ThrowType("'<' not supported between dict keys of different types");
    }
  }

  const JsonDumpOptions& o_;
  std::string out_;
};

}  // namespace

std::string JsonQuote(const std::string& s, bool ensure_ascii) {
  std::string out = "\"";
  for (char32_t c : pystr::Decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      AppendU(out, c);
    } else if (!ensure_ascii || c < 0x7F) {
      pystr::AppendUtf8(out, c);
    } else if (c < 0x10000) {
      AppendU(out, c);
    } else {
      const uint32_t v = c - 0x10000;
      AppendU(out, 0xD800 | (v >> 10));
      AppendU(out, 0xDC00 | (v & 0x3FF));
    }
  }
  out += "\"";
  return out;
}

std::string JsonDumps(const Value& v, const JsonDumpOptions& options) {
  Dumper d(options);
  d.Dump(v, 0);
  return d.Take();
}

}  // namespace qeff::chat
