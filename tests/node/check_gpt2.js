// Runs a qeff-exported causal-LM ONNX graph with onnxruntime (CPU) and checks it.
//
//   node check_gpt2.js --model model.onnx --config config.json [--fixture DIR] [--tol 1e-4]
//
// With --fixture (a folder with outputs.safetensors + reference.json from HF):
//   a) prefill of each prompt (seq_len = L, zero KV, ctx_len 32): logits vs logits_i[L-1]
//   b) one token per call carrying *_RetainedState back into past_*: logits vs logits_i[p]
//   c) 16 greedy decode steps after (b): tokens == reference new_tokens, logits vs step_top5
//   d) chunked prefill (seq_len 8, right-padded with position -1) then greedy decode: same
//   e) both prompts as one right-padded batch of 2
// Without --fixture (a random model): the same paths checked against each other, with
// full-prefill logits as the reference for every position.
// Prints one JSON object; exit code 0 only when every check passes.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { readSafetensors } = require('./safetensors');

function parseArgs() {
  const a = { tol: 1e-4 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.model || !a.config) throw new Error('usage: check_gpt2.js --model M --config C [--fixture DIR]');
  a.tol = Number(a.tol);
  return a;
}

class Model {
  constructor(session, cfg) {
    this.s = session;
    this.layers = cfg.n_layer;
    this.heads = cfg.n_head;
    this.headDim = cfg.n_embd / cfg.n_head;
    this.vocab = cfg.vocab_size;
  }
  zeroKv(batch, ctx) {
    const kv = {};
    const n = batch * this.heads * ctx * this.headDim;
    for (let i = 0; i < this.layers; ++i) {
      for (const k of ['past_key', 'past_value']) {
        kv[`${k}.${i}`] = new ort.Tensor('float32', new Float32Array(n), [batch, this.heads, ctx, this.headDim]);
      }
    }
    return kv;
  }
  // ids, pos: arrays of rows (numbers). Returns {logits: [rows][vocab], kv, dims}.
  async run(ids, pos, kv) {
    const b = ids.length, s = ids[0].length;
    const feeds = Object.assign({}, kv);
    feeds.input_ids = new ort.Tensor('int64', BigInt64Array.from(ids.flat().map(BigInt)), [b, s]);
    feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(pos.flat().map(BigInt)), [b, s]);
    const out = await this.s.run(feeds);
    const next = {};
    for (const name of Object.keys(kv)) {
      const r = out[name + '_RetainedState'];
      if (!r) throw new Error(`missing output ${name}_RetainedState`);
      const want = kv[name].dims;
      if (r.dims.join() !== want.join()) throw new Error(`${name}_RetainedState dims ${r.dims} != ${want}`);
      next[name] = r;
    }
    const l = out.logits;
    if (l.dims.join() !== [b, 1, this.vocab].join()) throw new Error(`logits dims ${l.dims} != ${[b, 1, this.vocab]}`);
    const rows = [];
    for (let r = 0; r < b; ++r) rows.push(l.data.subarray(r * this.vocab, (r + 1) * this.vocab));
    return { logits: rows, kv: next };
  }
}

function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; ++i) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; ++i) if (a[i] > a[best]) best = i;
  return best;
}

// Prefill `prompt` in chunks of `chunk` tokens (right-padded, position -1), then `steps` greedy
// decode steps. Returns the logits after each chunk's last real token and the new tokens.
async function chunkedThenGreedy(m, prompt, chunk, ctx, steps, onDecodeLogits) {
  let kv = m.zeroKv(1, ctx);
  let logits = null;
  const chunkLogits = [];
  for (let start = 0; start < prompt.length; start += chunk) {
    const ids = [], pos = [];
    for (let j = 0; j < chunk; ++j) {
      const p = start + j;
      ids.push(p < prompt.length ? prompt[p] : 0);
      pos.push(p < prompt.length ? p : -1);
    }
    const r = await m.run([ids], [pos], kv);
    kv = r.kv;
    logits = r.logits[0];
    chunkLogits.push({ last: Math.min(start + chunk, prompt.length) - 1, logits: logits.slice() });
  }
  const tokens = [];
  let next = argmax(logits);
  for (let s = 0; s < steps; ++s) {
    tokens.push(next);
    if (s + 1 === steps) break;
    const r = await m.run([[next]], [[prompt.length + s]], kv);
    kv = r.kv;
    if (onDecodeLogits) onDecodeLogits(s, r.logits[0]);
    next = argmax(r.logits[0]);
  }
  return { chunkLogits, tokens };
}

async function main() {
  const args = parseArgs();
  const cfg = JSON.parse(fs.readFileSync(args.config, 'utf8'));
  const session = await ort.InferenceSession.create(args.model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const m = new Model(session, cfg);
  const result = { ort: require('onnxruntime-node/package.json').version, checks: {}, ok: true };
  const record = (name, diff, extra) => {
    const pass = diff <= args.tol;
    result.checks[name] = Object.assign({ max_abs_diff: diff, pass }, extra || {});
    if (!pass) result.ok = false;
  };
  const recordTokens = (name, got, want) => {
    const pass = got.join() === want.join();
    result.checks[name] = { pass, got, want };
    if (!pass) result.ok = false;
  };

  // Inputs and the per-position reference logits (HF's for a fixture, full prefill otherwise).
  let prompts = [];
  const refLogits = [];  // refLogits[i][p] = Float32Array(vocab)
  let reference = null;
  if (args.fixture) {
    reference = JSON.parse(fs.readFileSync(path.join(args.fixture, 'reference.json'), 'utf8'));
    const outs = readSafetensors(path.join(args.fixture, 'outputs.safetensors'));
    prompts = reference.inputs.map((x) => x.input_ids);
    for (let i = 0; i < prompts.length; ++i) {
      const t = outs[`logits_${i}`];
      const rows = [];
      for (let p = 0; p < prompts[i].length; ++p) rows.push(t.data.subarray(p * m.vocab, (p + 1) * m.vocab));
      refLogits.push(rows);
    }
  } else {
    // Deterministic pseudo-random prompts; the reference is a fresh full prefill of each prefix.
    let x = 12345;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) % m.vocab;
    const maxLen = Math.min(13, cfg.n_positions - 20);
    prompts = [Array.from({ length: maxLen }, rnd), Array.from({ length: Math.max(2, maxLen - 4) }, rnd)];
    for (const prompt of prompts) {
      const rows = [];
      for (let p = 0; p < prompt.length; ++p) {
        const ids = prompt.slice(0, p + 1);
        const r = await m.run([ids], [ids.map((_, j) => j)], m.zeroKv(1, 32));
        rows.push(r.logits[0].slice());
      }
      refLogits.push(rows);
    }
  }

  // The prefill and batch checks' cache: 32 slots, more when a prompt is longer.
  const smallCtx = Math.max(32, ...prompts.map((p) => p.length));
  for (let i = 0; i < prompts.length; ++i) {
    const prompt = prompts[i], L = prompt.length;
    // (a) one prefill call.
    const a = await m.run([prompt], [prompt.map((_, j) => j)], m.zeroKv(1, smallCtx));
    record(`prefill_${i}`, maxAbsDiff(a.logits[0], refLogits[i][L - 1]));

    // (b) one token per call, (c) then greedy decode.
    const ctx = 64;
    let kv = m.zeroKv(1, ctx);
    let worst = 0, logits = null;
    for (let p = 0; p < L; ++p) {
      const r = await m.run([[prompt[p]]], [[p]], kv);
      kv = r.kv;
      logits = r.logits[0];
      worst = Math.max(worst, maxAbsDiff(logits, refLogits[i][p]));
    }
    record(`token_by_token_${i}`, worst);

    const gen = reference ? reference.outputs.generation.find((g) => g.input === i) : null;
    const steps = gen ? gen.new_tokens.length : 8;
    let stepWorst = 0;
    const greedy = [];
    let next = argmax(logits);
    for (let s = 0; s < steps; ++s) {
      greedy.push(next);
      if (gen && gen.step_top5) {
        for (const [id, value] of gen.step_top5[s]) stepWorst = Math.max(stepWorst, Math.abs(logits[id] - value));
      }
      if (s + 1 === steps) break;
      const r = await m.run([[next]], [[L + s]], kv);
      kv = r.kv;
      logits = r.logits[0];
      next = argmax(logits);
    }
    if (gen) {
      recordTokens(`greedy_${i}`, greedy, gen.new_tokens);
      if (gen.step_top5) record(`greedy_step_top5_${i}`, stepWorst);
    }

    // (d) chunked prefill with right padding, then the same greedy decode.
    const d = await chunkedThenGreedy(m, prompt, 8, ctx, steps);
    let chunkWorst = 0;
    for (const c of d.chunkLogits) chunkWorst = Math.max(chunkWorst, maxAbsDiff(c.logits, refLogits[i][c.last]));
    record(`chunked_prefill_${i}`, chunkWorst, { chunks: d.chunkLogits.length });
    recordTokens(`chunked_greedy_${i}`, d.tokens, greedy);
  }

  // (e) both prompts in one right-padded batch.
  const S = Math.max(...prompts.map((p) => p.length));
  const ids = prompts.map((p) => Array.from({ length: S }, (_, j) => (j < p.length ? p[j] : 0)));
  const pos = prompts.map((p) => Array.from({ length: S }, (_, j) => (j < p.length ? j : -1)));
  const e = await m.run(ids, pos, m.zeroKv(prompts.length, smallCtx));
  let batchWorst = 0;
  for (let i = 0; i < prompts.length; ++i) {
    const row = e.logits[i];
    if (!row.every(Number.isFinite)) batchWorst = Infinity;
    batchWorst = Math.max(batchWorst, maxAbsDiff(row, refLogits[i][prompts[i].length - 1]));
  }
  record('batch_padded', batchWorst, { batch: prompts.length, seq_len: S });

  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
