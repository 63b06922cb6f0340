#!/usr/bin/env python3
"""OPTIONAL one-off cross-check of the numpy references against HF transformers (torch).

NOT a dependency of anything: needs a separate venv with torch + transformers
(~5.6 GB from PyPI, ~2 min here), e.g.
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers safetensors numpy
  /tmp/torchvenv/bin/python scripts/reference/hf_crosscheck.py [--minilm MODEL_DIR]
The references themselves run under the light venv from scripts/setup-python.sh
($LIT_CACHE/venv, override with --ref-python).

Seen (torch 2.15.0, transformers 5.23.0): GPT-2 logits agree to ~1e-14 and
MiniLM embeddings to ~2e-16 with HF in float64. Llama agrees to ~1e-6 with
stock HF in float64, because HF's LlamaRMSNorm and LlamaRotaryEmbedding compute
in float32 internally even for float64 models; with those two patched to
float64, agreement is ~1e-14. Greedy generations are identical.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers.models.llama.modeling_llama as ml
from transformers import AutoModel, AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOKS = [5, 17, 3, 42, 9, 1, 0, 63, 22, 22, 22, 7]


def patch_llama_f64():
    def rms_fwd(self, x):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.variance_epsilon))

    def rot_fwd(self, x, position_ids):
        f = position_ids[..., None].double() * self.inv_freq_f64[None, None, :]
        emb = torch.cat([f, f], -1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    ml.LlamaRMSNorm.forward = rms_fwd
    ml.LlamaRotaryEmbedding.forward = rot_fwd


def hf_run(d, toks, gen, llama_f64_inv_freq=None):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64).eval()
    if llama_f64_inv_freq is not None:
        m.model.rotary_emb.inv_freq_f64 = torch.tensor(llama_f64_inv_freq, dtype=torch.float64)
    with torch.no_grad():
        lg = m(torch.tensor([toks])).logits[0].numpy()
        seq, g = list(toks), []
        for _ in range(gen):
            nx = int(m(torch.tensor([seq])).logits[0, -1].argmax())
            g.append(nx)
            seq.append(nx)
    return lg, g


def f64_inv_freq(cfg):
    """Independent float64 inv_freq (default or llama3 scaling), for the patched HF run."""
    import math
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / float(cfg.get("rope_theta", 10000.0)) ** (np.arange(0, hd, 2) / hd)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        f, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        base = np.where(wl > old / lo, inv / f, inv)
        sm = (old / wl - lo) / (hi - lo)
        smoothed = (1 - sm) * base / f + sm * base
        inv = np.where((wl >= old / hi) & (wl <= old / lo), smoothed, base)
    return inv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm")
    ap.add_argument("--ref-python", default=os.path.join(
        os.environ.get("LIT_CACHE", os.path.expanduser("~/.cache/lit")), "venv", "bin", "python"))
    args = ap.parse_args()
    VP = args.ref_python
    tmp = tempfile.mkdtemp(prefix="lit-hf-xchk-")
    try:
        f32, bf = os.path.join(tmp, "f32"), os.path.join(tmp, "bf16")
        subprocess.check_call([VP, f"{HERE}/make_tiny.py", f32], stdout=subprocess.DEVNULL)
        subprocess.check_call([VP, f"{HERE}/make_tiny.py", bf, "--dtype", "bf16", "--shards", "2"],
                              stdout=subprocess.DEVNULL)
        l3 = os.path.join(f32, "llama3rope")
        shutil.copytree(os.path.join(f32, "llama"), l3)
        c = json.load(open(os.path.join(l3, "config.json")))
        c["rope_theta"] = 500000.0
        c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        json.dump(c, open(os.path.join(l3, "config.json"), "w"))
        cases = [(f"{f32}/llama", "llama"), (f"{f32}/llama-tied", "llama"), (l3, "llama"),
                 (f"{bf}/llama", "llama"), (f"{f32}/gpt2", "gpt2"), (f"{bf}/gpt2", "gpt2")]
        worst = {}
        stock = {}
        for d, kind in cases:
            out = subprocess.check_output([VP, f"{HERE}/{kind}_reference.py", d, "--tokens",
                                           ",".join(map(str, TOKS)), "--generate", "6"])
            r = json.loads(out)
            lg, g = hf_run(d, TOKS, 6)
            stock[d] = (float(np.abs(np.array(r["logits"]) - lg).max()), r["generated"] == g)
        patch_llama_f64()
        for d, kind in cases:
            out = json.loads(subprocess.check_output([VP, f"{HERE}/{kind}_reference.py", d, "--tokens",
                                                      ",".join(map(str, TOKS))]))
            inv = f64_inv_freq(json.load(open(os.path.join(d, "config.json")))) if kind == "llama" else None
            lg, _ = hf_run(d, TOKS, 0, inv)
            worst[d] = float(np.abs(np.array(out["logits"]) - lg).max())
            print(f"{os.path.relpath(d, tmp):18s} stock-HF maxabs {stock[d][0]:.2e}  greedy equal {stock[d][1]}"
                  f"  | f64-patched maxabs {worst[d]:.2e}")
        ok = all(v < 1e-10 for v in worst.values()) and all(s[1] and s[0] < 1e-4 for s in stock.values())
        if args.minilm:
            from tokenizers import Tokenizer
            M = args.minilm
            tok = Tokenizer.from_file(os.path.join(M, "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(max_length=256)
            bert = AutoModel.from_pretrained(M, dtype=torch.float64).eval()
            texts = ["A man is eating food.", "A man is eating a piece of bread.",
                     "naïve café 東京 Hello, World!", "long " * 300]
            refe = json.loads(subprocess.check_output([VP, f"{HERE}/minilm_reference.py", M, "--json", "--", *texts]))
            for t, r in zip(texts, refe):
                ids = torch.tensor([tok.encode(t).ids])
                with torch.no_grad():
                    h = bert(input_ids=ids, attention_mask=torch.ones_like(ids),
                             token_type_ids=torch.zeros_like(ids)).last_hidden_state[0]
                v = torch.nn.functional.normalize(h.mean(0), dim=0).numpy()
                e = float(np.abs(v - np.array(r)).max())
                ok &= e < 1e-12
                print(f"minilm {ids.shape[1]:4d} tokens maxabs {e:.2e}")
        print("cross-check:", "OK" if ok else "FAILED")
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
