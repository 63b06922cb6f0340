#!/usr/bin/env bash
# Many sequences per weight pass: one synthetic Llama streamed under a budget far below its size,
# the same prompts generated 1, 4, 16 and 64 at a time (`lit run llama --prompts --batch`), side by
# side in one run: generated tokens/s and bytes read from the store per generated token.
#   scripts/bench-batch.sh [PARAMS, default 500M] [BUDGET, default 512MiB] [PROMPTS, default 64]
# Env: TOKENS=8 (per prompt), BATCHES="1 4 16 64". Prints one JSON object on stdout; checks that
# every batch size printed the same tokens.
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
"$LIT" synth llama "$WORK/llama.lit" --params "$PARAMS" --seed 11 >&2
python3 -c "
import random
random.seed(5)
for _ in range($N): print(','.join(str(random.randrange(1, 1000)) for _ in range(random.randrange(2, 16))))
" > "$WORK/prompts.txt"
for b in $BATCHES; do
  echo "batch $b" >&2
  "$LIT" run llama "$WORK/llama.lit" --ids --prompts "$WORK/prompts.txt" --batch "$b" \
    --max-tokens "$TOKENS" --budget "$BUDGET" --stats-json "$WORK/b$b.json" >"$WORK/b$b.jsonl" 2>"$WORK/b$b.err"
done
python3 - "$WORK" "$BATCHES" "$PARAMS" "$BUDGET" <<'PY'
import json, sys
work, batches, params, budget = sys.argv[1:]
out = {"params": params, "budget": budget, "runs": []}
first = None
for b in batches.split():
    lines = open(f"{work}/b{b}.jsonl").read()
    first = first or lines
    r = json.load(open(f"{work}/b{b}.json"))
    tokens = sum(len(json.loads(l)["tokens"]) for l in lines.splitlines())
    out["runs"].append({"in_flight": int(b), "tokens": tokens, "seconds": r["seconds"],
                        "tokens_per_s": tokens / r["seconds"], "passes": r["passes"],
                        "bytes_read": r["bytes_read"], "bytes_per_token": r["bytes_read"] / tokens,
                        "peak_rss": r["peak_rss"], "same_tokens_as_first": lines == first})
base = out["runs"][0]["tokens_per_s"]
for run in out["runs"]:
    run["speedup"] = run["tokens_per_s"] / base
    run["speedup_over_linear"] = run["speedup"] / run["in_flight"]
print(json.dumps(out, indent=2))
PY
