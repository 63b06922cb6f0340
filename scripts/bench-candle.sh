#!/usr/bin/env bash
# lit vs candle (a Rust peer) on identical weights and inputs, measured alternately in one run:
#   - all-MiniLM-L6-v2 sentence embeddings (lit run bert vs candle-transformers' BERT);
#   - a synthetic Llama (lit synth --hf; the same file exported into a store) decoding greedily
#     with a KV cache: lit resident (streamer, budget ≥ model), lit --plain (plain Burn) and candle.
# Both fit in memory here, so this is compute against compute. Usage:
#   scripts/bench-candle.sh [PARAMS, default 250M] [ROUNDS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
PARAMS="${1:-250M}"
ROUNDS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
PEER_TARGET="$HOME/.cache/lit-candle-target"

cargo build --release -p lit-cli >&2
(cd examples/candle-peer && CARGO_TARGET_DIR="$PEER_TARGET" cargo build --release) >&2
LIT="$CARGO_TARGET_DIR/release/lit"
PEER="$PEER_TARGET/release/candle-peer"
MINILM="${LIT_MINILM_DIR:-$(bash scripts/fetch-minilm.sh | tail -n 1)}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$LIT" export "$MINILM" "$WORK/minilm.lit" >/dev/null 2>&1
"$LIT" synth llama "$WORK/llama-hf" --params "$PARAMS" --seed 3 --hf >/dev/null
"$LIT" export "$WORK/llama-hf" "$WORK/llama.lit" >/dev/null 2>&1

TEXTS=("A man is eating food." "A man is eating a piece of bread." "The girl is carrying a baby."
       "A man is riding a horse." "The stock market crashed after the announcement of new tariffs.")
TOKENS=8
REPEAT=10

for round in $(seq "$ROUNDS"); do
  echo "round $round" >&2
  "$LIT" run bert "$WORK/minilm.lit" --json --repeat "$REPEAT" "${TEXTS[@]}" >"$WORK/lit-bert.$round" 2>"$WORK/lit-bert.err.$round"
  "$PEER" bert "$MINILM" "$REPEAT" "${TEXTS[@]}" >"$WORK/candle-bert.$round" 2>"$WORK/candle-bert.err.$round"
  "$LIT" run llama "$WORK/llama.lit" --ids --prompt 1 --max-tokens "$TOKENS" --prefetch 0 >"$WORK/lit-llama.$round" 2>"$WORK/lit-llama.err.$round"
  "$LIT" run llama "$WORK/llama.lit" --ids --prompt 1 --max-tokens "$TOKENS" --plain >"$WORK/plain-llama.$round" 2>"$WORK/plain-llama.err.$round"
  "$PEER" llama "$WORK/llama-hf" "$TOKENS" >"$WORK/candle-llama.$round" 2>"$WORK/candle-llama.err.$round"
done

python3 - "$WORK" "$ROUNDS" "$PARAMS" <<'PY'
import json, statistics, sys
work, rounds, params = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def timing(path, key):
    for line in open(path):
        if line.startswith("timing "):
            for kv in line.split()[1:]:
                k, v = kv.split("=", 1)
                if k == key:
                    return [float(x) for x in v.split(",") if x]
    raise SystemExit(f"{path}: no {key}")
def med(name, key):
    # Skip each process's first pass (it reads the weights); median over the rest of every round.
    xs = [x for r in range(1, rounds + 1) for x in timing(f"{work}/{name}.err.{r}", key)[1:]]
    return statistics.median(xs)
bert_lit, bert_candle = med("lit-bert", "embed_ms"), med("candle-bert", "embed_ms")
ll_lit, ll_plain, ll_candle = med("lit-llama", "pass_ms"), med("plain-llama", "pass_ms"), med("candle-llama", "pass_ms")
a = json.load(open(f"{work}/lit-bert.1")); b = json.load(open(f"{work}/candle-bert.1"))
cos = min(sum(x * y for x, y in zip(u, v)) for u, v in zip(a, b))
tok_lit = open(f"{work}/lit-llama.1").readline().strip()
tok_candle = open(f"{work}/candle-llama.1").readline().strip()
out = {
    "minilm_embed_ms": {"lit": bert_lit, "candle": bert_candle, "lit_over_candle": bert_lit / bert_candle},
    "minilm_min_cosine_lit_vs_candle": cos,
    "llama_params": params,
    "llama_token_ms": {"lit_resident": ll_lit, "plain_burn": ll_plain, "candle": ll_candle,
                        "lit_over_candle": ll_lit / ll_candle, "lit_over_plain_burn": ll_lit / ll_plain},
    "llama_tokens_agree": tok_lit == tok_candle, "llama_tokens": {"lit": tok_lit, "candle": tok_candle},
}
print(json.dumps(out, indent=2))
PY
