// Decode speed of onnxruntime (CPU) on the same exported QEff ONNX graph, for comparison with
// qeff's runtime: node ort_decode_bench.js <export_dir> [ctx_len=128] [steps=32] [threads=2] [prefill=N,...]
// Prefills one token, then runs `steps` decode calls feeding the retained KV outputs back in.
// Each prefill length N also times one call on N tokens (ids 100, 101, ...) with an empty cache of
// max(ctx_len, N) positions, best of 3 after a warm-up, as `prefill_tokens_per_s[N]`.
const ort = require('onnxruntime-node');
const path = require('path');

async function main() {
  const [dir, ctxArg, stepsArg, threadsArg, prefillArg] = process.argv.slice(2);
  const ctx = parseInt(ctxArg || '128', 10);
  const steps = parseInt(stepsArg || '32', 10);
  const threads = parseInt(threadsArg || '2', 10);
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const kvNames = session.inputNames.filter((n) => n.startsWith('past_'));
  const meta = session.inputMetadata ? session.inputMetadata : null;
  // KV shape [1, heads, ctx, head_dim]: read heads/head_dim from the graph by a probe run.
  let feeds = {};
  let kvShape = null;
  const probe = async (heads, headDim) => {
    kvShape = [1, heads, ctx, headDim];
    for (const n of kvNames) feeds[n] = new ort.Tensor('float32', new Float32Array(heads * ctx * headDim), kvShape);
  };
  // The exporter records heads and head_dim in the model metadata; fall back to config.json.
  const cfg = require(path.join(dir, 'config.json'));
  const heads = cfg.num_key_value_heads || cfg.n_head || cfg.num_attention_heads;
  const hidden = cfg.n_embd || cfg.hidden_size;
  const headDim = cfg.head_dim || hidden / (cfg.n_head || cfg.num_attention_heads);
  await probe(heads, headDim);
  const run = async (token, pos) => {
    feeds.input_ids = new ort.Tensor('int64', BigInt64Array.from([BigInt(token)]), [1, 1]);
    feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from([BigInt(pos)]), [1, 1]);
    const out = await session.run(feeds);
    for (const n of kvNames) feeds[n] = out[n + '_RetainedState'];
    const logits = out.logits.data;
    let best = 0;
    for (let i = 1; i < logits.length; ++i) if (logits[i] > logits[best]) best = i;
    return best;
  };
  let tok = await run(1, 0);
  const t0 = process.hrtime.bigint();
  for (let s = 1; s <= steps; ++s) tok = await run(tok, s);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const prefill = {};
  for (const n of prefillArg ? prefillArg.split(',').map((x) => parseInt(x, 10)) : []) {
    const len = Math.max(ctx, n);
    const pfeeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(100 + i)), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [1, n]),
    };
    for (const name of kvNames) {
      pfeeds[name] = new ort.Tensor('float32', new Float32Array(heads * len * headDim), [1, heads, len, headDim]);
    }
    let best = Infinity;
    for (let rep = 0; rep < 4; ++rep) {
      const p0 = process.hrtime.bigint();
      await session.run(pfeeds);
      if (rep > 0) best = Math.min(best, Number(process.hrtime.bigint() - p0) / 1e9);
    }
    prefill[String(n)] = n / best;
  }
  console.log(JSON.stringify({ runtime: 'onnxruntime-node ' + require('onnxruntime-node/package.json').version,
    threads, ctx_len: ctx, steps, decode_tokens_per_s: steps / secs, prefill_tokens_per_s: prefill }));
}
main().catch((e) => { console.error(e); process.exit(1); });
