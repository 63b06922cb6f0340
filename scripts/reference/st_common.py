"""Shared helpers for the numpy reference forward passes (not a model implementation).

load_weights(model_dir): every tensor of every *.safetensors file in model_dir
(model.safetensors, or the shards named by model.safetensors.index.json, or any
*.safetensors), floats widened to float64 exactly. Files are read with
safetensors.numpy; files holding BF16 tensors (which numpy cannot represent) are
parsed by hand and the BF16 values widened exactly (bf16 bits << 16 = f32 bits).
"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import load_file

_NP = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}


def _header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def _load_manual(path):
    hdr, base = _header(path)
    data = np.fromfile(path, dtype=np.uint8, offset=base)
    out = {}
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "BF16":
            bits = raw.view("<u2").astype(np.uint32) << 16
            arr = bits.view("<f4").reshape(shape)
        else:
            arr = raw.view(np.dtype(_NP[dt]).newbyteorder("<")).reshape(shape)
        out[name] = arr.copy()
    return out


def safetensors_files(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(model_dir, fn) for fn in sorted(set(wm.values()))]
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    files = sorted(os.path.join(model_dir, fn) for fn in os.listdir(model_dir)
                   if fn.endswith(".safetensors"))
    if not files:
        raise SystemExit(f"no *.safetensors in {model_dir}")
    return files


def load_weights(model_dir):
    w = {}
    for path in safetensors_files(model_dir):
        hdr, _ = _header(path)
        has_bf16 = any(v.get("dtype") == "BF16" for k, v in hdr.items() if k != "__metadata__")
        part = _load_manual(path) if has_bf16 else load_file(path)
        for k, v in part.items():
            if k in w:
                raise SystemExit(f"tensor {k} appears in more than one file")
            w[k] = v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v
    return w


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def parse_tokens(s):
    toks = [int(t) for t in s.replace(" ", "").split(",") if t != ""]
    if not toks:
        raise SystemExit("--tokens needs at least one id")
    return toks


def softmax_causal(scores):
    """scores [..., n, n]; row i may attend to columns <= i."""
    n = scores.shape[-1]
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    s = np.where(mask, -np.inf, scores)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    return p / p.sum(axis=-1, keepdims=True)


def run_cli(description, forward_factory):
    """Common CLI: MODEL_DIR --tokens 1,2,3 [--generate N] [--logits all|last|none]."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--generate", type=int, default=0,
                    help="greedy-generate N tokens (full recompute, no KV cache)")
    ap.add_argument("--logits", choices=["all", "last", "none"], default="all",
                    help="which prompt positions' logits to print (default all)")
    args = ap.parse_args()

    forward = forward_factory(args.model_dir)
    toks = parse_tokens(args.tokens)
    logits = forward(toks)  # [n, vocab]
    gen = []
    seq = list(toks)
    step_logits = logits
    for _ in range(args.generate):
        nxt = int(np.argmax(step_logits[-1]))
        gen.append(nxt)
        seq.append(nxt)
        if len(gen) < args.generate:
            step_logits = forward(seq)
    out = {"logits": [], "generated": gen}
    if args.logits == "all":
        out["logits"] = logits.tolist()
    elif args.logits == "last":
        out["logits"] = [logits[-1].tolist()]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
