// Drives qeff's OpenAI-compatible HTTP API with the official `openai` SDK, as any OpenAI user
// would: completions and chat completions (streamed and not), stop strings, n, logprobs, seeds,
// embeddings, and errors. Run by tests/integration/http_test.cc against a real qeffd:
//   node openai_api.js http://HOST:PORT SOURCE_DIR
// Models served: gpt2 (tests/fixtures/hf/gpt2, ctx_len 64), gpt2-chat (the same with a ChatML
// chat_template) and bert (tests/fixtures/hf/bert).
'use strict';
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const OpenAI = require('openai');
const { readSafetensors } = require('./safetensors.js');

const base = process.argv[2];
const src = process.argv[3];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });
const gpt2 = JSON.parse(fs.readFileSync(path.join(src, 'tests/fixtures/hf/gpt2/reference.json'), 'utf8'));
const bertDir = path.join(src, 'tests/fixtures/hf/bert');
const bert = JSON.parse(fs.readFileSync(path.join(bertDir, 'reference.json'), 'utf8'));
const hfText = gpt2.outputs.generation.map((g) => g.decoded_new_text);

const checks = [];
function check(name, fn) { checks.push([name, fn]); }

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

function chatml(messages) {
  return messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';
}

check('models.list names every served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    ids.push(m.id);
  }
  assert.deepEqual(ids.sort(), ['bert', 'gpt2', 'gpt2-chat']);
});

check('greedy completion equals HF transformers\' decoded greedy text', async () => {
  for (let i = 0; i < 2; ++i) {
    const r = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[i].text, max_tokens: 16, temperature: 0 });
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, 'gpt2');
    assert.ok(Math.abs(r.created - Date.now() / 1000) < 300, `created ${r.created} is unix seconds`);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, hfText[i]);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.choices[0].logprobs, null);
    assert.deepEqual(r.usage, { prompt_tokens: gpt2.inputs[i].length, completion_tokens: 16, total_tokens: gpt2.inputs[i].length + 16 });
  }
});

check('prompts as token ids and as a list give one choice each, in order', async () => {
  const ids = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[1].input_ids, max_tokens: 16, temperature: 0 });
  assert.equal(ids.choices[0].text, hfText[1]);
  const list = await client.completions.create({ model: 'gpt2', prompt: [gpt2.inputs[0].text, gpt2.inputs[1].text], max_tokens: 16, temperature: 0 });
  assert.deepEqual(list.choices.map((c) => [c.index, c.text]), [[0, hfText[0]], [1, hfText[1]]]);
  assert.equal(list.usage.prompt_tokens, gpt2.inputs[0].length + gpt2.inputs[1].length);
  assert.equal(list.usage.completion_tokens, 32);
  const lists = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs.map((x) => x.input_ids), max_tokens: 16, temperature: 0 });
  assert.deepEqual(lists.choices.map((c) => c.text), hfText);
});

check('default max_tokens is 16 and echo prepends the prompt', async () => {
  const r = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[0].text, temperature: 0, echo: true });
  assert.equal(r.choices[0].text, gpt2.inputs[0].text + hfText[0]);
  assert.equal(r.usage.completion_tokens, 16);
});

check('streamed completion: same text, finish_reason on the last chunk, usage chunk', async () => {
  const stream = await client.completions.create({
    model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = await collect(stream);
  const usage = chunks.pop();
  assert.deepEqual(usage.choices, []);
  assert.deepEqual(usage.usage, { prompt_tokens: 8, completion_tokens: 16, total_tokens: 24 });
  assert.ok(chunks.length >= 2, 'tokens arrive in several chunks');
  assert.equal(chunks.map((c) => c.choices[0].text).join(''), hfText[0]);
  assert.ok(chunks.every((c) => c.id === usage.id && c.object === 'text_completion' && c.usage === null));
  assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
  assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'length');
});

check('stop strings end the text before them (across token boundaries), or after them when asked', async () => {
  const t = hfText[0];  // "OverallOverallOverallOverallBright..."
  const cases = [
    { stop: 'Bright', want: t.slice(0, t.indexOf('Bright')) },
    { stop: ['nomatch', 'llBri'], want: t.slice(0, t.indexOf('llBri')) },  // spans "Overall" + "Bright"
    { stop: 'Bright', include: true, want: t.slice(0, t.indexOf('Bright') + 6) },
  ];
  for (const c of cases) {
    const body = { model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 16, temperature: 0, stop: c.stop };
    if (c.include) body.include_stop_str_in_output = true;
    const r = await client.completions.create(body);
    assert.equal(r.choices[0].text, c.want, JSON.stringify(c));
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.completion_tokens < 16);
    const chunks = await collect(await client.completions.create({ ...body, stream: true }));
    assert.equal(chunks.map((x) => x.choices[0].text).join(''), c.want, `streamed ${JSON.stringify(c)}`);
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
  }
  // A stop that never matches: the whole text, finish_reason length.
  const none = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 16, temperature: 0, stop: ['zzz'] });
  assert.equal(none.choices[0].text, t);
  assert.equal(none.choices[0].finish_reason, 'length');
});

check('stop_token_ids end with finish_reason stop', async () => {
  const stopId = gpt2.outputs.generation[0].new_tokens[4];  // the 5th greedy token
  const r = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 16, temperature: 0, stop_token_ids: [stopId] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.completion_tokens <= 5, `${r.usage.completion_tokens} tokens`);
  assert.ok(hfText[0].startsWith(r.choices[0].text));
});

check('n choices; the same seed gives the same texts, unseeded requests differ', async () => {
  const body = { model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 12, temperature: 1.0, n: 3, seed: 1234 };
  const a = await client.completions.create(body);
  const b = await client.completions.create(body);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.ok(new Set(a.choices.map((c) => c.text)).size > 1, 'the choices of one request differ');
  assert.equal(a.usage.completion_tokens, 36);
  const streamed = await collect(await client.completions.create({ ...body, stream: true }));
  const texts = ['', '', ''];
  for (const c of streamed) for (const ch of c.choices) texts[ch.index] += ch.text;
  assert.deepEqual(texts, a.choices.map((c) => c.text), 'streamed choices match');
  const u1 = await client.completions.create({ ...body, seed: undefined, n: 1 });
  const u2 = await client.completions.create({ ...body, seed: undefined, n: 1 });
  assert.notEqual(u1.choices[0].text, u2.choices[0].text, 'two unseeded requests differ');
});

check('completion logprobs: top alternatives whose gaps equal HF\'s logit gaps', async () => {
  const r = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 4, temperature: 0, logprobs: 5 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  assert.deepEqual(lp.text_offset, [0, 7, 14, 21]);  // "Overall" x 3
  for (let i = 0; i < 4; ++i) {
    const top = Object.values(lp.top_logprobs[i]).sort((x, y) => y - x);
    assert.ok(top.length >= 5);
    assert.ok(Math.abs(top[0] - lp.token_logprobs[i]) < 1e-6, 'greedy picks the most likely token');
    assert.ok(lp.token_logprobs[i] < 0);
    // HF's top-5 logits at this step: log-softmax keeps their differences.
    const hf = gpt2.outputs.generation[0].step_top5[i].map((x) => x[1]);
    for (let k = 1; k < 5; ++k) assert.ok(Math.abs((top[0] - top[k]) - (hf[0] - hf[k])) < 1e-3, `step ${i} rank ${k}`);
  }
});

check('chat completion renders the chat template and matches a completion of the rendered prompt', async () => {
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }];
  const chat = await client.chat.completions.create({ model: 'gpt2-chat', messages, max_tokens: 10, temperature: 0 });
  assert.match(chat.id, /^chatcmpl-/);
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(chat.choices[0].finish_reason, 'length');
  const plain = await client.completions.create({ model: 'gpt2-chat', prompt: chatml(messages), max_tokens: 10, temperature: 0 });
  assert.equal(chat.choices[0].message.content, plain.choices[0].text);
  assert.equal(chat.usage.prompt_tokens, plain.usage.prompt_tokens);
  // Content parts are joined; max_completion_tokens wins over max_tokens.
  const parts = await client.chat.completions.create({
    model: 'gpt2-chat', temperature: 0, max_tokens: 3, max_completion_tokens: 10,
    messages: [messages[0], { role: 'user', content: [{ type: 'text', text: 'Say hello.' }] }],
  });
  assert.equal(parts.choices[0].message.content, chat.choices[0].message.content);
  // Without a limit, chat fills the context (64).
  const fill = await client.chat.completions.create({ model: 'gpt2-chat', messages, temperature: 0, ignore_eos: true });
  assert.equal(fill.usage.total_tokens, 64);
  assert.equal(fill.choices[0].finish_reason, 'length');
});

check('streamed chat: role first, then content deltas, finish_reason, usage', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story.' }];
  const full = await client.chat.completions.create({ model: 'gpt2-chat', messages, max_tokens: 12, temperature: 0 });
  const chunks = await collect(await client.chat.completions.create({
    model: 'gpt2-chat', messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  }));
  const usage = chunks.pop();
  assert.deepEqual(usage.usage, full.usage);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  assert.equal(chunks.map((c) => c.choices[0].delta.content || '').join(''), full.choices[0].message.content);
  assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'length');
});

check('chat logprobs with top_logprobs, n and seed', async () => {
  const body = { model: 'gpt2-chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0.8, seed: 99, n: 2, logprobs: true, top_logprobs: 3 };
  const a = await client.chat.completions.create(body);
  const b = await client.chat.completions.create(body);
  assert.equal(a.choices.length, 2);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  for (const c of a.choices) {
    const content = c.logprobs.content;
    assert.equal(content.map((t) => t.token).join(''), c.message.content);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 3);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
      assert.ok(t.logprob <= t.top_logprobs[0].logprob + 1e-6);
    }
  }
});

check('embeddings match HF (mean pooling, L2-normalized; base64 and float; cls)', async () => {
  const ref = readSafetensors(path.join(bertDir, 'outputs.safetensors'));
  const H = 64;
  const near = (got, want, what) => {
    assert.equal(got.length, H);
    let worst = 0;
    for (let d = 0; d < H; ++d) worst = Math.max(worst, Math.abs(got[d] - want[d]));
    assert.ok(worst < 1e-4, `${what}: max |diff| ${worst}`);
  };
  const input = bert.inputs.map((x) => x.input_ids);
  const sdk = await client.embeddings.create({ model: 'bert', input });  // the SDK asks for base64
  assert.equal(sdk.object, 'list');
  assert.equal(sdk.usage.prompt_tokens, input[0].length + input[1].length);
  const asFloat = await client.embeddings.create({ model: 'bert', input, encoding_format: 'float' });
  for (let b = 0; b < 2; ++b) {
    assert.equal(sdk.data[b].index, b);
    near(sdk.data[b].embedding, ref.mean_pooled_normalized.data.subarray(b * H, (b + 1) * H), `base64 ${b}`);
    near(asFloat.data[b].embedding, ref.mean_pooled_normalized.data.subarray(b * H, (b + 1) * H), `float ${b}`);
  }
  const cls = await client.embeddings.create({ model: 'bert', input: input[1], encoding_format: 'float', pooling: 'cls', normalize: false });
  near(cls.data[0].embedding, ref.cls_embedding.data.subarray(H, 2 * H), 'cls');
});

check('errors: OpenAI-shaped, with the right status and param', async () => {
  const expectError = async (promise, status, param) => {
    try {
      await promise;
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIError, `${e}`);
      assert.equal(e.status, status, e.message);
      assert.equal(e.param ?? null, param, e.message);
      assert.ok(typeof e.error.message === 'string' && e.error.message.length > 10);
      assert.ok(typeof e.error.type === 'string');
      return e;
    }
    assert.fail(`expected HTTP ${status}`);
  };
  const nf = await expectError(client.completions.create({ model: 'nope', prompt: 'x' }), 404, 'model');
  assert.ok(nf instanceof OpenAI.NotFoundError);
  assert.match(nf.error.message, /gpt2/, 'the message lists the served models');
  await expectError(client.completions.create({ model: 'gpt2', prompt: 'x', max_tokens: -1 }), 400, 'max_tokens');
  await expectError(client.completions.create({ model: 'gpt2', prompt: 'x', temperature: 'hot' }), 400, 'temperature');
  await expectError(client.completions.create({ model: 'gpt2', prompt: 'x', n: 0 }), 400, 'n');
  await expectError(client.completions.create({ model: 'gpt2', prompt: 'x', stop: [1, 2] }), 400, 'stop');
  await expectError(client.completions.create({ model: 'gpt2', prompt: { text: 'x' } }), 400, 'prompt');
  await expectError(client.completions.create({ model: 'gpt2', prompt: Array(70).fill(464) }), 400, 'prompt');
  await expectError(client.completions.create({ model: 'gpt2', prompt: [50257] }), 400, 'prompt');
  await expectError(client.completions.create({ model: 'gpt2', prompt: 'x', stop_token_ids: [1e6] }), 400, 'stop_token_ids');
  await expectError(client.chat.completions.create({ model: 'gpt2-chat', messages: [] }), 400, 'messages');
  await expectError(client.chat.completions.create({ model: 'gpt2-chat', messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages[0].role');
  await expectError(client.chat.completions.create({ model: 'gpt2-chat', messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }), 400, 'top_logprobs');
  await expectError(client.chat.completions.create({ model: 'gpt2', messages: [{ role: 'user', content: 'x' }] }), 400, 'model');
  await expectError(client.embeddings.create({ model: 'gpt2', input: 'x' }), 400, 'model');
  await expectError(client.completions.create({ model: 'bert', prompt: 'x' }), 400, 'model');
  await expectError(client.embeddings.create({ model: 'bert', input: [Array(40).fill(5)] }), 400, 'input');
  // An error inside a stream (after the headers) reaches the SDK as an APIError too: not
  // provoked here; the server keeps serving after all of the above.
  const ok = await client.completions.create({ model: 'gpt2', prompt: gpt2.inputs[0].text, max_tokens: 16, temperature: 0 });
  assert.equal(ok.choices[0].text, hfText[0]);
});

(async () => {
  let passed = 0, failed = 0;
  for (const [name, fn] of checks) {
    try {
      await fn();
      ++passed;
      console.log(`ok   ${name}`);
    } catch (e) {
      ++failed;
      console.log(`FAIL ${name}\n     ${(e && e.stack) || e}`);
    }
  }
  console.log(`openai_api: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
