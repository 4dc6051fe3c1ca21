// Runs an ONNX model once with onnxruntime (CPU) and prints every output as JSON.
//   node run_model.js model.onnx inputs.json
// inputs.json: {"name": {"type": "float32" | "int64", "dims": [...], "data": [...]}, ...}
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [modelPath, inputsPath] = process.argv.slice(2);
  const spec = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const feeds = {};
  for (const [name, t] of Object.entries(spec)) {
    const data = t.type === 'int64' ? BigInt64Array.from(t.data.map(BigInt)) : Float32Array.from(t.data);
    feeds[name] = new ort.Tensor(t.type, data, t.dims);
  }
  const session = await ort.InferenceSession.create(modelPath);
  const out = await session.run(feeds);
  const result = {};
  for (const [name, t] of Object.entries(out)) {
    result[name] = { dims: t.dims, data: Array.from(t.data, (x) => (typeof x === 'bigint' ? Number(x) : x)) };
  }
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
