#!/usr/bin/env bash
# Bytes read set the speed: one synthetic Llama exported as f32, q8_0 and q4_0, decoded cold
# (page cache dropped before every pass) inside a cgroup v1 memory limit smaller than the f32
# model, at a small budget and at a budget of most of the cgroup, all in one run, interleaved.
#   scripts/bench-quantized.sh [PARAMS, default 1B] [CGROUP, default 2GiB] [ROUNDS, default 2]
# Needs root (drop_caches, cgroup). Env: WORK=DIR keeps the stores there (made if missing;
# deleted at the end unless KEEP=1); BUDGETS="256MiB 1GiB"; TOKENS=3 (passes per run). A budget
# that holds a quantized model whole reads nothing after the first pass: no ratio is given then.
# Prints one JSON object on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PARAMS="${1:-1B}"
CGROUP_SIZE="${2:-2GiB}"
ROUNDS="${3:-2}"
BUDGETS="${BUDGETS:-256MiB 1GiB}"
TOKENS="${TOKENS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
cargo build --release -p lit-cli >&2
LIT="$CARGO_TARGET_DIR/release/lit"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
CG=/sys/fs/cgroup/memory/lit-bench-quant-$$
cleanup() {
  rmdir "$CG" 2>/dev/null || true
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

bytes() { python3 -c 'import re,sys; s=sys.argv[1]; m=re.fullmatch(r"(\d+)(GiB|MiB)",s); print(int(m[1])<<(30 if m[2]=="GiB" else 20))' "$1"; }

if [ ! -d "$WORK/llama-q4_0.lit" ]; then
  "$LIT" synth llama "$WORK/hf" --params "$PARAMS" --seed 7 --hf >&2
  "$LIT" export "$WORK/hf" "$WORK/llama-f32.lit" >&2
  "$LIT" export "$WORK/hf" "$WORK/llama-q8_0.lit" --quantize q8_0 >&2
  "$LIT" export "$WORK/hf" "$WORK/llama-q4_0.lit" --quantize q4_0 >&2
  rm -rf "$WORK/hf"
fi

mkdir "$CG"
LIMIT=$(bytes "$CGROUP_SIZE")
echo "$LIMIT" > "$CG/memory.limit_in_bytes"
[ "$(cat "$CG/memory.limit_in_bytes")" = "$LIMIT" ] || { echo "could not set the cgroup limit" >&2; exit 1; }
echo 0 > "$CG/memory.swappiness" 2>/dev/null || true

# Raw cold read of the f32 store's files (outside the cgroup), for bytes ÷ bandwidth.
sync; echo 3 > /proc/sys/vm/drop_caches
RAW_BYTES=$(du -cb "$WORK"/llama-f32.lit/layers/* | tail -1 | cut -f1)
T0=$(date +%s.%N); cat "$WORK"/llama-f32.lit/layers/* > /dev/null; T1=$(date +%s.%N)
echo "raw cold read: $RAW_BYTES B in $(python3 -c "print($T1-$T0)") s" >&2

for round in $(seq "$ROUNDS"); do
  for budget in $BUDGETS; do
    for q in f32 q8_0 q4_0; do
      echo "round $round budget $budget $q" >&2
      out="$WORK/r$round-$budget-$q"
      echo 0 > "$CG/memory.max_usage_in_bytes" || true
      set +e
      sh -c 'echo $$ > "$0" && exec "$@"' "$CG/cgroup.procs" "$LIT" run llama "$WORK/llama-$q.lit" \
        --ids --prompt 1 --max-tokens "$TOKENS" --budget "$budget" --drop-caches \
        --stats-json "$out.json" >"$out.out" 2>"$out.err"
      echo $? > "$out.rc"
      set -e
      cat "$CG/memory.max_usage_in_bytes" > "$out.cgmax"
    done
  done
done

python3 - "$WORK" "$ROUNDS" "$BUDGETS" "$PARAMS" "$CGROUP_SIZE" "$RAW_BYTES" "$T0" "$T1" <<'PY'
import json, os, statistics, sys
work, rounds, budgets, params, cg, raw, t0, t1 = sys.argv[1:]
rounds = int(rounds)
out = {"params": params, "cgroup": cg, "raw_cold_read_MBps": int(raw) / (float(t1) - float(t0)) / 1e6,
       "runs": {}}
for b in budgets.split():
    for q in ["f32", "q8_0", "q4_0"]:
        key = f"{q}@{b}"
        rs = []
        for r in range(1, rounds + 1):
            p = f"{work}/r{r}-{b}-{q}"
            rc = int(open(p + ".rc").read())
            rec = {"rc": rc, "cgroup_max_usage": int(open(p + ".cgmax").read())}
            if rc == 0:
                s = json.load(open(p + ".json"))
                later = s["pass_ms"][1:]
                # The first pass reads every layer; each later one the layers not resident.
                per_pass = (s["bytes_read"] - s["model_bytes"]) / (s["passes"] - 1)
                rec.update({"model_bytes": s["model_bytes"], "budget": s["budget"],
                            "resident_bytes": s["resident_bytes"],
                            "bytes_read_per_pass": per_pass,
                            "bytes_read_total": s["bytes_read"], "passes": s["passes"],
                            "pass_ms": s["pass_ms"], "token_ms": statistics.mean(later),
                            "peak_rss": s["peak_rss"], "peak_held": s["peak_held"]})
            else:
                rec["stderr_tail"] = open(p + ".err").read()[-400:]
            rs.append(rec)
        ok = [x["token_ms"] for x in rs if x["rc"] == 0]
        out["runs"][key] = {"rounds": rs, "token_ms_median": statistics.median(ok) if ok else None,
                            "bytes_read_per_pass": next((x["bytes_read_per_pass"] for x in rs if x["rc"] == 0), None)}
ratios = {}
for b in budgets.split():
    f = out["runs"][f"f32@{b}"]
    for q in ["q8_0", "q4_0"]:
        r = out["runs"][f"{q}@{b}"]
        if f["token_ms_median"] and r["token_ms_median"] and r["bytes_read_per_pass"]:
            ratios[f"{q}@{b}"] = {"speedup_vs_f32": f["token_ms_median"] / r["token_ms_median"],
                                  "bytes_ratio_vs_f32": f["bytes_read_per_pass"] / r["bytes_read_per_pass"]}
out["ratios"] = ratios
print(json.dumps(out, indent=2))
PY
