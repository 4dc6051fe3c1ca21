// Minimal safetensors reader for the reference outputs (F32 and I64 tensors).
'use strict';
const fs = require('fs');

function readSafetensors(path) {
  const buf = fs.readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = info.data_offsets;
    // Copy so the typed array is aligned whatever the header length.
    const bytes = new Uint8Array(buf.subarray(base + b, base + e));
    let data;
    if (info.dtype === 'F32') data = new Float32Array(bytes.buffer);
    else if (info.dtype === 'I64') data = new BigInt64Array(bytes.buffer);
    else throw new Error(`unsupported dtype ${info.dtype} for ${name}`);
    out[name] = { dtype: info.dtype, shape: info.shape, data };
  }
  return out;
}

module.exports = { readSafetensors };
