// A client that goes away mid-stream frees its KV slot, and a full queue is HTTP 429, against
// a qeffd serving one slow model ("busy") with --max-active-slots 1 --max-queued-requests 1:
//   node openai_disconnect.js http://HOST:PORT
// A holds the only slot, B waits for it, C is refused (429, rate_limit_exceeded); A's client
// aborts, so B gets the slot and streams; B's client aborts; the model ends idle, both counted
// as aborted, and the server keeps serving.
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const { scrape, value } = require('./openai_prom.js');

const base = process.argv[2];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });
const L = { model_name: 'busy' };
const body = { model: 'busy', prompt: [464], max_tokens: 1000, temperature: 0, stream: true };

async function gauge(name) {
  return value((await scrape(base)).families, name, L);
}
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}
// Opens a stream and waits for its first text.
async function open() {
  const stream = await client.completions.create(body);
  const it = stream[Symbol.asyncIterator]();
  for (;;) {
    const { value: chunk, done } = await it.next();
    assert.ok(!done, 'the stream ended before its first token');
    if (chunk.choices[0].text) return stream;
  }
}

(async () => {
  const m0 = await scrape(base);
  const aborts0 = value(m0.families, 'qeff:request_success_total', { ...L, finished_reason: 'abort' }) ?? 0;
  const a = await open();
  assert.equal(await gauge('qeff:num_requests_running'), 1);
  assert.equal(await gauge('qeff:kv_cache_usage_perc'), 1);
  const bPromise = open();  // waits in the queue until A's slot is free
  await until('B to be queued', async () => (await gauge('qeff:num_requests_waiting')) === 1);
  try {
    await client.completions.create({ ...body, stream: false });
    assert.fail('expected 429');
  } catch (e) {
    assert.ok(e instanceof OpenAI.RateLimitError, `${e}`);
    assert.equal(e.status, 429);
    assert.equal(e.error.code, 'rate_limit_exceeded');
    assert.match(e.error.message, /--max-queued-requests/);
  }
  a.controller.abort();  // A's client goes away mid-stream
  const b = await bPromise;  // ... so B gets the slot and streams
  assert.equal(await gauge('qeff:num_requests_waiting'), 0);
  b.controller.abort();
  await until('the model to be idle', async () => (await gauge('qeff:num_requests_running')) === 0);
  const m1 = await scrape(base);
  assert.equal(value(m1.families, 'qeff:request_success_total', { ...L, finished_reason: 'abort' }) - aborts0, 2);
  assert.equal(value(m1.families, 'qeff:kv_cache_usage_perc', L), 0);
  const gen = value(m1.families, 'qeff:generation_tokens_total', L) - (value(m0.families, 'qeff:generation_tokens_total', L) ?? 0);
  assert.ok(gen > 0 && gen < 2000, `the aborted streams stopped early (${gen} tokens)`);
  // Still serving.
  const ok = await client.completions.create({ model: 'busy', prompt: [464], max_tokens: 3, temperature: 0 });
  assert.equal(ok.usage.completion_tokens, 3);
  console.log(`openai_disconnect: aborted streams generated ${gen} tokens`);
  console.log('openai_disconnect: 1 passed, 0 failed');
})().catch((e) => {
  console.log(`FAIL ${(e && e.stack) || e}`);
  console.log('openai_disconnect: 0 passed, 1 failed');
  process.exit(1);
});
