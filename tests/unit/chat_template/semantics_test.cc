// jinja2 runtime semantics that real chat templates depend on, one construct at a time. Each
// expected output is derived by hand from jinja2's and Python's documented behaviour (scoping,
// loop variables, Undefined, truthiness, str()/repr(), filters, tests, methods).
#include <gtest/gtest.h>

#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::Json;
using testing::R;
using testing::RenderWith;

Json Messages() {
  return Json::parse(R"([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"}])");
}

std::string M(const std::string& source, Json kwargs = Json::object()) {
  auto r = RenderWith(source, Json{{"messages", Messages()}, {"kwargs", kwargs}});
  return r.ok ? r.text : "ERROR: " + r.text;
}

TEST(ChatTemplateSemanticsTest, LoopVariables) {
  EXPECT_EQ(M("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
              "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;");
  EXPECT_EQ(M("{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>"
              "{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {% endfor %}"),
            "->user system>assistant user>- ");
  EXPECT_EQ(R("{% for i in [1, 2, 3] %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "aba");
  EXPECT_EQ(R("{% for i in [1, 1, 2] %}{{ loop.changed(i) }}{% endfor %}"), "TrueFalseTrue");
  // The filter runs first, so loop counts only kept items.
  EXPECT_EQ(M("{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}{{ m.role }} {% endfor %}"),
            "1/2user 2/2assistant ");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ");
  EXPECT_EQ(R("{% for c in 'ab' %}[{{ c }}]{% endfor %}"), "[a][b]");
  EXPECT_EQ(R("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"), "xy");
  // Iterating Undefined is zero iterations; iterating None is a TypeError.
  EXPECT_EQ(R("{% for x in nothing %}x{% endfor %}done"), "done");
  EXPECT_NE(R("{% for x in none %}{% endfor %}").find("ERROR"), std::string::npos);
  EXPECT_EQ(R("{% for i in [[1, [2]], [3]] recursive %}({% if i is iterable %}{{ loop(i) }}{% else %}{{ i }}"
              "{% endif %}){% endfor %}"),
            "((1)((2)))((3))");
}

TEST(ChatTemplateSemanticsTest, LoopControls) {
  EXPECT_EQ(R("{% for x in range(6) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}"
              "{{ x }}{% endfor %}"),
            "023");
  EXPECT_EQ(R("{% for a in [1, 2] %}{% for b in [1, 2] %}{% if b == 2 %}{% break %}{% endif %}{{ a }}{{ b }} "
              "{% endfor %}{% endfor %}"),
            "11 21 ");
}

TEST(ChatTemplateSemanticsTest, ScopingOfSet) {
  // A for-iteration is its own scope: the outer value is unchanged afterwards, and every
  // iteration starts again from the outer value.
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }}"),
            "111 111 1");
  // if-blocks are not scopes.
  EXPECT_EQ(R("{% if true %}{% set y = 'set in if' %}{% endif %}{{ y }}"), "set in if");
  // namespace() is how state crosses iterations.
  EXPECT_EQ(M("{% set ns = namespace(n=0, found=false) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
              "{% if m.role == 'system' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}"),
            "3 True");
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.a = [1] %}{{ ns.a + [2] }} {{ ns }}"), "[1, 2] <Namespace {'a': [1]}>");
  EXPECT_EQ(R("{% set ns = namespace({'k': 1}, j=2) %}{{ ns.k }}{{ ns.j }}{{ ns.missing is defined }}"), "12False");
  EXPECT_NE(R("{% set d = {} %}{% set d.x = 1 %}").find("non-namespace"), std::string::npos);
  // set block, tuple unpacking, with.
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{% set c %}[{{ a + b }}]{% endset %}{{ c }}"), "[3]");
  EXPECT_EQ(R("{% set s | upper %}shout{% endset %}{{ s }}"), "SHOUT");
  EXPECT_EQ(R("{% with p = 1, q = 2 %}{{ p + q }}{% endwith %}[{{ p }}]"), "3[]");
  // Top-level sets can shadow inputs, e.g. `{% set messages = messages[1:] %}`.
  EXPECT_EQ(M("{% set messages = messages[1:] %}{{ messages | length }}"), "2");
}

TEST(ChatTemplateSemanticsTest, Macros) {
  EXPECT_EQ(R("{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}"
              "{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet('X', 'Hi') }}"),
            "Hello, Bob! Hello, Al? Hi, X!");
  EXPECT_EQ(R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}"), "4321");
  // Defaults may use earlier parameters; missing parameters are Undefined.
  EXPECT_EQ(R("{% macro f(a, b=a * 2, c=none) %}{{ a }},{{ b }},{{ c }},{{ d }}{% endmacro %}{{ f(3) }}"), "3,6,None,");
  EXPECT_EQ(R("{% macro f(a) %}[{{ a }}]{% endmacro %}{{ f() }}"), "[]");
  // A macro sees variables of the template as they are when it is called.
  EXPECT_EQ(R("{% macro show() %}{{ g }}{% endmacro %}{% set g = 1 %}{{ show() }}{% set g = 2 %}{{ show() }}"), "12");
  EXPECT_EQ(R("{% macro tag(x) %}<{{ x }}>{{ caller() }}</{{ x }}>{% endmacro %}{% call tag('b') %}in{% endcall %}"),
            "<b>in</b>");
  EXPECT_EQ(R("{% macro v() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ v(1, 2, a=3) }}"), "(1, 2){'a': 3}");
  EXPECT_NE(R("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}").find("takes not more than 1 argument"), std::string::npos);
  EXPECT_NE(R("{% macro f(a) %}{% endmacro %}{{ f(b=1) }}").find("no keyword argument 'b'"), std::string::npos);
  // Macro output is a plain string: it can be trimmed, compared, concatenated.
  EXPECT_EQ(R("{% macro m() %}  x  {% endmacro %}[{{ m() | trim }}]{{ m() == '  x  ' }}"), "[x]True");
}

TEST(ChatTemplateSemanticsTest, UndefinedAndNone) {
  EXPECT_EQ(R("[{{ missing }}][{{ missing is defined }}][{{ missing is undefined }}][{{ missing | length }}]"),
            "[][False][True][0]");
  EXPECT_EQ(R("{{ none }}|{{ none is none }}|{{ 'x' ~ none }}|{{ none | trim }}"), "None|True|xNone|None");
  // `not x is none` parses as `not (x is none)`.
  EXPECT_EQ(R("{%- if not x is none %}A{% else %}B{% endif %}{% if x is not none %}C{% endif %}", {{"x", nullptr}}), "B");
  EXPECT_EQ(R("{%- if not x is none %}A{% endif %}", {{"x", 0}}), "A");
  // Missing keys and out-of-range indices are Undefined; using them further is an error.
  EXPECT_EQ(M("[{{ messages[0].name }}][{{ messages[7] }}][{{ messages[0]['nope'] is defined }}]"), "[][][False]");
  EXPECT_NE(M("{{ messages[7].role }}").find("UndefinedError"), std::string::npos);
  EXPECT_NE(R("{{ missing.attr }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(R("{{ missing + 1 }}").find("UndefinedError"), std::string::npos);
  // Attribute access on None is Undefined (jinja2's getattr), not an error.
  EXPECT_EQ(R("[{{ x.y }}][{{ x['y'] }}]", {{"x", nullptr}}), "[][]");
  EXPECT_EQ(R("{{ missing | default('d') }}|{{ none | default('d') }}|{{ '' | default('d', true) }}|{{ 0 | d(5) }}"),
            "d|None|d|0");
  EXPECT_EQ(R("{{ 'yes' if 0 }}|{{ 'a' if false else 'b' if true else 'c' }}"), "|b");
}

TEST(ChatTemplateSemanticsTest, PythonTruthinessAndOperators) {
  EXPECT_EQ(R("{{ 1 and 'x' }}|{{ 0 and 'x' }}|{{ '' or 'y' }}|{{ [] or {} }}|{{ not [] }}|{{ not 'a' }}"),
            "x|0|y|{}|True|False");
  EXPECT_EQ(R("{{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}"),
            "3.5 2.0 3 -4 2 1.5 1024 0.5");
  EXPECT_EQ(R("{{ 1 + 2.5 }} {{ true + 1 }} {{ 'ab' * 2 }} {{ [0] * 3 }} {{ [1] + [2] }} {{ -(3) }}"),
            "3.5 2 abab [0, 0, 0] [1, 2] -3");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none ~ true ~ [1] }}"), "a1NoneTrue[1]");
  EXPECT_EQ(R("{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}"), "TrueTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ 'at' in 'cat' }}{{ 'z' not in 'cat' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 0} }}{{ 'x' in missing }}"),
            "TrueTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ '%s and %d%%' % ('a', 3) }}|{{ '%05.1f|%-3s|%x' % (3.14159, 'ab', 255) }}"), "a and 3%|003.1|ab |ff");
  // Operator precedence as jinja2 parses it: tests bind tighter than +, ** is left-associative.
  EXPECT_EQ(R("{{ 1 + 2 is odd }} {{ (1 + 2) is odd }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 + 3 * 4 }}"), "1 True 64 4 14");
  // Python's TypeErrors.
  EXPECT_NE(R("{{ 'a' + none }}").find("TypeError"), std::string::npos);
  EXPECT_NE(R("{{ 'a' + [1] }}").find("TypeError"), std::string::npos);
  EXPECT_NE(R("{{ 1 < 'a' }}").find("TypeError"), std::string::npos);
  EXPECT_NE(R("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
}

TEST(ChatTemplateSemanticsTest, PythonStrOfValues) {
  EXPECT_EQ(R("{{ true }} {{ false }} {{ none }} {{ 3 }} {{ 3.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }}"),
            "True False None 3 3.0 1e+20 0.30000000000000004");
  EXPECT_EQ(R("{{ x }}", {{"x", Json::parse(R"([{"type": "image"}, {"text": "it's", "n": null, "f": 1.0}])")}}),
            "[{'type': 'image'}, {'text': \"it's\", 'n': None, 'f': 1.0}]");
  EXPECT_EQ(R("{{ x | trim }}", {{"x", Json::parse(R"([1, true])")}}), "[1, True]");
  EXPECT_EQ(R("{{ (1, 'a') }} {{ {'a': (1,)} }}"), "(1, 'a') {'a': (1,)}");
  EXPECT_EQ(R("{{ {'a': 1}.items() }}"), "dict_items([('a', 1)])");
}

TEST(ChatTemplateSemanticsTest, SubscriptsAndSlices) {
  EXPECT_EQ(R("{{ 'abcdef'[:-1] }} {{ 'abcdef'[1:3] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[-2:] }}"),
            "abcde bc fedcba ace ef");
  EXPECT_EQ(R("{{ [1, 2, 3, 4][1:] }} {{ [1, 2, 3][::-1] }} {{ [1, 2, 3][-1] }} {{ 'h\xc3\xa9llo'[1] }}"),
            "[2, 3, 4] [3, 2, 1] 3 \xc3\xa9");
  EXPECT_EQ(M("{{ messages[-1].role }} {{ messages[1:][0]['role'] }} {{ messages[0].content }}"), "assistant user Be brief.");
  // x.name tries the attribute (a method) first, x['name'] the key first.
  EXPECT_EQ(R("{{ d['items'] }} {{ d.items is defined }} {{ d.get('items') }}", {{"d", {{"items", 5}}}}), "5 True 5");
}

TEST(ChatTemplateSemanticsTest, StringMethods) {
  EXPECT_EQ(R("[{{ '  a b  '.strip() }}][{{ 'xxhixx'.lstrip('x') }}][{{ 'xxhixx'.rstrip('x') }}][{{ '\\n\\tx\\n'.strip() }}]"),
            "[a b][hixx][xxhi][x]");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a,b', 'c']");
  EXPECT_EQ(R("{{ x.split('</think>')[-1] }}|{{ x.split('</think>')[0].split('<think>')[-1] }}",
              {{"x", "<think>why</think>answer"}}),
            "answer|why");
  EXPECT_EQ(R("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x', 'lo')) }}{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}"
              "{{ 'hi there'.title() }}{{ 'a-b'.replace('-', '+') }}"),
            "TrueTrueHIhiHi Therea+b");
  EXPECT_EQ(R("{{ 'hello'.find('l') }}{{ 'hello'.count('l') }}{{ ', '.join(['a', 'b']) }}{{ '{} {}'.format(1, 'x') }}"),
            "22a, b1 x");
  EXPECT_EQ(R("{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('b') }}{{ {'a': 1}.get('b', 0) }}{{ {'a': 1, 'b': 2}.keys() | list }}"
              "{{ {'a': 1, 'b': 2}.values() | list }}"),
            "1None0['a', 'b'][1, 2]");
  // Mutating methods are refused by the immutable sandbox.
  EXPECT_NE(R("{% set l = [1] %}{{ l.append(2) }}").find("unsafe"), std::string::npos);
}

TEST(ChatTemplateSemanticsTest, Filters) {
  EXPECT_EQ(R("[{{ '  pad  ' | trim }}][{{ 'xxhixx' | trim('x') }}]{{ 'AbC' | lower }}{{ 'AbC' | upper }}"
              "{{ 'hello wORLD' | title }}{{ 'hELLO' | capitalize }}"),
            "[pad][hi]abcABCHello WorldHello");
  EXPECT_EQ(R("{{ [1, 2, 3] | length }}{{ 'h\xc3\xa9' | length }}{{ {'a': 1} | count }}{{ [1, 2] | first }}{{ [1, 2] | last }}"
              "{{ [1, 2, 3] | join('-') }}{{ [1, 2] | join }}"),
            "321121-2-312");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort }}{{ ['b', 'A', 'c'] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}"
              "{{ [1, 2, 2, 'a', 'A'] | unique | list }}{{ [1, 2, 3] | reverse | list }}{{ 'abc' | reverse }}"),
            "[1, 2, 3]['A', 'b', 'c'][3, 2, 1][1, 2, 'a'][3, 2, 1]cba");
  EXPECT_EQ(M("{{ messages | map(attribute='role') | join(',') }}|{{ ['a', 'b'] | map('upper') | list }}"
              "|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}"
              "|{{ messages | rejectattr('role', 'in', ['user', 'system']) | map(attribute='content') | first }}"),
            "system,user,assistant|['A', 'B']|1|Hello!");
  EXPECT_EQ(R("{{ [0, 1, 2, '', 'a', none] | select | list }}{{ [1, 2, 3, 4] | select('odd') | list }}"
              "{{ ['a', 'b', 'a'] | reject('equalto', 'a') | list }}{{ [1, 5, 10] | select('>', 3) | list }}"),
            "[1, 2, 'a'][1, 3]['b'][5, 10]");
  // map/select give generators: always true, no len() until |list.
  EXPECT_EQ(R("{{ 'yes' if [1] | select('even') else 'no' }} {{ [1] | select('even') | list | length }}"), "yes 0");
  EXPECT_EQ(R("{{ none | selectattr('x') | list }}"), "[]");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %}|"
              "{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}{{ v }}{% endfor %}"),
            "a2b1|b1a2");
  EXPECT_EQ(R("{{ [1, 2] | list }}{{ 'ab' | list }}{{ 42 | string }}{{ '42' | int + 1 }}{{ '4.7' | int }}{{ 'x' | int }}"
              "{{ 3.9 | int }}{{ '3.5' | float }}{{ 2 | float }}"),
            "[1, 2]['a', 'b']42434033.52.0");
  EXPECT_EQ(R("{{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(method='ceil') }} {{ -3 | abs }}"
              " {{ [1, 2, 3] | sum }} {{ [3, 1] | min }} {{ [3, 1] | max }}"),
            "2.57 2.0 4.0 3.0 3 6 1 3");
  EXPECT_EQ(R("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, first=true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}"),
            "a\n  b\n\n  c|  a\n  b|a\n> \n> b");
  EXPECT_EQ(R("{{ [1, 2, 3, 4, 5] | batch(2) | list }}{{ 'a b c' | wordcount }}{{ 'hello world foo' | truncate(9) }}"),
            "[[1, 2], [3, 4], [5]]3hello...");
  EXPECT_EQ(R("{{ '<b>&\\'' | escape }}|{{ '<b>' | safe }}|{{ '%s-%s' | format(1, 'x') }}"), "&lt;b&gt;&amp;&#39;|<b>|1-x");
  // Markup semantics: safe + str escapes the str (functionary's template relies on it).
  EXPECT_EQ(R("{{ '<a>' | safe + '<b>' }}|{{ '<b>' + '<a>' | safe }}|{{ ('<a>' | safe) ~ '<b>' }}"),
            "<a>&lt;b&gt;|&lt;b&gt;<a>|<a><b>");
}

TEST(ChatTemplateSemanticsTest, ToJson) {
  const Json tool = Json::parse(R"({"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}})");
  EXPECT_EQ(R("{{ t | tojson }}", {{"t", tool}}),
            R"({"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}})");
  EXPECT_EQ(R("{{ t | tojson(indent=4) }}", {{"t", tool}}),
            "{\n    \"name\": \"f\",\n    \"parameters\": {\n        \"type\": \"object\",\n        \"properties\": {\n"
            "            \"q\": {\n                \"type\": \"string\"\n            }\n        }\n    }\n}");
  EXPECT_EQ(R("{{ [1, [], {}] | tojson(indent=2) }}"), "[\n  1,\n  [],\n  {}\n]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': none} | tojson(sort_keys=true) }}|{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"),
            R"({"a": null, "b": 1}|{"a":[1,2]})");
  // ensure_ascii=False by default; <, >, & and ' are not escaped; control characters are.
  EXPECT_EQ(R("{{ x | tojson }}", {{"x", "\xc3\xa9<&>'\"\\\n\x01"}}), "\"\xc3\xa9<&>'\\\"\\\\\\n\\u0001\"");
  EXPECT_EQ(R("{{ x | tojson(ensure_ascii=true) }}", {{"x", "\xc3\xa9\xf0\x9f\x98\x80"}}), R"("\u00e9\ud83d\ude00")");
  EXPECT_EQ(R("{{ [1.0, 2.5e-7, 1e16, true, none] | tojson }}"), "[1.0, 2.5e-07, 1e+16, true, null]");
  // Key order is kept: the input JSON's order, not sorted.
  EXPECT_EQ(R("{{ x | tojson }}", {{"x", Json::parse(R"({"z": 1, "a": 2})")}}), R"({"z": 1, "a": 2})");
  // json.dumps refuses Undefined.
  EXPECT_NE(R("{{ missing | tojson }}").find("not JSON serializable"), std::string::npos);
  // Slicing the JSON text, as Mistral's template does: `(tool_call.function | tojson)[:-1]`.
  EXPECT_EQ(R("{{ ({'a': 1} | tojson)[:-1] }}, \"id\": 1}"), R"({"a": 1, "id": 1})");
}

TEST(ChatTemplateSemanticsTest, Tests) {
  EXPECT_EQ(R("{{ x is string }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}"
              "{{ 1.0 is float }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 3 is iterable }}",
              {{"x", "s"}}),
            "TrueTrueTrueTrueFalseTrueTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ [] is sequence }}{{ none is none }}{{ false is false }}{{ 0 is false }}{{ true is true }}"
              "{{ true is boolean }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}"),
            "TrueTrueTrueFalseTrueTrueTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ 'a' is in 'abc' }}{{ 'a' is equalto 'a' }}{{ 1 is eq 1.0 }}{{ 2 is gt 1 }}{{ 'abc' is lower }}"
              "{{ 'ABC' is upper }}{{ x is sameas none }}",
              {{"x", nullptr}}),
            "TrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(M("{{ messages[0]['content'] is string }}{{ messages[0] is mapping }}{{ messages is not string }}"),
            "TrueTrueTrue");
}

TEST(ChatTemplateSemanticsTest, Globals) {
  EXPECT_EQ(R("{{ range(4) | list }}{{ range(1, 10, 3) | list }}{{ range(3, 0, -1) | list }}"),
            "[0, 1, 2, 3][1, 4, 7][3, 2, 1]");
  EXPECT_EQ(R("{{ dict(a=1, b='x') }}{{ dict([('k', 2)]) }}"), "{'a': 1, 'b': 'x'}{'k': 2}");
  EXPECT_EQ(R("{% set j = joiner(', ') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}"), "1, 2, 3");
  EXPECT_NE(R("{{ range(1000000) | length }}").find("Range too big"), std::string::npos);
}

TEST(ChatTemplateSemanticsTest, RaiseExceptionMessageIsVerbatim) {
  auto r = RenderWith("{% if messages | length > 1 %}{{ raise_exception('Only ' ~ 1 ~ \" message, got: \" ~ "
                      "messages | length) }}{% endif %}",
                      Json{{"messages", Messages()}});
  ASSERT_FALSE(r.ok);
  EXPECT_TRUE(r.raised);
  EXPECT_EQ(r.text, "Only 1 message, got: 3");
  // Other failures are not marked as raised by the template.
  auto t = RenderWith("{{ 'a' + none }}");
  EXPECT_FALSE(t.ok);
  EXPECT_FALSE(t.raised);
}

TEST(ChatTemplateSemanticsTest, StrftimeNowUsesTheFrozenClock) {
  // 2025-01-15 was a Wednesday, day 15 of the year.
  EXPECT_EQ(R("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %j %I%p') }}"),
            "15 Jan 2025|2025-01-15 14:30:00|Wednesday January 015 02PM");
  EXPECT_EQ(R("{{ strftime_now('%-d/%-m %y|%f|%z|%Z|%%') }}"), "15/1 25|000000|||%");
  // The Llama 3.x prologue.
  EXPECT_EQ(R("{%- if not date_string is defined %}{%- if strftime_now is defined %}"
              "{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- else %}{%- set date_string = \"26 Jul 2024\" %}"
              "{%- endif %}{%- endif %}Today Date: {{ date_string }}"),
            "Today Date: 15 Jan 2025");
  EXPECT_EQ(R("{%- if not date_string is defined %}{% set date_string = 'x' %}{% endif %}{{ date_string }}",
              {{"date_string", "01 Feb 2024"}}),
            "01 Feb 2024");
  // A real clock when not frozen: a 4-digit year.
  auto live = RenderWith("{{ strftime_now('%Y') }}", Json{{"now", ""}});
  ASSERT_TRUE(live.ok) << live.text;
  EXPECT_EQ(live.text.size(), 4u);
  auto bad = ChatTemplate::Parse("x");
  ASSERT_TRUE(bad.ok());
  ChatTemplate::Inputs in;
  in.now = "yesterday";
  EXPECT_EQ(bad->Render(in).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateSemanticsTest, InputsAndSpecialTokens) {
  auto t = ChatTemplate::Parse("{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|"
                               "{{ add_generation_prompt }}|{{ extra }}",
                               Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  ASSERT_TRUE(t.ok()) << t.status();
  ChatTemplate::Inputs in;
  in.kwargs = Json{{"eos_token", "<END>"}, {"extra", 7}};  // kwargs override special tokens
  in.add_generation_prompt = true;
  EXPECT_EQ(*t->Render(in), "<s>|<END>|True|True|True|7");
  in.kwargs = Json{{"messages", 1}};
  EXPECT_EQ(t->Render(in).status().code(), absl::StatusCode::kInvalidArgument);  // a duplicate keyword in Python
  // Callers holding a plain nlohmann::json can assign it (keys then arrive sorted).
  const nlohmann::json plain = {{"extra", "p"}};
  in.kwargs = plain;
  EXPECT_EQ(*t->Render(in), "<s>|</s>|True|True|True|p");
}

}  // namespace
}  // namespace qeff::chat
