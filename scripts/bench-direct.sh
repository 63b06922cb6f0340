#!/usr/bin/env bash
# Read modes side by side: a synthetic Llama decoded with --read-mode pread, mmap and direct (and
# mmap-everything: no budget, the OS pages), cold (page cache dropped before every pass) and warm
# (steady state after the first pass), at a small and a large budget, inside a memory cgroup
# smaller than the model and without one; plus the raw read rate of the same files (dd, with and
# without iflag=direct). All in one run, rounds interleaved.
#   scripts/bench-direct.sh [PARAMS, default 520M] [ROUNDS, default 2]
# Needs root (drop_caches, cgroup v1). Env: WORK=DIR keeps the store there (made if missing;
# deleted at the end unless KEEP=1); SETTINGS="CGROUP:BUDGET ..." (CGROUP `none` = no limit;
# default "1GiB:512MiB 2GiB:1536MiB none:512MiB none:1536MiB"); MODES="pread mmap direct
# mmap-everything auto" (also: auto-whole, auto with --whole-layers); CACHES="cold warm"; TOKENS=4 (passes per run). Prints a table on
# stderr and JSON on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PARAMS="${1:-520M}"
ROUNDS="${2:-2}"
SETTINGS="${SETTINGS:-1GiB:512MiB 2GiB:1536MiB none:512MiB none:1536MiB}"
MODES="${MODES:-pread mmap direct auto mmap-everything}"
TOKENS="${TOKENS:-4}"
CACHES="${CACHES:-cold warm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
cargo build --release -p lit-cli >&2
LIT="$CARGO_TARGET_DIR/release/lit"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
STORE="$WORK/llama.lit"
CG=/sys/fs/cgroup/memory/lit-bench-direct-$$
cleanup() {
  rmdir "$CG" 2>/dev/null || true
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

bytes() { python3 -c 'import re,sys; s=sys.argv[1]; m=re.fullmatch(r"(\d+)(GiB|MiB)",s); print(int(m[1])<<(30 if m[2]=="GiB" else 20))' "$1"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }

[ -f "$STORE/manifest.lit" ] || "$LIT" synth llama "$STORE" --params "$PARAMS" --seed 5 >&2
mkdir "$CG"
echo 0 > "$CG/memory.swappiness" 2>/dev/null || true

# Raw read of the layer files, one dd per file as lit reads one file per layer.
RAW_BYTES=$(du -cb "$STORE"/layers/* | tail -1 | cut -f1)
raw() { # $1: readers at once, $2: extra dd flag or empty; prints seconds
  local t0 t1
  t0=$(now)
  printf '%s\n' "$STORE"/layers/* | xargs -P "$1" -I{} dd if={} of=/dev/null bs=8M status=none $2
  t1=$(now)
  python3 -c "print($t1-$t0)"
}
RAW=()
for round in $(seq "$ROUNDS"); do
  drop; RAW+=("cold $(raw 1 '')")
  drop; RAW+=("cold-direct $(raw 1 iflag=direct)")
  drop; RAW+=("cold-4-readers $(raw 4 '')")
  drop; RAW+=("cold-direct-4-readers $(raw 4 iflag=direct)")
  raw 1 '' >/dev/null; RAW+=("warm $(raw 1 '')")
done
printf '%s\n' "${RAW[@]}" > "$WORK/raw.txt"

for round in $(seq "$ROUNDS"); do
  everything_done=" "
  for setting in $SETTINGS; do
    cgroup=${setting%%:*}
    budget=${setting##*:}
    limit=$([ "$cgroup" = none ] && echo -1 || bytes "$cgroup")
    echo "$limit" > "$CG/memory.limit_in_bytes"
    for cache in $CACHES; do
      for mode in $MODES; do
        # mmap-everything has no budget: once per cgroup size.
        if [ "$mode" = mmap-everything ]; then
          case "$everything_done" in *" $cgroup-$cache "*) continue ;; esac
          everything_done+="$cgroup-$cache "
        fi
        echo "round $round: cgroup $cgroup, budget $budget, $cache, $mode" >&2
        args=(--ids --prompt 1 --max-tokens "$TOKENS")
        case $mode in
          mmap-everything) args+=(--read-mode mmap --prefetch 0) ;;
          # Whole layers where the default streams a Llama block in pieces.
          auto-whole) args+=(--read-mode auto --whole-layers --budget "$budget") ;;
          *) args+=(--read-mode "$mode" --budget "$budget") ;;
        esac
        [ "$cache" = cold ] && args+=(--drop-caches)
        out="$WORK/r$round-$cgroup-$budget-$cache-$mode"
        drop
        echo 0 > "$CG/memory.max_usage_in_bytes" || true
        set +e
        sh -c 'echo $$ > "$0" && exec "$@"' "$CG/cgroup.procs" "$LIT" run llama "$STORE" \
          "${args[@]}" --stats-json "$out.json" >"$out.out" 2>"$out.err"
        echo $? > "$out.rc"
        set -e
        cat "$CG/memory.max_usage_in_bytes" > "$out.cgmax"
      done
    done
  done
done

python3 - "$WORK" "$ROUNDS" "$SETTINGS" "$MODES" "$PARAMS" "$RAW_BYTES" "$CACHES" <<'PY'
import json, os, statistics, sys
work, rounds, settings, modes, params, raw_bytes, caches = sys.argv[1:]
rounds, raw_bytes = int(rounds), int(raw_bytes)
raw = {}
for line in open(f"{work}/raw.txt"):
    kind, secs = line.split()
    raw.setdefault(kind, []).append(raw_bytes / float(secs))
raw_rate = {k: statistics.median(v) for k, v in raw.items()}
# Cold rows are compared with the best cold raw read (dd, 1 or 4 readers, with or without
# iflag=direct), warm rows with the warm one.
best_cold = max(v for k, v in raw_rate.items() if k.startswith("cold"))
out = {"params": params, "store_bytes": raw_bytes, "raw_read_bytes_per_s": raw_rate, "runs": []}
for setting in settings.split():
    cgroup, budget = setting.split(":")
    for cache in caches.split():
        for mode in modes.split():
            recs = []
            for r in range(1, rounds + 1):
                p = f"{work}/r{r}-{cgroup}-{budget}-{cache}-{mode}"
                if not os.path.exists(p + ".rc"):
                    break  # mmap-everything, run under an earlier budget of this cgroup
                rc = int(open(p + ".rc").read())
                rec = {"rc": rc, "cgroup_max_usage": int(open(p + ".cgmax").read())}
                if rc == 0:
                    s = json.load(open(p + ".json"))
                    later = s["pass_ms"][1:]
                    rec.update({"pass_ms": s["pass_ms"], "later_ms": statistics.mean(later),
                                # The first pass reads every layer; each later one the rest.
                                "bytes_per_pass": (s["bytes_read"] - s["model_bytes"]) / (s["passes"] - 1),
                                "peak_rss": s["peak_rss"], "resident_bytes": s["resident_bytes"]})
                else:
                    rec["stderr_tail"] = open(p + ".err").read()[-400:]
                recs.append(rec)
            if not recs:
                continue
            ok = [x for x in recs if x["rc"] == 0]
            row = {"cgroup": cgroup, "budget": budget if mode != "mmap-everything" else "none",
                   "cache": cache, "mode": mode, "rounds": recs}
            if ok:
                ms = statistics.median(x["later_ms"] for x in ok)
                per_pass = statistics.median(x["bytes_per_pass"] for x in ok)
                rate = per_pass / (ms / 1e3) if ms > 0 else float("nan")
                row.update({"pass_ms": ms, "bytes_per_pass": per_pass, "bytes_per_s": rate,
                            "vs_raw": rate / (best_cold if cache == "cold" else raw_rate.get("warm", float("nan"))),
                            "peak_rss": max(x["peak_rss"] for x in ok),
                            "cgroup_max_usage": max(x["cgroup_max_usage"] for x in ok)})
            out["runs"].append(row)
print(json.dumps(out, indent=2))
err = sys.stderr
print(f"store {raw_bytes/1e9:.2f} GB; raw read (median of {rounds}): " + ", ".join(
    f"{k} {v/1e6:.0f} MB/s" for k, v in raw_rate.items()), file=err)
print("vs raw: MB/s over the best cold raw rate (cold rows) or the warm one (warm rows)", file=err)
print(f"{'cgroup':<7}{'budget':<8}{'cache':<6}{'mode':<16}{'pass ms':>9}{'read/pass':>11}"
      f"{'MB/s':>8}{'vs raw':>8}{'peak RSS':>10}{'cgroup max':>11}", file=err)
for r in out["runs"]:
    if "pass_ms" not in r:
        print(f"{r['cgroup']:<7}{r['budget']:<8}{r['cache']:<6}{r['mode']:<16} failed: "
              + r["rounds"][0].get("stderr_tail", "").strip().splitlines()[-1:][0:1].__str__(), file=err)
        continue
    print(f"{r['cgroup']:<7}{r['budget']:<8}{r['cache']:<6}{r['mode']:<16}{r['pass_ms']:>9.0f}"
          f"{r['bytes_per_pass']/1e9:>9.2f}GB{r['bytes_per_s']/1e6:>8.0f}{r['vs_raw']:>8.2f}"
          f"{r['peak_rss']/2**20:>7.0f}MiB{r['cgroup_max_usage']/2**20:>8.0f}MiB", file=err)
PY
