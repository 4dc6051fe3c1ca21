// No template and no input may crash, hang or exhaust memory: random token soup, mutated real
// templates, random conversations, and adversarial templates that recurse, loop or grow output
// without bound all end in a rendered string or an error status.
#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::Json;

const Json& SampleMessages() {
  static const Json m = Json::parse(R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi \u00e9"},
    {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5]}}}]},
    {"role": "tool", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}])");
  return m;
}

// Parses and renders; returns false only if something other than a value or a status came out
// (the test would have crashed before that, so this mostly documents the contract).
void ParseAndRender(const std::string& source, const Json& messages = SampleMessages()) {
  auto t = ChatTemplate::Parse(source, Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  if (!t.ok()) {
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << source;
    return;
  }
  RenderLimits limits;
  limits.max_steps = 200000;  // keep random loops short
  limits.max_output_bytes = 1 << 20;
  t->set_limits(limits);
  ChatTemplate::Inputs in;
  in.messages = messages;
  in.tools = Json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  in.add_generation_prompt = true;
  in.now = testing::kFrozenNow;
  auto out = t->Render(in);
  if (!out.ok()) {
    EXPECT_TRUE(out.status().code() == absl::StatusCode::kInvalidArgument ||
                out.status().code() == absl::StatusCode::kResourceExhausted)
        << out.status() << "\n" << source;
  }
}

TEST(ChatTemplateRobustnessTest, RandomTokenSoup) {
  static const char* const kPieces[] = {
      "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "+%}", "{%+", " ", "\n", "  ", "x", "messages",
      "message", "m", "loop", "loop.index", "ns", "ns.x", "namespace(x=1)", "for", "in", "endfor", "if", "elif",
      "else", "endif", "set", "endset", "macro", "endmacro", "call", "endcall", "filter", "endfilter", "raw",
      "endraw", "with", "endwith", "break", "continue", "is", "not", "and", "or", "none", "true", "defined", "string",
      "mapping", "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "=", "==", "+", "-", "*", "/", "//", "%", "**", "~",
      "<", ">=", "'a'", "\"b\"", "'\\n'", "'\\u00e9'", "1", "0", "-1", "2.5", "1e3", "trim", "tojson", "length",
      "join", "map(attribute='role')", "selectattr('role')", "items", "upper", "default('d')", "range(3)",
      "raise_exception('boom')", "strftime_now('%d')", "caller()", "[::-1]", "[1:]", "['content']", ".split(',')",
      ".strip()", "recursive", "loop(x)", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "{{ x }}", "{% if x %}",
      "{% endif %}", "{% for x in messages %}", "{% endfor %}", "{% set x = 1 %}", "{{ x.y }}", "{{ x[0] }}"};
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> pick(0, sizeof(kPieces) / sizeof(kPieces[0]) - 1);
  std::uniform_int_distribution<int> len(1, 40);
  for (int i = 0; i < 4000; ++i) {
    std::string src;
    const int n = len(rng);
    for (int k = 0; k < n; ++k) src += kPieces[pick(rng)];
    ParseAndRender(src);
  }
}

TEST(ChatTemplateRobustnessTest, MutatedRealTemplates) {
  std::vector<std::string> sources;
  for (const std::string& name : testing::FixtureNames()) {
    sources.push_back(testing::ReadText(testing::FixtureDir(name) / "template.jinja"));
  }
  for (const char* extra : {"llama-3.2.jinja", "mistral-nemo.jinja", "command-r-tool-use-abridged.jinja", "qwen3.jinja"}) {
    sources.push_back(testing::ReadText(testing::FixtureDir("extra") / extra));
  }
  static const char* const kInserts[] = {"{%", "%}", "{{", "}}", "-", "(", ")", "'", "\"", "|", "{% endif %}",
                                         "{% for x in y %}", "\\", "\n", "[", "]", "not ", ".", "{#", "#}"};
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string src = sources[static_cast<size_t>(i) % sources.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !src.empty(); ++e) {
      const size_t at = rng() % src.size();
      switch (rng() % 3) {
        case 0:
          src.erase(at, 1 + rng() % 8);
          break;
        case 1:
          src.insert(at, kInserts[rng() % (sizeof(kInserts) / sizeof(kInserts[0]))]);
          break;
        default:
          src[at] = static_cast<char>(0x20 + rng() % 0x5f);
      }
    }
    ParseAndRender(src);
  }
}

TEST(ChatTemplateRobustnessTest, RandomConversationsOnRealTemplates) {
  std::mt19937 rng(7);
  auto random_value = [&](auto&& self, int depth) -> Json {
    switch (rng() % (depth > 2 ? 5 : 7)) {
      case 0: return nullptr;
      case 1: return static_cast<int>(rng() % 100) - 50;
      case 2: return (rng() % 2) == 0;
      case 3: return 0.5 * static_cast<double>(rng() % 10);
      case 4: return std::string(rng() % 5, static_cast<char>('a' + rng() % 26)) + (rng() % 3 == 0 ? "</think>" : "");
      case 5: {
        Json a = Json::array();
        for (unsigned k = 0; k < rng() % 3; ++k) a.push_back(self(self, depth + 1));
        return a;
      }
      default: {
        Json o = Json::object();
        static const char* const kKeys[] = {"role", "content", "type", "text", "tool_calls", "function", "name", "arguments"};
        for (unsigned k = 0; k < rng() % 4; ++k) o[kKeys[rng() % 8]] = self(self, depth + 1);
        return o;
      }
    }
  };
  static const char* const kRoles[] = {"user", "assistant", "system", "tool", "ipython", "weird"};
  for (int i = 0; i < 300; ++i) {
    Json messages = Json::array();
    for (unsigned k = 0; k < rng() % 6; ++k) {
      Json m = random_value(random_value, 1);
      if (!m.is_object()) m = Json::object();
      if (rng() % 4 != 0) m["role"] = kRoles[rng() % 6];
      if (rng() % 3 != 0) m["content"] = random_value(random_value, 2);
      messages.push_back(m);
    }
    for (const std::string& name : testing::FixtureNames()) {
      ParseAndRender(testing::ReadText(testing::FixtureDir(name) / "template.jinja"), messages);
    }
    ParseAndRender(testing::ReadText(testing::FixtureDir("extra") / "llama-3.2.jinja"), messages);
    ParseAndRender(testing::ReadText(testing::FixtureDir("extra") / "qwen3.jinja"), messages);
  }
}

absl::Status RenderStatus(const std::string& source, const Json& messages = Json::array()) {
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) return t.status();
  ChatTemplate::Inputs in;
  in.messages = messages;
  auto out = t->Render(in);
  return out.status();
}

TEST(ChatTemplateRobustnessTest, ResourceBoundsEndRunawayTemplates) {
  const auto start = std::chrono::steady_clock::now();
  for (const char* src : {
           "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",  // steps
           "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",                                    // recursion
           "{{ 'x' * 1000000000000 }}",                                                           // one huge string
           "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
           "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",                            // output size
           "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = [ns.l] %}{% endfor %}",  // nesting
           "{{ [1] * 100000000 }}",
           "{% for x in [[1]] recursive %}{{ loop([[x]]) }}{% endfor %}",
       }) {
    const absl::Status s = RenderStatus(src);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << src << ": " << s;
  }
  // A namespace that contains itself: printing it is bounded too, and nothing leaks or crashes.
  EXPECT_FALSE(RenderStatus("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").ok());
  // Command-R's type mapper recurses forever on a "null" type (jinja2 hits RecursionError).
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "f", "description": "d",
    "parameters": {"type": "object", "properties": {"p": {"type": ["string", "null"], "description": "x"}}, "required": []}}}])");
  auto t = ChatTemplate::Parse(testing::ReadText(testing::FixtureDir("extra") / "command-r-tool-use-abridged.jinja"));
  ASSERT_TRUE(t.ok());
  ChatTemplate::Inputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "x"}])");
  in.tools = tools;
  EXPECT_EQ(t->Render(in).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST(ChatTemplateRobustnessTest, DeeplyNestedInputIsAnError) {
  // Built and moved in place: copying a deep nlohmann value recurses (that is nlohmann's own
  // limit, for whoever parses the request); the renderer itself stops at kMaxNesting.
  Json deep = "x";
  for (int i = 0; i < 2000; ++i) {
    Json outer = Json::array();
    outer.push_back(std::move(deep));
    deep = std::move(outer);
  }
  auto t = ChatTemplate::Parse("{{ messages | length }}");
  ASSERT_TRUE(t.ok());
  ChatTemplate::Inputs in;
  in.messages = Json::array();
  in.messages.push_back(std::move(deep));
  EXPECT_EQ(t->Render(in).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ChatTemplateRobustnessTest, ConcurrentRendersOfOneTemplate) {
  const auto dir = testing::FixtureDir("qwen2.5");
  auto t = ChatTemplate::Parse(testing::ReadText(dir / "template.jinja"),
                               Json::parse(testing::ReadText(dir / "special_tokens.json")));
  ASSERT_TRUE(t.ok());
  const std::vector<Json> cases = testing::ReadCases(dir / "cases.jsonl");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (const Json& c : cases) {
          if (!c.contains("rendered")) continue;
          ChatTemplate::Inputs in;
          in.messages = c["messages"];
          in.tools = c["tools"];
          in.add_generation_prompt = c["add_generation_prompt"].get<bool>();
          auto out = t->Render(in);
          if (!out.ok() || *out != c["rendered"].get<std::string>()) ++mismatches[w];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace qeff::chat
