#!/usr/bin/env bash
# lit vs llama.cpp (through llama-cpp-python, built from its PyPI source package, which vendors
# llama.cpp) on the same SmolLM2-135M-Instruct Q4_1 GGUF file, with the same thread count.
#
#   scripts/bench-llamacpp.sh setup            build (once) the cached venv; prints its python
#   scripts/bench-llamacpp.sh peer GGUF THREADS TOKENS MMAP(1|0) PROMPT   the peer alone
#                                              (scripts/llamacpp-peer.py)
#   scripts/bench-llamacpp.sh [ROUNDS] [TOKENS] ["CGROUP_MIB ..."]
#
# The full run measures, alternately in each round, per-token decode time of:
#   - llama.cpp with mmap on and off (llama_perf_context: t_eval_ms / n_eval after a reset);
#   - lit fully resident (budget above the model) computing on the quantized blocks (the default)
#     and with --dequantize (decoded to f32 on load), under a budget of a quarter of the model (as
#     it runs, from the streamer's held-bytes report), and streamed under STREAMED_BUDGET (bytes;
#     default the least budget lit accepts plus a tenth);
# and then all four again inside a cgroup v1 memory limit of each CGROUP_MIB (default "96 256"):
# 96 MiB is smaller than the GGUF file, 256 MiB smaller than the model decoded to f32; lit there with its automatic budget and with STREAMED_BUDGET; page cache dropped
# before each of these runs (root needed;
# skipped otherwise). llama.cpp runs with OMP_WAIT_POLICY=passive: on this shared 2-core machine
# OpenMP's default spin-waiting made its 2-thread decode 15-20x slower. Output: one JSON object.
# The venv build takes ~9 min on 2 idle cores, ~17 on a shared machine (cmake and ninja come as
# wheels from PyPI; g++ needed).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LIT_CACHE:-$HOME/.cache/lit}"
PY="${PYTHON:-python3}"
LLAMA_CPP_PYTHON="llama-cpp-python==0.3.36"
VENV="$CACHE/venv-llamacpp-0.3.36"

setup() {
  if [ -f "$VENV/.built" ]; then echo "$VENV/bin/python"; return; fi
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --upgrade pip >&2
  "$VENV/bin/pip" install -q cmake ninja scikit-build-core >&2
  # Build from the sdist (the package has no Linux CPU wheels on PyPI anyway); native CPU flags.
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" \
    "$VENV/bin/pip" install -v --no-binary llama-cpp-python "$LLAMA_CPP_PYTHON" >&2
  "$VENV/bin/python" -c 'import llama_cpp' >&2
  touch "$VENV/.built"
  echo "$VENV/bin/python"
}

if [ "${1:-}" = "setup" ]; then setup; exit 0; fi

PYTHON_PEER="$(setup)"
PEER="scripts/llamacpp-peer.py"
if [ "${1:-}" = "peer" ]; then shift; exec "$PYTHON_PEER" "$PEER" "$@"; fi

ROUNDS="${1:-3}"
TOKENS="${2:-16}"
CGROUP_MIB="${3:-96 256}"
THREADS="${THREADS:-$(nproc)}"
PROMPT="${PROMPT:-The capital of France is}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
cargo build --release -p lit-cli >&2
LIT="$CARGO_TARGET_DIR/release/lit"
GGUF="$(bash scripts/fetch-smollm2.sh | tail -n 1)"
WORK="$(mktemp -d)"
CG="/sys/fs/cgroup/memory/lit-bench-llamacpp-$$"
trap 'rmdir "$CG" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$LIT" export "$GGUF" "$WORK/smol.lit" >/dev/null 2>&1

# The model as lit runs it (on its blocks, or with --dequantize decoded to f32): the weights it
# holds fully resident.
"$LIT" run llama "$WORK/smol.lit" --prompt "$PROMPT" --max-tokens 2 --budget all \
  --stats-json "$WORK/held.json" >/dev/null 2>&1
HELD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peak_held"])' "$WORK/held.json")
QUARTER=$((HELD / 4))
# The least budget lit accepts (from its error for a budget of one byte): the tied embedding, held
# through the pass for the head, and the largest layer. It is a third of SmolLM2 on its blocks,
# more than a quarter: the quarter run fails and is recorded as such.
LEAST=$("$LIT" run llama "$WORK/smol.lit" --prompt "$PROMPT" --max-tokens 1 --budget 1 2>&1 \
  | sed -n 's/.*at least \([0-9]*\) bytes.*/\1/p' | head -n 1 || true)
# The streamed budget: the least budget plus a tenth unless STREAMED_BUDGET says otherwise.
STREAMED="${STREAMED_BUDGET:-$((LEAST * 11 / 10))}"
echo "SmolLM2 as lit runs it: $HELD B held resident; quarter $QUARTER B; least $LEAST B; streamed budget $STREAMED B" >&2

# Runs "$@" inside the memory cgroup if $INCG is set, recording its exit status and peak usage.
run_in() {
  local name="$1"; shift
  set +e
  if [ -n "${DROP:-}" ]; then sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
  if [ -n "${INCG:-}" ]; then
    echo 0 > "$CG/memory.max_usage_in_bytes" 2>/dev/null
    echo 0 > "$CG/memory.failcnt" 2>/dev/null
    timeout "${RUN_TIMEOUT:-300}" sh -c 'echo $$ > "$0" && exec "$@"' "$CG/cgroup.procs" "$@" \
      >"$WORK/$name.out" 2>"$WORK/$name.err"
    echo $? >"$WORK/$name.rc"
    cat "$CG/memory.max_usage_in_bytes" >"$WORK/$name.cgmax"
  else
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    echo $? >"$WORK/$name.rc"
  fi
  set -e
}

lit_run() { # name budget
  run_in "$1" "$LIT" run llama "$WORK/smol.lit" --prompt "$PROMPT" --max-tokens "$TOKENS" \
    ${2:+--budget "$2"} ${LIT_FLAGS:-} --stats-json "$WORK/$1.json"
}
peer_run() { # name mmap(1|0)
  OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" run_in "$1" "$PYTHON_PEER" "$PEER" "$GGUF" "$THREADS" "$TOKENS" "$2" "$PROMPT"
}

MODES="lit_resident lit_dequantized lit_quarter lit_streamed llamacpp_mmap llamacpp_nommap"
for round in $(seq "$ROUNDS"); do
  echo "round $round (fits)" >&2
  lit_run "lit_resident.$round" all
  LIT_FLAGS=--dequantize lit_run "lit_dequantized.$round" all
  lit_run "lit_quarter.$round" "$QUARTER"
  lit_run "lit_streamed.$round" "$STREAMED"
  peer_run "llamacpp_mmap.$round" 1
  peer_run "llamacpp_nommap.$round" 0
done

CG_MODES=""
for mib in $CGROUP_MIB; do
  if mkdir "$CG" 2>/dev/null && echo $((mib << 20)) >"$CG/memory.limit_in_bytes"; then
    echo 0 >"$CG/memory.swappiness" 2>/dev/null || true
    CG_MODES="$CG_MODES cg${mib}_lit_auto cg${mib}_lit_streamed cg${mib}_llamacpp_mmap cg${mib}_llamacpp_nommap"
    for round in $(seq "$ROUNDS"); do
      echo "round $round (cgroup $mib MiB)" >&2
      # Cold start in the cgroup: pages cached by earlier runs are charged to other cgroups, and a
      # mapping of them would not count against this limit.
      INCG=1 DROP=1 lit_run "cg${mib}_lit_auto.$round" ""
      INCG=1 DROP=1 lit_run "cg${mib}_lit_streamed.$round" "$STREAMED"
      INCG=1 DROP=1 peer_run "cg${mib}_llamacpp_mmap.$round" 1
      INCG=1 DROP=1 peer_run "cg${mib}_llamacpp_nommap.$round" 0
    done
    rmdir "$CG"
  else
    echo "no writable cgroup v1 memory controller (root needed): the cgroup runs are skipped" >&2
  fi
done

python3 - "$WORK" "$ROUNDS" "$THREADS" "$TOKENS" "$HELD" "$QUARTER" "$STREAMED" "$CGROUP_MIB" "$MODES $CG_MODES" <<'PY'
import json, os, statistics, sys
work, rounds, threads, tokens, held, quarter, streamed, cg_mib, modes = sys.argv[1:]
rounds = int(rounds)
out = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "threads": int(threads), "new_tokens": int(tokens),
       "lit_held_resident_bytes": int(held), "lit_quarter_budget_bytes": int(quarter), "lit_streamed_budget_bytes": int(streamed),
       "cgroup_mib": [int(m) for m in cg_mib.split()], "modes": {}}
for mode in modes.split():
    rs = []
    for r in range(1, rounds + 1):
        p = f"{work}/{mode}.{r}"
        rec = {"rc": int(open(p + ".rc").read())}
        if os.path.exists(p + ".cgmax"):
            rec["cgroup_max_usage"] = int(open(p + ".cgmax").read())
        if rec["rc"] == 0 and "llamacpp" not in mode:
            s = json.load(open(p + ".json"))
            rec["token_ms"] = statistics.mean(s["pass_ms"][1:])
            rec.update({k: s[k] for k in ("budget", "peak_held", "peak_rss", "bytes_read", "passes", "resident_bytes")})
            rec["text"] = open(p + ".out").read()[:200]
        elif rec["rc"] == 0:
            rec.update(json.loads(open(p + ".out").read().strip().splitlines()[-1]))
        else:
            rec["stderr_tail"] = open(p + ".err").read()[-300:]
        rs.append(rec)
    ok = [x["token_ms"] for x in rs if "token_ms" in x]
    med = statistics.median(ok) if ok else None
    out["modes"][mode] = {"token_ms_median": med, "tokens_per_s": 1e3 / med if med else None, "rounds": rs}
def ratio(a, b):
    x, y = out["modes"].get(a, {}).get("token_ms_median"), out["modes"].get(b, {}).get("token_ms_median")
    return y / x if x and y else None
groups = [""] + [f"cg{m}_" for m in cg_mib.split()]
out["speed_vs_llamacpp"] = {  # > 1: lit faster
    f"{g}{a}/{g}{b}": ratio(g + a, g + b) for g in groups
    for a in (["lit_resident", "lit_dequantized", "lit_streamed"] if g == "" else ["lit_auto", "lit_streamed"])
    for b in ["llamacpp_mmap", "llamacpp_nommap"]}
out["lit_streamed_over_resident_speed"] = ratio("lit_streamed", "lit_resident")
print(json.dumps(out, indent=2))
PY
