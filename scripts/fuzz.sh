#!/usr/bin/env bash
# Runs lit's fuzz targets with libFuzzer coverage on a stable toolchain (cargo fuzz wants
# nightly): SanitizerCoverage through RUSTFLAGS, no address sanitizer.
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(manifest_decode import_checkpoint gguf_header)
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}-fuzz-cov"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$TRIPLE" --manifest-path fuzz/Cargo.toml
for target in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" fuzz/artifacts
  echo "fuzzing $target for ${SECONDS_EACH}s (corpus $corpus)" >&2
  "$CARGO_TARGET_DIR/$TRIPLE/release/$target" "$corpus" -max_total_time="$SECONDS_EACH" \
    -rss_limit_mb=4096 -artifact_prefix=fuzz/artifacts/ 2>&1 | tail -n 2
done
