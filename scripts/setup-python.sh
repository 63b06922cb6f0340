#!/usr/bin/env bash
# Create (once) the Python venv used by the independent numpy references in
# scripts/reference/. Prints the venv's python path as the last stdout line.
# Idempotent: a stamp file records the requirement list; if it matches, nothing
# is installed and the script returns at once. If it differs (pins changed),
# the venv is rebuilt from scratch.
set -euo pipefail

CACHE="${LIT_CACHE:-$HOME/.cache/lit}"
PY="${PYTHON:-python3}"

# Pinned: all ship manylinux wheels for CPython 3.11 (checked with pip here).
# Installed with --no-deps: tokenizers declares huggingface-hub (plus ~15
# transitive deps) only for Tokenizer.from_pretrained, which we never use, so
# the venv holds exactly these packages. gguf (llama.cpp's gguf-py, pure Python, the independent
# GGUF reader and dequantizer) imports pyyaml and tqdm at import time, so both are pinned here too.
# The stamp includes the flags.
PIP_FLAGS="--only-binary=:all: --no-deps"
REQUIREMENTS="numpy==2.3.5
tokenizers==0.22.1
safetensors==0.6.2
gguf==0.17.1
pyyaml==6.0.3
tqdm==4.67.1"
STAMP_TEXT="$PIP_FLAGS
$REQUIREMENTS"
# One venv per requirement list (named by its hash), so checkouts with different pins (branches,
# worktrees) never rebuild each other's venv.
VENV="$CACHE/venv-$(printf '%s' "$STAMP_TEXT" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')"
STAMP="$VENV/.lit-requirements"

VPY="$VENV/bin/python"

if [[ -x "$VPY" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
  echo "$VPY"
  exit 0
fi

mkdir -p "$CACHE"
echo "setup-python: (re)creating venv at $VENV" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
echo "setup-python: installing $(echo $REQUIREMENTS)" >&2
# shellcheck disable=SC2086
"$VPY" -m pip install --disable-pip-version-check -q $PIP_FLAGS $REQUIREMENTS >&2
"$VPY" -c 'import numpy, safetensors.numpy; from tokenizers import Tokenizer; import gguf.quants' >&2
printf '%s' "$STAMP_TEXT" > "$STAMP"
echo "$VPY"
