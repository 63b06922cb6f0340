#!/usr/bin/env bash
# Many sequences per weight pass: one synthetic Llama streamed under a budget far below its size,
# the same prompts generated 1, 4, 16 and 64 at a time (`lit run llama --prompts --batch`), side by
# side in one run: generated tokens/s and bytes read from the store per generated token.
#   scripts/bench-batch.sh [PARAMS, default 500M] [BUDGET, default 512MiB] [PROMPTS, default 64]
# Env: TOKENS=8 (per prompt), BATCHES="1 4 16 64", SPILL=SIZE (one more run at the last batch size
# with --kv-budget SIZE: keys and values beyond it on disk). Prints one JSON object on stdout;
# checks that every run printed the same tokens. STORE=DIR uses that store (made with seed 11 if
# missing, kept) instead of a temporary one.
set -euo pipefail
cd "$(dirname "$0")/.."
PARAMS="${1:-500M}"
BUDGET="${2:-512MiB}"
N="${3:-64}"
TOKENS="${TOKENS:-8}"
BATCHES="${BATCHES:-1 4 16 64}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
cargo build --release -p lit-cli >&2
LIT="$CARGO_TARGET_DIR/release/lit"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STORE="${STORE:-$WORK/llama.lit}"
[ -f "$STORE/manifest.lit" ] || "$LIT" synth llama "$STORE" --params "$PARAMS" --seed 11 >&2
python3 -c "
import random
random.seed(5)
for _ in range($N): print(','.join(str(random.randrange(1, 1000)) for _ in range(random.randrange(2, 16))))
" > "$WORK/prompts.txt"
RUNS=""
run() { # NAME BATCH [FLAGS...]
  local name="$1" b="$2"; shift 2
  echo "run $name" >&2
  "$LIT" run llama "$STORE" --ids --prompts "$WORK/prompts.txt" --batch "$b" \
    --max-tokens "$TOKENS" --budget "$BUDGET" --stats-json "$WORK/$name.json" "$@" \
    >"$WORK/$name.jsonl" 2>"$WORK/$name.err"
  RUNS="$RUNS $name:$b"
}
for b in $BATCHES; do run "b$b" "$b"; done
if [ -n "${SPILL:-}" ]; then run spill "${BATCHES##* }" --kv-budget "$SPILL"; fi
python3 - "$WORK" "$RUNS" "$PARAMS" "$BUDGET" "${SPILL:-}" <<'PY'
import json, re, sys
work, runs, params, budget, spill = sys.argv[1:]
out = {"params": params, "budget": budget, "runs": []}
first = None
for run in runs.split():
    name, b = run.split(":")
    lines = open(f"{work}/{name}.jsonl").read()
    first = first or lines
    r = json.load(open(f"{work}/{name}.json"))
    tokens = sum(len(json.loads(l)["tokens"]) for l in lines.splitlines())
    entry = {"in_flight": int(b), "tokens": tokens, "seconds": r["seconds"],
             "tokens_per_s": tokens / r["seconds"], "passes": r["passes"],
             "bytes_read": r["bytes_read"], "bytes_per_token": r["bytes_read"] / tokens,
             "peak_rss": r["peak_rss"], "same_tokens_as_first": lines == first}
    kv = re.search(r"keys and values: ([0-9.]+) MB written .* and ([0-9.]+) MB read back \(peak ([0-9.]+) MB",
                   open(f"{work}/{name}.err").read())
    if name == "spill":
        entry["kv_budget"] = spill
    if kv:
        entry["kv_mb_written"], entry["kv_mb_read_back"], entry["kv_mb_peak_in_memory"] = map(float, kv.groups())
    out["runs"].append(entry)
base = out["runs"][0]["tokens_per_s"]
for run in out["runs"]:
    run["speedup"] = run["tokens_per_s"] / base
    run["speedup_over_linear"] = run["speedup"] / run["in_flight"]
print(json.dumps(out, indent=2))
PY
