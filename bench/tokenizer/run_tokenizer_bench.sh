#!/usr/bin/env bash
# Encode throughput, one thread: qeff's tokenizer vs the npm `tokenizers` reference (HF's Rust
# library, the one that produced tests/fixtures/tokenizers), same corpus, same run. Also checks
# that both produce identical ids for every document.
#   bench/tokenizer/run_tokenizer_bench.sh BUILD_DIR [MB]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:?usage: run_tokenizer_bench.sh BUILD_DIR [MB]}"
mb="${2:-4}"
bin="$(find "$build" -name qeff-tokenizer-bench -type f -perm -u+x | head -1)"
[[ -x "$bin" ]] || { echo "qeff-tokenizer-bench not built under $build" >&2; exit 1; }
fixtures="$root/tests/fixtures/tokenizers"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have_ref=1
if [[ ! -d "$here/node_modules/tokenizers" ]]; then
  (cd "$here" && npm install --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) || have_ref=0
fi
command -v node >/dev/null || have_ref=0

"$bin" corpus "$fixtures" "$work/corpus.jsonl" "$mb"
printf '%-18s %10s %12s %12s %12s %8s %s\n' tokenizer impl MB/s tokens/s tokens speedup ids
for t in gpt2 bert-base-uncased mistral qwen2.5 gemma2; do
  q="$("$bin" bench "$fixtures/$t" "$work/corpus.jsonl" "$work/q.ids")"
  qmb="$(node -e "console.log(JSON.parse(process.argv[1]).mb_per_s.toFixed(2))" "$q" 2>/dev/null || echo "$q")"
  qtps="$(node -e "console.log(Math.round(JSON.parse(process.argv[1]).tokens_per_s))" "$q" 2>/dev/null || echo -)"
  qtok="$(node -e "console.log(JSON.parse(process.argv[1]).tokens)" "$q" 2>/dev/null || echo -)"
  if [[ $have_ref == 1 ]]; then
    r="$(cd "$here" && node reference.js bench "$fixtures/$t" "$work/corpus.jsonl" "$work/r.ids")"
    rmb="$(node -e "console.log(JSON.parse(process.argv[1]).mb_per_s.toFixed(2))" "$r")"
    rtps="$(node -e "console.log(Math.round(JSON.parse(process.argv[1]).tokens_per_s))" "$r")"
    rtok="$(node -e "console.log(JSON.parse(process.argv[1]).tokens)" "$r")"
    same="$(cmp -s "$work/q.ids" "$work/r.ids" && echo identical || echo DIFFERENT)"
    speed="$(node -e "console.log((process.argv[1]/process.argv[2]).toFixed(1)+'x')" "$qmb" "$rmb")"
    printf '%-18s %10s %12s %12s %12s %8s %s\n' "$t" qeff "$qmb" "$qtps" "$qtok" "$speed" "$same"
    printf '%-18s %10s %12s %12s %12s\n' "" hf-node "$rmb" "$rtps" "$rtok"
  else
    printf '%-18s %10s %12s %12s %12s %8s %s\n' "$t" qeff "$qmb" "$qtps" "$qtok" - "(reference unavailable)"
  fi
done
