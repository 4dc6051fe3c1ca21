// /metrics after requests made with the `openai` SDK: the exposition parses strictly (see
// openai_prom.js) and with an independent parser (npm parse-prometheus-text-format), carries
// vLLM's metric names under qeff: with a model_name label, and its counters and histogram
// counts move by exactly what the requests did.
//   node openai_metrics.js http://HOST:PORT     (models gpt2 and gpt2-chat, idle)
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const parsePrometheus = require('parse-prometheus-text-format');
const { scrape, value } = require('./openai_prom.js');

const base = process.argv[2];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });

const FAMILIES = {
  'qeff:num_requests_running': 'gauge',
  'qeff:num_requests_waiting': 'gauge',
  'qeff:kv_cache_usage_perc': 'gauge',
  'qeff:prompt_tokens_total': 'counter',
  'qeff:generation_tokens_total': 'counter',
  'qeff:request_success_total': 'counter',
  'qeff:time_to_first_token_seconds': 'histogram',
  'qeff:inter_token_latency_seconds': 'histogram',
  'qeff:e2e_request_latency_seconds': 'histogram',
  'qeff:request_queue_time_seconds': 'histogram',
  'qeff:request_prefill_time_seconds': 'histogram',
  'qeff:request_decode_time_seconds': 'histogram',
  'qeff:request_prompt_tokens': 'histogram',
  'qeff:request_generation_tokens': 'histogram',
};

function v(m, name, labels) {
  const x = value(m.families, name, labels);
  assert.notEqual(x, undefined, `${name} ${JSON.stringify(labels)} is missing`);
  return x;
}

(async () => {
  const m0 = await scrape(base);
  for (const [name, type] of Object.entries(FAMILIES)) {
    const f = m0.families.get(name);
    assert.ok(f, `family ${name} is missing`);
    assert.equal(f.type, type, name);
    assert.ok(f.help && f.help.length > 10, `${name} has a HELP text`);
    for (const s of f.samples) assert.ok('model_name' in s.labels, `${s.name} has a model_name label`);
  }
  // The independent parser reads the same families, types and counter values.
  const other = parsePrometheus(m0.text);
  for (const [name, type] of Object.entries(FAMILIES)) {
    const f = other.find((x) => x.name === name);
    assert.ok(f, `parse-prometheus-text-format misses ${name}`);
    assert.equal(f.type, type.toUpperCase());
  }
  const c = other.find((x) => x.name === 'qeff:generation_tokens_total').metrics.find((x) => x.labels.model_name === 'gpt2');
  assert.equal(Number(c.value), v(m0, 'qeff:generation_tokens_total', { model_name: 'gpt2' }));

  // Known requests; expected changes per model.
  const want = {};
  const add = (model, r, n) => {
    const w = (want[model] ??= { prompt: 0, gen: 0, stop: 0, length: 0, requests: 0, itl: 0, ttft: 0 });
    for (const ch of r.choices) {
      w[ch.finish_reason] += 1;
      w.requests += 1;
    }
    w.prompt += r.usage.prompt_tokens * n;  // one engine request (and prefill) per choice
    w.gen += r.usage.completion_tokens;
    for (const t of r.perChoiceTokens) {
      w.itl += Math.max(0, t - 1);
      if (t > 0) w.ttft += 1;
    }
  };
  const withTokens = (r) => ({ ...r, perChoiceTokens: r.choices.map(() => r.usage.completion_tokens / r.choices.length) });

  const prompt = 'Once upon a time, there was a';
  const a = await client.completions.create({ model: 'gpt2', prompt, max_tokens: 5, temperature: 0 });
  add('gpt2', withTokens(a), 1);
  const b = await client.completions.create({ model: 'gpt2', prompt, max_tokens: 16, temperature: 0, stop: 'Bright' });
  assert.equal(b.choices[0].finish_reason, 'stop');
  add('gpt2', withTokens(b), 1);
  // Streamed, n = 2: two engine requests of 4 tokens each.
  let usage = null;
  const finish = [];
  for await (const ch of await client.completions.create({ model: 'gpt2', prompt, max_tokens: 4, n: 2, seed: 5, stream: true, stream_options: { include_usage: true } })) {
    if (ch.usage) usage = ch.usage;
    for (const x of ch.choices) if (x.finish_reason) finish[x.index] = x.finish_reason;
  }
  add('gpt2', { choices: finish.map((f) => ({ finish_reason: f })), usage, perChoiceTokens: [4, 4] }, 2);
  const d = await client.chat.completions.create({ model: 'gpt2-chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
  add('gpt2-chat', withTokens(d), 1);

  const m1 = await scrape(base);
  for (const [model, w] of Object.entries(want)) {
    const L = { model_name: model };
    const delta = (name, labels = {}) => v(m1, name, { ...L, ...labels }) - (value(m0.families, name, { ...L, ...labels }) ?? 0);
    assert.equal(delta('qeff:prompt_tokens_total'), w.prompt, `${model} prompt tokens`);
    assert.equal(delta('qeff:generation_tokens_total'), w.gen, `${model} generation tokens`);
    assert.equal(delta('qeff:request_success_total', { finished_reason: 'stop' }), w.stop, `${model} stop`);
    assert.equal(delta('qeff:request_success_total', { finished_reason: 'length' }), w.length, `${model} length`);
    assert.equal(delta('qeff:request_success_total', { finished_reason: 'abort' }), 0, `${model} abort`);
    for (const h of ['e2e_request_latency_seconds', 'request_queue_time_seconds', 'request_prompt_tokens', 'request_generation_tokens']) {
      assert.equal(delta(`qeff:${h}_count`), w.requests, `${model} ${h} count`);
    }
    for (const h of ['time_to_first_token_seconds', 'request_prefill_time_seconds', 'request_decode_time_seconds']) {
      assert.equal(delta(`qeff:${h}_count`), w.ttft, `${model} ${h} count`);
    }
    assert.equal(delta('qeff:inter_token_latency_seconds_count'), w.itl, `${model} inter-token latency count`);
    assert.equal(delta('qeff:request_generation_tokens_sum'), w.gen, `${model} generation tokens sum`);
    assert.ok(delta('qeff:e2e_request_latency_seconds_sum') > 0);
    assert.ok(delta('qeff:time_to_first_token_seconds_sum') > 0);
    // Idle again: nothing running or waiting, no KV slot in use.
    assert.equal(v(m1, 'qeff:num_requests_running', L), 0);
    assert.equal(v(m1, 'qeff:num_requests_waiting', L), 0);
    assert.equal(v(m1, 'qeff:kv_cache_usage_perc', L), 0);
  }
  // E2E >= TTFT for the sums of this model's requests (both from the engine's monotonic clock).
  const e2e = v(m1, 'qeff:e2e_request_latency_seconds_sum', { model_name: 'gpt2' });
  const ttft = v(m1, 'qeff:time_to_first_token_seconds_sum', { model_name: 'gpt2' });
  assert.ok(e2e >= ttft, `e2e ${e2e} >= ttft ${ttft}`);
  console.log(`openai_metrics: ${JSON.stringify(want)}`);
  console.log('openai_metrics: 1 passed, 0 failed');
})().catch((e) => {
  console.log(`FAIL ${(e && e.stack) || e}`);
  console.log('openai_metrics: 0 passed, 1 failed');
  process.exit(1);
});
