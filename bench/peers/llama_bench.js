// llama.cpp's side of bench/run_peers.sh, through node-llama-cpp's prebuilt CPU build (the npm
// package ships the binaries; nothing is built or downloaded at run time):
//   node llama_bench.js --model FILE.gguf --threads N [--ctx 256] [--prompt 32] [--steps 64] [--prefill 32,512]
//                       [--probe QEFF_MEMBW]
// Prints one JSON object: decode tokens/s (after the first generated token, over `steps`
// tokens, greedy, best of 5, after a `prompt`-token prompt, in a context of `ctx` tokens);
// with --probe, `decode_runs` gives each run's speed and the mean of the read bandwidths that
// program (one process, started before the runs, measuring once per request) gave just before
// and just after it (as qeff-decode-bench does for qeff);
// prefill tokens/s per prompt length (one batch of N tokens on an empty cache of N + 16, best
// of 3 after a warm-up) and the greedy tokens of the decode run: the shapes qeff-decode-bench
// compiles. llama.cpp's other defaults stay (f16 KV cache, flash attention "auto"). Prompts are
// the token ids 100, 101, ..., as in qeff-decode-bench, so the greedy tokens can be compared.
import {getLlama, LlamaLogLevel} from 'node-llama-cpp';
import {spawn} from 'node:child_process';
import {createInterface} from 'node:readline';
import {readFileSync} from 'node:fs';
import {parseArgs} from 'node:util';

const {values: args} = parseArgs({options: {
  model: {type: 'string'}, threads: {type: 'string'}, prompt: {type: 'string', default: '32'},
  steps: {type: 'string', default: '64'}, prefill: {type: 'string', default: ''},
  ctx: {type: 'string', default: '256'}, probe: {type: 'string', default: ''},
}});
if (!args.model || !args.threads) {
  console.error('usage: node llama_bench.js --model FILE.gguf --threads N [--ctx 256] [--prompt 32] [--steps 64]' +
      ' [--prefill 32,512] [--probe QEFF_MEMBW]');
  process.exit(2);
}
const threads = parseInt(args.threads, 10);
const promptLen = parseInt(args.prompt, 10);
const steps = parseInt(args.steps, 10);
const ctx = parseInt(args.ctx, 10);
const prefillLens = args.prefill ? args.prefill.split(',').map((s) => parseInt(s, 10)) : [];
const ids = (n) => Array.from({length: n}, (_, i) => 100 + i);
const now = () => Number(process.hrtime.bigint()) / 1e9;

// maxThreads 0: the context's `threads` is then the exact thread count, not a hint.
const llama = await getLlama({gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 0});
const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
const newContext = (size) => model.createContext({contextSize: size, batchSize: size, threads, sequences: 1});
let context = await newContext(Math.max(ctx, promptLen + steps + 1));
let seq = context.getSequence();
const contextSize = context.contextSize;
const flashAttention = context.flashAttention;

// Greedy decode; the first generated token ends the prefill and starts the clock.
async function decode() {
  await seq.clearHistory();
  const tokens = [];
  let t0 = 0;
  for await (const token of seq.evaluate(ids(promptLen), {temperature: 0, yieldEogToken: true})) {
    tokens.push(token);
    if (tokens.length === 1) t0 = now();
    if (tokens.length === steps + 1) break;
  }
  return {tokensPerS: steps / (now() - t0), tokens};
}

async function prefill(n) {
  await seq.clearHistory();
  const t0 = now();
  await seq.evaluateWithoutGeneratingNewTokens(ids(n));
  return n / (now() - t0);
}

await decode();  // warm-up: pages the weights in

// Read bandwidth with this many threads (null without --probe): qeff-membw --each-line measures
// once at start and once per line it is sent, on one buffer allocated once.
let probe = async () => null;
let prober = null;
if (args.probe) {
  prober = spawn(args.probe, ['1', String(threads), '--each-line'], {stdio: ['pipe', 'pipe', 'inherit']});
  const lines = createInterface({input: prober.stdout})[Symbol.asyncIterator]();
  const next = async () => {
    const {value, done} = await lines.next();
    if (done) throw new Error(`${args.probe} exited`);
    return JSON.parse(value).read_gb_per_s[String(threads)];
  };
  let first = true;
  probe = async () => {
    if (!first) prober.stdin.write('\n');
    first = false;
    return next();
  };
}
let best = null;
const decodeRuns = [];
let before = await probe();
for (let rep = 0; rep < 5; ++rep) {
  const run = await decode();
  const after = await probe();
  decodeRuns.push({tokens_per_s: run.tokensPerS, read_bandwidth_gb_per_s: before === null ? null : (before + after) / 2});
  before = after;
  if (!best || run.tokensPerS > best.tokensPerS) best = run;
}
if (prober) prober.stdin.end();
const prefillTokensPerS = {};
for (const n of prefillLens) {
  await context.dispose();
  context = await newContext(Math.max(ctx, n + 16));
  seq = context.getSequence();
  await prefill(n);
  let top = 0;
  for (let rep = 0; rep < 3; ++rep) top = Math.max(top, await prefill(n));
  prefillTokensPerS[String(n)] = top;
}
const pkg = JSON.parse(readFileSync(new URL('./node_modules/node-llama-cpp/package.json', import.meta.url)));
console.log(JSON.stringify({
  runtime: 'node-llama-cpp ' + pkg.version,
  threads, context_size: contextSize, flash_attention: flashAttention,
  prompt_tokens: promptLen, decode_steps: steps,
  decode_tokens_per_s: best.tokensPerS, decode_runs: decodeRuns, prefill_tokens_per_s: prefillTokensPerS,
  generated_token_ids: best.tokens,
}));
await context.dispose();
await model.dispose();
