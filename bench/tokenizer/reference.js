// The reference side of bench/tokenizer: HF's Rust `tokenizers` through its Node binding (npm
// `tokenizers` 0.23.2, the library that produced tests/fixtures/tokenizers). Same protocol as
// qeff-tokenizer-bench: one warm-up pass, one timed pass, documents encoded one after another.
//   node reference.js bench TOKENIZER_DIR CORPUS.jsonl [IDS_OUT]
//   node reference.js tokenize TOKENIZER_DIR CASES.jsonl   (qeffctl tokenize --jsonl format)
'use strict';
process.env.TOKENIZERS_PARALLELISM = 'false';
process.env.RAYON_NUM_THREADS = '1';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

async function bench(dir, corpus, idsOut) {
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const docs = readJsonl(corpus).map((d) => d.text);
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);
  const seconds = [0, 0];
  let tokens = 0;
  let ids = [];
  for (let pass = 0; pass < 2; pass++) {
    tokens = 0;
    ids = [];
    t0 = process.hrtime.bigint();
    for (const d of docs) {
      const enc = await tok.encode(d, null, { addSpecialTokens: true });
      const got = enc.getIds();
      tokens += got.length;
      if (pass === 1 && idsOut) ids.push(got);
    }
    seconds[pass] = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  if (idsOut) fs.writeFileSync(idsOut, ids.map((v) => JSON.stringify(Array.from(v))).join('\n') + '\n');
  console.log(JSON.stringify({
    impl: 'hf-tokenizers-node', tokenizer: path.basename(dir), docs: docs.length, bytes, tokens,
    load_s: loadS, cold_s: seconds[0], seconds: seconds[1],
    mb_per_s: bytes / 1e6 / seconds[1], tokens_per_s: tokens / seconds[1],
  }));
}

async function tokenize(dir, casesFile) {
  const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const out = [];
  for (const c of readJsonl(casesFile)) {
    const add = c.add_special_tokens !== false;
    const enc = await tok.encode(c.text, null, { addSpecialTokens: add });
    const ids = Array.from(enc.getIds());
    out.push(JSON.stringify({
      ids, tokens: enc.getTokens(), decoded: await tok.decode(ids, false),
      decoded_skip_special: await tok.decode(ids, true),
    }));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

const [mode, ...args] = process.argv.slice(2);
const run = mode === 'bench' ? bench(...args) : mode === 'tokenize' ? tokenize(...args) : null;
if (!run) {
  console.error('usage: node reference.js bench DIR CORPUS [IDS_OUT] | tokenize DIR CASES');
  process.exit(2);
}
run.catch((e) => { console.error(e); process.exit(1); });
