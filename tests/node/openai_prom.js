// A strict reader of the Prometheus text exposition format (0.0.4) for qeff's /metrics, plus
// helpers the openai_*.js checks share. Strict: every line must be a HELP, TYPE or sample line
// with valid names, labels and values; every sample belongs to a family TYPE'd before it, and a
// family's samples are contiguous; histograms have ascending, cumulative buckets ending in
// le="+Inf" equal to _count, and a _sum. Any violation throws.
'use strict';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value '${s}'`);
  return Number(s);
}

function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name '${name}'`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value must be quoted`);
    let j = eq + 2, value = '';
    for (;; ++j) {
      if (j >= s.length) throw new Error(`${where}: unterminated label value`);
      const c = s[j];
      if (c === '"') break;
      if (c === '\\') {
        const n = s[++j];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${n}`);
      } else {
        value += c;
      }
    }
    if (name in labels) throw new Error(`${where}: duplicate label ${name}`);
    labels[name] = value;
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`${where}: expected ',' between labels`);
      ++i;
    }
  }
  return labels;
}

// Returns Map(family name -> {type, help, samples: [{name, labels, value}]}).
function parseStrict(text) {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map();
  const closed = new Set();
  let current = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, k) => {
    const where = `line ${k + 1} '${line}'`;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      const name = sp < 0 ? rest : rest.slice(0, sp);
      const arg = sp < 0 ? '' : rest.slice(sp + 1);
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (closed.has(name)) throw new Error(`${where}: family ${name} is not contiguous`);
      if (!families.has(name)) families.set(name, { type: null, help: null, samples: [] });
      const f = families.get(name);
      if (f.samples.length) throw new Error(`${where}: HELP/TYPE after samples`);
      if (line.startsWith('# HELP ')) {
        if (f.help !== null) throw new Error(`${where}: second HELP`);
        f.help = arg;
      } else {
        if (f.type !== null) throw new Error(`${where}: second TYPE`);
        if (!TYPES.has(arg)) throw new Error(`${where}: unknown type '${arg}'`);
        f.type = arg;
      }
      if (current !== null && current !== name) closed.add(current);
      current = name;
      return;
    }
    if (line.startsWith('#')) return;  // a comment
    const m = /^([^\s{]+)(\{(.*)\})?[ \t]+(\S+)([ \t]+-?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample line`);
    const name = m[1];
    if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
    const labels = m[3] === undefined ? {} : parseLabels(m[3], where);
    const value = parseValue(m[4], where);
    let family = name;
    if (!families.has(family)) {
      for (const suffix of ['_bucket', '_sum', '_count']) {
        const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
        if (base && families.has(base) && families.get(base).type === 'histogram') family = base;
      }
    }
    const f = families.get(family);
    if (!f || f.type === null) throw new Error(`${where}: sample of a family without # TYPE`);
    if (family !== current) throw new Error(`${where}: family ${family} is not contiguous`);
    if (f.type === 'histogram' && family === name) throw new Error(`${where}: histogram sample without a suffix`);
    if (name.endsWith('_bucket') && f.type === 'histogram' && !('le' in labels)) throw new Error(`${where}: bucket without le`);
    f.samples.push({ name, labels, value });
  });
  for (const [name, f] of families) {
    if (f.type === null) throw new Error(`family ${name} has no # TYPE`);
    if (f.type === 'histogram') checkHistogram(name, f);
  }
  return families;
}

function seriesKey(labels, skip) {
  return JSON.stringify(Object.keys(labels).filter((k) => k !== skip).sort().map((k) => [k, labels[k]]));
}

function checkHistogram(name, f) {
  const series = new Map();
  for (const s of f.samples) {
    const key = seriesKey(s.labels, 'le');
    if (!series.has(key)) series.set(key, { buckets: [], sum: null, count: null });
    const h = series.get(key);
    if (s.name === `${name}_bucket`) h.buckets.push([parseValue(s.labels.le, `${name} le`), s.value]);
    else if (s.name === `${name}_sum`) h.sum = s.value;
    else if (s.name === `${name}_count`) h.count = s.value;
  }
  for (const [key, h] of series) {
    const at = `${name}${key}`;
    if (h.sum === null || h.count === null) throw new Error(`${at}: _sum or _count missing`);
    if (!h.buckets.length || h.buckets[h.buckets.length - 1][0] !== Infinity) throw new Error(`${at}: no le="+Inf" bucket`);
    for (let i = 1; i < h.buckets.length; ++i) {
      if (!(h.buckets[i][0] > h.buckets[i - 1][0])) throw new Error(`${at}: le not ascending`);
      if (h.buckets[i][1] < h.buckets[i - 1][1]) throw new Error(`${at}: buckets not cumulative`);
    }
    if (h.buckets[h.buckets.length - 1][1] !== h.count) throw new Error(`${at}: +Inf bucket != _count`);
  }
}

// The value of one sample: family + exact sample name + labels (a subset must match).
function value(families, sampleName, labels) {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== sampleName) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

async function scrape(base) {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}`);
  const type = res.headers.get('content-type') || '';
  if (!type.startsWith('text/plain')) throw new Error(`/metrics content-type ${type}`);
  const text = await res.text();
  return { text, families: parseStrict(text) };
}

module.exports = { parseStrict, value, scrape };
