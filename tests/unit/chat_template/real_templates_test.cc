// Real chat templates beyond the four golden fixtures (tests/fixtures/chat_templates/extra,
// see SOURCES.md there), each with a short conversation whose output is worked out by hand from
// the template text and jinja2's rules: Llama 3.2 with tools and strftime_now, Mistral Nemo
// (namespace, tojson slicing), DeepSeek-R1 (think splitting, print-tag newlines), Phi-3.5,
// Gemma-3-style content parts, functionary (Markup escaping), Command-R (recursive macros), Qwen3.
#include <gtest/gtest.h>

#include "tests/unit/chat_template/test_util.h"

namespace qeff::chat {
namespace {

using testing::Json;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Extra(const std::string& name) { return testing::ReadText(testing::FixtureDir("extra") / name); }

std::string Render(const std::string& file, const Json& special, const Json& messages, const Json& tools,
                   bool add_generation_prompt, const Json& kwargs = Json::object()) {
  auto t = ChatTemplate::Parse(Extra(file), special);
  if (!t.ok()) return "PARSE ERROR: " + t.status().ToString();
  ChatTemplate::Inputs in;
  in.messages = messages;
  in.tools = tools;
  in.add_generation_prompt = add_generation_prompt;
  in.kwargs = kwargs;
  in.now = testing::kFrozenNow;
  auto out = t->Render(in);
  return out.ok() ? *out : "ERROR: " + std::string(out.status().message());
}

const Json kWeatherTool = Json::parse(R"([{"type": "function", "function": {"name": "get_weather",
  "description": "Get weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
  "required": ["city"]}}}])");

TEST(ChatTemplateRealTemplatesTest, Llama32WithToolsAndFrozenDate) {
  const Json special = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}};
  const Json messages = Json::parse(R"([{"role": "system", "content": " You are a bot. "},
                                        {"role": "user", "content": "Weather in Paris?"}])");
  EXPECT_EQ(Render("llama-3.2.jinja", special, messages, kWeatherTool, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 15 Jan 2025\n\n"
            "You are a bot.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n"
            "Given the following functions, please respond with a JSON for a function call with its proper "
            "arguments that best answers the given prompt.\n\n"
            "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
            "value}.Do not use variables.\n\n"
            "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n"
            "        \"description\": \"Get weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n"
            "            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n"
            "                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n"
            "        }\n    }\n}\n\n"
            "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateRealTemplatesTest, Llama32ToolCallResultAndDateKwarg) {
  const Json special = {{"bos_token", "<|begin_of_text|>"}};
  const Json messages = Json::parse(R"([{"role": "user", "content": "Weather?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "sunny"}])");
  // A string tool result is `iterable`, so the template json-encodes it.
  EXPECT_EQ(Render("llama-3.2.jinja", special, messages, nullptr, false, {{"date_string", "05 Mar 2024"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
            "<|start_header_id|>ipython<|end_header_id|>\n\n\"sunny\"<|eot_id|>");
  const Json two_calls = Json::parse(R"([{"role": "user", "content": "x"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]}])");
  EXPECT_EQ(Render("llama-3.2.jinja", special, two_calls, nullptr, false),
            "ERROR: This model only supports single tool-calls at once!");
}

TEST(ChatTemplateRealTemplatesTest, MistralNemoToolCallsAndResults) {
  const Json special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const Json messages = Json::parse(R"([{"role": "user", "content": "Hi"},
    {"role": "assistant", "tool_calls": [{"id": "abcdefghi", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
    {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"},
    {"role": "assistant", "content": "Done"}])");
  EXPECT_EQ(Render("mistral-nemo.jinja", special, messages, nullptr, false),
            "<s>[INST]Hi[/INST][TOOL_CALLS][{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\", \"id\": \"abcdefghi\"}]</s>"
            "[TOOL_RESULTS]{\"content\": ok, \"call_id\": \"abcdefghi\"}[/TOOL_RESULTS]Done</s>");
  const Json bad_id = Json::parse(R"([{"role": "user", "content": "Hi"},
    {"role": "assistant", "tool_calls": [{"id": "short", "function": {"name": "f", "arguments": "{}"}}]}])");
  EXPECT_EQ(Render("mistral-nemo.jinja", special, bad_id, nullptr, false),
            "ERROR: Tool call IDs should be alphanumeric strings with length 9!");
  // The system message goes into the last user turn.
  const Json sys = Json::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])");
  EXPECT_EQ(Render("mistral-nemo.jinja", special, sys, nullptr, true), "<s>[INST]S\n\nU[/INST]");
}

TEST(ChatTemplateRealTemplatesTest, DeepSeekR1DropsThinkingOfEarlierTurns) {
  const Json special = {{"bos_token", "<s>"}};
  const Json messages = Json::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nA1"}, {"role": "user", "content": "Q2"}])");
  // `{{bos_token}}` and `{{ns.system_prompt}}` are print tags, so the newline between them stays.
  EXPECT_EQ(Render("deepseek-r1-distill.jinja", special, messages, nullptr, true),
            "<s>\nS<\xEF\xBD\x9CUser\xEF\xBD\x9C>Q1<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>\n\nA1"
            "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
            "<\xEF\xBD\x9CUser\xEF\xBD\x9C>Q2<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>\n");
}

TEST(ChatTemplateRealTemplatesTest, Phi35) {
  const Json messages = Json::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                                        {"role": "assistant", "content": "A"}])");
  EXPECT_EQ(Render("phi-3.5.jinja", {{"eos_token", "<|endoftext|>"}}, messages, nullptr, false),
            "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n<|endoftext|>");
  EXPECT_EQ(Render("phi-3.5.jinja", {{"eos_token", "<|endoftext|>"}}, Json::array({messages[1]}), nullptr, true),
            "<|user|>\nU<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplateRealTemplatesTest, GemmaStyleContentParts) {
  const Json messages = Json::parse(R"([{"role": "system", "content": [{"type": "text", "text": "Sys"}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe "}]}])");
  EXPECT_EQ(Render("gemma-3-style.jinja", {{"bos_token", "<bos>"}}, messages, nullptr, true),
            "<bos><start_of_turn>user\nSys\n\n<start_of_image>Describe<end_of_turn>\n<start_of_turn>model\n");
  const Json not_alternating = Json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  EXPECT_EQ(Render("gemma-3-style.jinja", {{"bos_token", "<bos>"}}, not_alternating, nullptr, true),
            "ERROR: Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(ChatTemplateRealTemplatesTest, FunctionaryEscapesPlainStringsAddedToSafeOnes) {
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "f", "description": "Say 'hi' & <go>",
                                      "parameters": {}}}])");
  const Json messages = Json::parse(R"([{"role": "user", "content": "x"}])");
  const std::string out = Render("functionary-v3.1.jinja", {{"bos_token", "<s>"}}, messages, tools, true);
  EXPECT_NE(out.find("Use the function 'f' to 'Say &#39;hi&#39; &amp; &lt;go&gt;'\n"
                     "{&#34;name&#34;: &#34;f&#34;, &#34;description&#34;: &#34;Say &#39;hi&#39; &amp; &lt;go&gt;&#34;, "
                     "&#34;parameters&#34;: {}}\n\n"),
            std::string::npos)
      << out;
  EXPECT_TRUE(EndsWith(out, "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"
                            "<|start_header_id|>assistant<|end_header_id|>\n\n"))
      << out;
  // No tools: `none | selectattr(...)` is an empty generator, not an error.
  EXPECT_EQ(Render("functionary-v3.1.jinja", {{"bos_token", "<s>"}}, messages, nullptr, false),
            "<s><|start_header_id|>system<|end_header_id|>\n\n\nCutting Knowledge Date: December 2023\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(ChatTemplateRealTemplatesTest, CommandRRecursiveMacros) {
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Get weather",
    "parameters": {"type": "object", "properties": {
      "city": {"type": "string", "description": "City"},
      "days": {"type": ["integer", "number"], "description": "Days"},
      "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"}},
    "required": ["city"]}}}])");
  const Json messages = Json::parse(R"([{"role": "user", "content": " Hi "}])");
  const std::string out = Render("command-r-tool-use-abridged.jinja", {{"bos_token", "<BOS>"}}, messages, tools, true);
  // `json_spec.items` is dict.items (jinja2 tries the attribute before the key), so the array's
  // item type maps to an empty Union: a quirk of the real template that jinja2 reproduces too.
  EXPECT_NE(out.find("```python\ndef get_weather(city: str, days: Optional[Union[int,float]] = None, "
                     "tags: Optional[List[Union[]]] = None) -> List[Dict]:\n    \"\"\"Get weather\n\n    Args:\n"
                     "        city (str): City\n        days (Optional[Union[int,float]]): Days\n"
                     "        tags (Optional[List[Union[]]]): Tags\n    \"\"\"\n    pass\n```<|END_OF_TURN_TOKEN|>"
                     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"),
            std::string::npos)
      << out;
  EXPECT_TRUE(EndsWith(out, "```<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")) << out;
}

TEST(ChatTemplateRealTemplatesTest, Qwen3ThinkingOnlyAfterTheLastQuery) {
  const Json messages = Json::parse(R"([{"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1"}, {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "<think>\nr2\n</think>\n\nA2"}])");
  EXPECT_EQ(Render("qwen3.jinja", Json::object(), messages, nullptr, false),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n");
  EXPECT_EQ(Render("qwen3.jinja", Json::object(), Json::parse(R"([{"role": "user", "content": "Q"}])"), nullptr, true,
                   {{"enable_thinking", false}}),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

}  // namespace
}  // namespace qeff::chat
