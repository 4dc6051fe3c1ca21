// Runs a qeff continuous-batching export (ExportOptions.continuous_batching: KV cache with
// full_batch_size rows, batch_index input, CtxScatterCB/CtxGatherCB) with onnxruntime (CPU) the
// way QEfficient's CB loop drives it, and checks it against a fixture's HF references.
//
//   node check_cb.js --model model.onnx --fixture DIR [--fbs 4] [--ctx 64] [--chunk 6]
//                    [--slots 2,0] [--tol 1e-4]
//
// The cache starts as random values in every slot (a graph that reads a slot it should not,
// or an unwritten position it should mask, shows up as wrong logits), then:
//   a) prefill: prompt i alone (batch 1, batch_index [[slot_i]]) in chunks of --chunk tokens,
//      right-padded with position -1; after each chunk, logits vs HF's logits_i at the chunk's
//      last real token, and the greedy token of the last chunk vs HF's first new token.
//   b) decode: both sequences in one call per step (batch 2, batch_index = their slots), each
//      fed HF's greedy token at its own position; logits vs HF's step logits
//      (generation_step_logits_i, or the step_top5 values where a fixture has only those),
//      greedy tokens vs HF's new_tokens.
//   c) the slots no batch_index named keep their bytes.
// The KV layout (layers, kv heads, head_dim) is read from the graph's inputs. Prints one JSON
// object; exit code 0 only when every check passes.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { readSafetensors } = require('./safetensors');

function parseArgs() {
  const a = { fbs: '4', ctx: '64', chunk: '6', slots: '2,0', tol: '1e-4' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.model || !a.fixture) throw new Error('usage: check_cb.js --model M --fixture DIR [--fbs N] [--ctx C]');
  return {
    model: a.model,
    fixture: a.fixture,
    fbs: Number(a.fbs),
    ctx: Number(a.ctx),
    chunk: Number(a.chunk),
    slots: a.slots.split(',').map(Number),
    tol: Number(a.tol),
  };
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

class CbModel {
  constructor(session, fbs, ctx) {
    this.s = session;
    this.fbs = fbs;
    this.ctx = ctx;
    const meta = session.inputMetadata;
    this.kvNames = meta.filter((m) => m.name.startsWith('past_')).map((m) => m.name);
    const kv = meta.find((m) => m.name === 'past_key.0');
    if (!kv) throw new Error('no past_key.0 input');
    if (kv.shape[0] !== 'full_batch_size') throw new Error(`past_key.0 axis 0 is ${kv.shape[0]}, not full_batch_size`);
    if (!meta.some((m) => m.name === 'batch_index')) throw new Error('no batch_index input');
    this.kvDims = [fbs, kv.shape[1], ctx, kv.shape[3]];
  }
  // Deterministic pseudo-random values in [-1, 1) for every slot of every cache tensor.
  randomKv() {
    let x = 2463534242;
    const next = () => {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      return x / 2147483648 - 1;
    };
    const n = this.kvDims.reduce((p, d) => p * d, 1);
    const kv = {};
    for (const name of this.kvNames) kv[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, next), this.kvDims);
    return kv;
  }
  // ids, pos: rows of numbers; slots: the KV slot of each row. Returns {logits: [rows], kv}.
  async run(ids, pos, slots, kv) {
    const b = ids.length, s = ids[0].length;
    const feeds = Object.assign({}, kv);
    feeds.input_ids = new ort.Tensor('int64', BigInt64Array.from(ids.flat().map(BigInt)), [b, s]);
    feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(pos.flat().map(BigInt)), [b, s]);
    feeds.batch_index = new ort.Tensor('int64', BigInt64Array.from(slots.map(BigInt)), [b, 1]);
    const out = await this.s.run(feeds);
    const next = {};
    for (const name of this.kvNames) {
      const r = out[name + '_RetainedState'];
      if (!r) throw new Error(`missing output ${name}_RetainedState`);
      if (r.dims.join() !== this.kvDims.join()) throw new Error(`${name}_RetainedState dims ${r.dims} != ${this.kvDims}`);
      next[name] = r;
    }
    const l = out.logits;
    const vocab = l.dims[2];
    if (l.dims.length !== 3 || l.dims[0] !== b || l.dims[1] !== 1) throw new Error(`logits dims ${l.dims}`);
    const rows = [];
    for (let r = 0; r < b; ++r) rows.push(l.data.slice(r * vocab, (r + 1) * vocab));
    return { logits: rows, kv: next };
  }
}

// The bytes of `slot` in every cache tensor, concatenated.
function slotValues(kv, slot) {
  const parts = [];
  for (const t of Object.values(kv)) {
    const per = t.data.length / t.dims[0];
    parts.push(...t.data.subarray(slot * per, (slot + 1) * per));
  }
  return parts;
}

async function main() {
  const args = parseArgs();
  const reference = JSON.parse(fs.readFileSync(path.join(args.fixture, 'reference.json'), 'utf8'));
  const outs = readSafetensors(path.join(args.fixture, 'outputs.safetensors'));
  const prompts = reference.inputs.map((x) => x.input_ids);
  if (prompts.length !== 2 || args.slots.length !== 2 || args.slots[0] === args.slots[1]) {
    throw new Error('needs a fixture with two prompts and two different --slots');
  }
  if (args.slots.some((s) => s < 0 || s >= args.fbs)) throw new Error(`--slots outside [0, ${args.fbs})`);
  const session = await ort.InferenceSession.create(args.model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const m = new CbModel(session, args.fbs, args.ctx);
  const result = {
    ort: require('onnxruntime-node/package.json').version,
    fbs: args.fbs, ctx: args.ctx, chunk: args.chunk, slots: args.slots, checks: {}, ok: true,
  };
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

  // HF references: per-position prompt logits and, per generation step, the logits (or top-5).
  const vocab = outs.logits_0.shape[2];
  const promptLogits = prompts.map((p, i) => (pos) => outs[`logits_${i}`].data.subarray(pos * vocab, (pos + 1) * vocab));
  const gens = prompts.map((_, i) => reference.outputs.generation.find((g) => g.input === i));
  const stepDiff = (i, s, logits) => {
    const g = gens[i];
    if (g.step_logits_tensor) {
      const t = outs[g.step_logits_tensor].data;
      return maxAbsDiff(logits, t.subarray(s * vocab, (s + 1) * vocab));
    }
    let d = 0;
    for (const [id, value] of g.step_top5[s]) d = Math.max(d, Math.abs(logits[id] - value));
    return d;
  };

  let kv = m.randomKv();
  const initial = kv;

  // (a) each prompt prefilled alone into its slot, chunked and right-padded.
  const tokens = [[], []];
  for (let i = 0; i < 2; ++i) {
    const prompt = prompts[i];
    let worst = 0, chunks = 0, logits = null;
    for (let start = 0; start < prompt.length; start += args.chunk) {
      const ids = [], pos = [];
      for (let j = 0; j < args.chunk; ++j) {
        const p = start + j;
        ids.push(p < prompt.length ? prompt[p] : 0);
        pos.push(p < prompt.length ? p : -1);
      }
      const r = await m.run([ids], [pos], [args.slots[i]], kv);
      kv = r.kv;
      logits = r.logits[0];
      worst = Math.max(worst, maxAbsDiff(logits, promptLogits[i](Math.min(start + args.chunk, prompt.length) - 1)));
      ++chunks;
    }
    worst = Math.max(worst, stepDiff(i, 0, logits));
    record(`prefill_${i}`, worst, { chunks, slot: args.slots[i] });
    tokens[i].push(argmax(logits));
  }

  // (b) both sequences decoded together, each fed HF's greedy token at its own position.
  const steps = Math.min(gens[0].new_tokens.length, gens[1].new_tokens.length) - 1;
  let decodeWorst = 0;
  for (let s = 0; s < steps; ++s) {
    const ids = [[gens[0].new_tokens[s]], [gens[1].new_tokens[s]]];
    const pos = [[prompts[0].length + s], [prompts[1].length + s]];
    const r = await m.run(ids, pos, args.slots, kv);
    kv = r.kv;
    for (let i = 0; i < 2; ++i) {
      decodeWorst = Math.max(decodeWorst, stepDiff(i, s + 1, r.logits[i]));
      tokens[i].push(argmax(r.logits[i]));
    }
  }
  record('decode', decodeWorst, { steps, batch: 2 });
  for (let i = 0; i < 2; ++i) recordTokens(`tokens_${i}`, tokens[i], gens[i].new_tokens.slice(0, steps + 1));

  // (c) the other slots were never written.
  let changed = 0;
  for (let slot = 0; slot < args.fbs; ++slot) {
    if (args.slots.includes(slot)) continue;
    changed = Math.max(changed, maxAbsDiff(slotValues(kv, slot), slotValues(initial, slot)));
  }
  result.checks.untouched_slots = { pass: changed === 0, max_abs_diff: changed };
  if (changed !== 0) result.ok = false;

  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
