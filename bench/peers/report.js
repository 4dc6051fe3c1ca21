// Turns bench/run_peers.sh's raw records (one JSON object a line) into its table and OUT_JSON.
//   node report.js add RAW.jsonl FIELDS_JSON STDOUT_FILE STDERR_FILE STATUS [GGUF_SUMMARY]
//       appends one record: FIELDS plus the run's JSON output, or its error (last stderr lines)
//   node report.js bench RAW.jsonl OUT_JSON   -> rows {model, runtime, weight_dtype, threads,
//       decode_tokens_per_s, prefill_tokens_per_s_32, prefill_tokens_per_s_512, roofline_fraction, ...}
//   node report.js check RAW.jsonl OUT_JSON   -> greedy-token agreement; exits 1 on a required mismatch
// Raw records: {kind: "qeff"|"llama.cpp"|"onnxruntime", key, model, weight_dtype, threads,
// result | error, gguf (llama.cpp: the writer's summary)}; `key` groups one model x dtype x threads.
// This VM's read bandwidth drifts by tens of percent between seconds, so qeff and llama.cpp each
// probe it just before and just after every decode run (`result.decode_runs`), and
//   roofline_fraction = the median over runs of tokens/s x bytes read per token / that run's bandwidth,
// where the bytes are the weights once and the KV cache's rows up to each position, averaged
// over the run: qeff-decode-bench's (weights as compiled, its fp32 cache) for qeff; the GGUF
// file's weight bytes per token and llama.cpp's f16 cache for llama.cpp (its decode runs at
// positions prompt .. prompt + steps - 1). `read_bandwidth_gb_per_s` is the median run's bandwidth.
import {appendFileSync, readFileSync, writeFileSync} from 'node:fs';

const [mode, rawPath, outPath] = process.argv.slice(2);
const readRecords = () => readFileSync(rawPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const GGUF_NAME = {fp32: 'F32', bf16: 'BF16', int8: 'Q8_0', int4: 'Q4_0', f16: 'F16'};
const fmt = (x, digits = 1) => (x === null || x === undefined ? '—' : x.toFixed(digits));
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) + '×' : '—');

function add([fields, stdoutPath, stderrPath, status, ggufPath]) {
  const r = JSON.parse(fields);
  const stdout = readFileSync(stdoutPath, 'utf8').trim();
  if (status === '0' && stdout) {
    r.result = JSON.parse(stdout);
  } else {
    const err = readFileSync(stderrPath, 'utf8').trim().split('\n').filter((l) => l.trim());
    r.error = `exit ${status}: ` + err.slice(-3).join(' | ');
  }
  if (ggufPath) r.gguf = JSON.parse(readFileSync(ggufPath, 'utf8'));
  appendFileSync(rawPath, JSON.stringify(r) + '\n');
}

// The median decode run's {fraction, gbs}: each run's tokens/s x bytes over its own bandwidth.
function medianRun(runs, bytes) {
  const shares = (runs || []).filter((x) => x.tokens_per_s && x.read_bandwidth_gb_per_s)
      .map((x) => ({fraction: x.tokens_per_s * bytes / (x.read_bandwidth_gb_per_s * 1e9), gbs: x.read_bandwidth_gb_per_s}))
      .sort((a, b) => a.fraction - b.fraction);
  return shares.length ? shares[Math.floor(shares.length / 2)] : {fraction: null, gbs: null};
}

function bench() {
  const records = readRecords();
  const rows = [];
  for (const r of records) {
    const res = r.result || {};
    const pre = res.prefill_tokens_per_s || {};
    let bytes = null;
    if (r.kind === 'qeff' && r.result) bytes = res.weight_bytes_per_token + res.kv_cache_bytes_per_token;
    if (r.kind === 'llama.cpp' && r.result) {
      const kvRows = Math.min(res.context_size, res.prompt_tokens + (res.decode_steps + 1) / 2);
      bytes = r.gguf.weight_bytes_per_token + r.gguf.kv_f16_bytes_per_position * kvRows;
    }
    const decode = r.result ? res.decode_tokens_per_s : null;
    const median = bytes ? medianRun(res.decode_runs, bytes) : {fraction: null, gbs: null};
    const row = {
      model: r.model, runtime: r.kind, weight_dtype: r.weight_dtype, threads: r.threads,
      decode_tokens_per_s: decode,
      prefill_tokens_per_s_32: pre['32'] ?? null,
      prefill_tokens_per_s_512: pre['512'] ?? null,
      roofline_fraction: median.fraction,
      bytes_per_token: bytes, read_bandwidth_gb_per_s: median.gbs, other_cpu_cores: r.other_cpu_cores,
    };
    if (r.kind === 'llama.cpp') row.gguf_type = GGUF_NAME[r.weight_dtype];
    if (r.result && res.runtime) row.version = res.runtime;
    if (r.error) row.note = r.error;
    rows.push(row);
  }
  writeFileSync(outPath, JSON.stringify(rows, null, 2) + '\n');

  const find = (row, runtime) => rows.find((x) => x.runtime === runtime && x.model === row.model &&
      x.weight_dtype === row.weight_dtype && x.threads === row.threads) || {};
  console.log('| model | weights qeff / llama.cpp | threads | decode tok/s qeff / llama.cpp / ort | ratio |' +
      ' prefill 32 tok/s qeff / llama.cpp / ort | ratio | prefill 512 tok/s qeff / llama.cpp / ort | ratio |' +
      ' roofline qeff / llama.cpp | GB/s | other CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const seen = new Set();
  for (const row of rows) {
    const k = [row.model, row.weight_dtype, row.threads].join('|');
    if (seen.has(k)) continue;
    seen.add(k);
    const q = find(row, 'qeff'), l = find(row, 'llama.cpp'), o = find(row, 'onnxruntime');
    const pct = (x) => (x ? Math.round(100 * x) + '%' : '—');
    const bwRow = q.read_bandwidth_gb_per_s ?? l.read_bandwidth_gb_per_s;
    console.log(`| ${row.model} | ${row.weight_dtype} / ${GGUF_NAME[row.weight_dtype]} | ${row.threads} | ` +
        `${fmt(q.decode_tokens_per_s)} / ${fmt(l.decode_tokens_per_s)} / ${fmt(o.decode_tokens_per_s)} | ` +
        `${ratio(q.decode_tokens_per_s, l.decode_tokens_per_s)} | ` +
        `${fmt(q.prefill_tokens_per_s_32, 0)} / ${fmt(l.prefill_tokens_per_s_32, 0)} / ${fmt(o.prefill_tokens_per_s_32, 0)} | ` +
        `${ratio(q.prefill_tokens_per_s_32, l.prefill_tokens_per_s_32)} | ` +
        `${fmt(q.prefill_tokens_per_s_512, 0)} / ${fmt(l.prefill_tokens_per_s_512, 0)} / ${fmt(o.prefill_tokens_per_s_512, 0)} | ` +
        `${ratio(q.prefill_tokens_per_s_512, l.prefill_tokens_per_s_512)} | ` +
        `${pct(q.roofline_fraction)} / ${pct(l.roofline_fraction)} | ${fmt(bwRow)} | ` +
        `${fmt(Math.max(q.other_cpu_cores ?? 0, l.other_cpu_cores ?? 0), 2)} |`);
  }
  console.log('other CPU: cores used by other processes during the qeff or llama.cpp run (the larger);' +
      ' above ~0.1 someone competed for the 2 cores and that row (2 threads most) is not to be trusted.');
  for (const row of rows.filter((x) => x.note)) {
    console.log(`note: ${row.model} ${row.runtime} ${row.weight_dtype} ${row.threads}t: ${row.note}`);
  }
}

// Pairs whose greedy tokens must agree: the same weights (F16 rounds fp32 weights by < 2^-11).
// bf16-BF16 is reported too, but both sides round activations differently, so it may diverge.
const REQUIRED = new Set(['fp32/f32', 'fp32/f16']);

function check() {
  const records = readRecords();
  const out = [];
  let failed = false;
  for (const l of records.filter((r) => r.kind === 'llama.cpp')) {
    const q = records.find((r) => r.kind === 'qeff' && r.model === l.model && r.weight_dtype === l.qeff_dtype);
    const a = q && q.result ? q.result.generated_token_ids.slice(0, l.tokens) : null;
    const b = l.result ? l.result.generated_token_ids.slice(0, l.tokens) : null;
    let first = -1;
    if (a && b) for (let i = 0; i < l.tokens && first < 0; ++i) if (a[i] !== b[i]) first = i;
    const match = Boolean(a && b) && first < 0;
    const pair = `${l.qeff_dtype}/${l.gguf_type}`;
    const required = REQUIRED.has(pair);
    if (required && !match) failed = true;
    out.push({model: l.model, qeff_weight_dtype: l.qeff_dtype, gguf_type: l.gguf_type.toUpperCase(), required, match,
      first_mismatch: first >= 0 ? first : null, qeff_tokens: a, llama_cpp_tokens: b,
      error: (q && q.error) || l.error || undefined});
    console.log(`${l.model}: qeff ${l.qeff_dtype} vs GGUF ${l.gguf_type.toUpperCase()}: ` +
        (match ? `same ${l.tokens} greedy tokens` : a && b ? `differ from token ${first}` : 'no result') +
        (required ? '' : ' (informational)'));
    if (!match) console.log(`  qeff      ${JSON.stringify(a)}\n  llama.cpp ${JSON.stringify(b)}`);
  }
  writeFileSync(outPath, JSON.stringify(out, null, 2) + '\n');
  console.log(failed ? 'check: FAILED (a required pair differs)' : 'check: ok');
  process.exit(failed ? 1 : 0);
}

if (mode === 'add') add(process.argv.slice(4));
else if (mode === 'bench') bench();
else if (mode === 'check') check();
else {
  console.error('usage: node report.js add|bench|check RAW.jsonl ...');
  process.exit(2);
}
