#!/usr/bin/env python3
"""Independent numpy float64 reference for sentence-transformers/all-MiniLM-L6-v2.

BERT encoder forward (post-LN, exact erf GELU), mean pooling over all tokens of
one unpadded sentence, then L2 normalisation -- the same pipeline as
sentence-transformers' modules.json (Transformer -> Pooling(mean) -> Normalize).

Tokenisation uses the `tokenizers` library on MODEL_DIR/tokenizer.json with
padding turned OFF (the shipped tokenizer.json pads to a fixed 128) and
truncation at 256 tokens (sentence_bert_config.json max_seq_length), special
tokens [CLS] ... [SEP] included.

Usage (run with the venv from scripts/setup-python.sh):
  python minilm_reference.py MODEL_DIR --json "text1" "text2" ...
      -> JSON array of embeddings (one list of 384 floats per text)
  python minilm_reference.py MODEL_DIR --tokens "text1" "text2" ...
      -> JSON array of token-id arrays
  python minilm_reference.py MODEL_DIR --hidden "text1" ...
      -> JSON array of last_hidden_state matrices ([seq][384]) before pooling
  python minilm_reference.py MODEL_DIR --self-check
      -> sanity checks (similar/unrelated sentences, unit norm); exit 1 on failure
  --texts-json FILE reads the list of texts from a JSON file ('-' = stdin)
  instead of the positional arguments. --max-length N overrides 256.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf(x):
    # Exact GELU as in HF "gelu": 0.5 * x * (1 + erf(x / sqrt(2))).
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, w, b):
    # torch nn.Linear convention: w is [out, in].
    return x @ w.T + b


class MiniLM:
    def __init__(self, model_dir, max_length=256):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        self.w = {}
        for k, v in raw.items():
            if k.startswith("bert."):
                k = k[len("bert."):]
            if np.issubdtype(v.dtype, np.floating):
                v = v.astype(np.float64)
            self.w[k] = v
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_length)
        self.max_length = max_length
        act = self.cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise SystemExit(f"unsupported hidden_act {act!r} (expected exact 'gelu')")
        if self.cfg.get("position_embedding_type", "absolute") != "absolute":
            raise SystemExit("only absolute position embeddings are supported")

    def tokenize(self, text):
        enc = self.tok.encode(text)
        return list(enc.ids), list(enc.type_ids)

    def hidden(self, ids, type_ids=None):
        cfg, w = self.cfg, self.w
        ids = np.asarray(ids, dtype=np.int64)
        n = ids.shape[0]
        if type_ids is None:
            type_ids = np.zeros(n, dtype=np.int64)
        type_ids = np.asarray(type_ids, dtype=np.int64)
        pos = np.arange(n)
        eps = float(cfg["layer_norm_eps"])
        H = int(cfg["hidden_size"])
        nh = int(cfg["num_attention_heads"])
        hd = H // nh

        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][pos]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            q = linear(x, w[p + "attention.self.query.weight"], w[p + "attention.self.query.bias"])
            k = linear(x, w[p + "attention.self.key.weight"], w[p + "attention.self.key.bias"])
            v = linear(x, w[p + "attention.self.value.weight"], w[p + "attention.self.value.bias"])
            q = q.reshape(n, nh, hd).transpose(1, 0, 2)  # [h, n, d]
            k = k.reshape(n, nh, hd).transpose(1, 0, 2)
            v = v.reshape(n, nh, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)  # [h, n, n]; mask all ones
            s = s - s.max(axis=-1, keepdims=True)
            a = np.exp(s)
            a = a / a.sum(axis=-1, keepdims=True)
            ctx = (a @ v).transpose(1, 0, 2).reshape(n, H)
            attn = linear(ctx, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
            x = layer_norm(attn + x, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            h = gelu_erf(linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
            h = linear(h, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
            x = layer_norm(h + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x

    def embed(self, text):
        ids, type_ids = self.tokenize(text)
        h = self.hidden(ids, type_ids)
        e = h.mean(axis=0)  # attention mask is all ones: plain mean
        return e / max(np.linalg.norm(e), 1e-12)  # torch F.normalize eps


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def self_check(m):
    a = m.embed("A man is eating food.")
    b = m.embed("A man is eating a piece of bread.")
    c = m.embed("The stock market crashed after the announcement of new tariffs.")
    ab, ac, bc = cos(a, b), cos(a, c), cos(b, c)
    norms = [float(np.linalg.norm(x)) for x in (a, b, c)]
    ids, _ = m.tokenize("A man is eating food.")
    long_ids, _ = m.tokenize("word " * 1000)
    report = {"tokens": ids, "cos_food_bread": ab, "cos_food_stock": ac,
              "cos_bread_stock": bc, "norms": norms, "dim": int(a.shape[0]),
              "long_text_tokens": len(long_ids)}
    print(json.dumps(report, indent=1))
    ok = (0.6 < ab < 0.95 and ac < 0.3 and bc < 0.3
          and all(abs(nv - 1) < 1e-12 for nv in norms)
          and a.shape[0] == m.cfg["hidden_size"]
          and ids[0] == 101 and ids[-1] == 102
          and len(long_ids) == m.max_length)
    print("self-check:", "OK" if ok else "FAILED", file=sys.stderr)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--json", action="store_true", help="print embeddings")
    mode.add_argument("--tokens", action="store_true", help="print token ids")
    mode.add_argument("--hidden", action="store_true", help="print last hidden states")
    mode.add_argument("--self-check", action="store_true")
    ap.add_argument("--texts-json", help="JSON file with a list of texts ('-' for stdin)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("texts", nargs="*")
    args = ap.parse_intermixed_args()

    m = MiniLM(args.model_dir, max_length=args.max_length)
    if args.self_check:
        sys.exit(self_check(m))
    texts = args.texts
    if args.texts_json:
        f = sys.stdin if args.texts_json == "-" else open(args.texts_json)
        texts = list(json.load(f)) + list(texts)
    if args.tokens:
        out = [m.tokenize(t)[0] for t in texts]
    elif args.hidden:
        out = [m.hidden(*m.tokenize(t)).tolist() for t in texts]
    else:
        out = [m.embed(t).tolist() for t in texts]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
