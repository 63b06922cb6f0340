#!/usr/bin/env python3
"""One-off cross-checks of smollm2_reference.py (not used by tests; ~1 min, ~3 GB RAM).

  python smollm2_crosscheck.py MODEL.gguf [--tokens 1,2,3 ...]

1. RoPE/permutation algebra, two independent code paths: smollm2_reference.py (Q/K rows as
   stored in the GGUF, llama.cpp "normal" adjacent-pair RoPE) against llama_reference.py (the
   HF-convention reference: rotate_half, pairs j and j + d/2) fed the same dequantized weights
   written as an HF checkpoint with the Q/K rows of each head un-permuted
   ([a0, b0, a1, b1, ...] -> [a0, a1, ..., b0, b1, ...]). Logits at every prompt position
   must agree to float64 rounding.
2. KV cache against full recompute: greedy tokens equal, step log-probs to 1e-9.
Exit status 0 when both hold. Needs numpy, safetensors and gguf (+ PyYAML).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smollm2_reference import GgufLlama  # noqa: E402

DEFAULT_PROMPTS = ["504,3575,282,4649,314", "1604,3987,46477,24,94,727",
                   "1,4093,198,1780,314,216,34,27,34,47,2,198,1,520,9531,198"]


def unpermute(w, n_heads):
    """GGUF Q/K rows per head [a0, b0, a1, b1, ...] -> HF order [a0, a1, ..., b0, b1, ...]."""
    out, inn = w.shape
    hd = out // n_heads
    return w.reshape(n_heads, hd // 2, 2, inn).swapaxes(1, 2).reshape(out, inn)


def write_hf(m, d):
    from safetensors.numpy import save_file

    t = {"model.embed_tokens.weight": m.w["token_embd.weight"], "model.norm.weight": m.w["output_norm.weight"]}
    if "output.weight" in m.w:
        t["lm_head.weight"] = m.w["output.weight"]
    for i in range(m.L):
        p, q = f"blk.{i}.", f"model.layers.{i}."
        t[q + "input_layernorm.weight"] = m.w[p + "attn_norm.weight"]
        t[q + "post_attention_layernorm.weight"] = m.w[p + "ffn_norm.weight"]
        t[q + "self_attn.q_proj.weight"] = unpermute(m.w[p + "attn_q.weight"], m.nh)
        t[q + "self_attn.k_proj.weight"] = unpermute(m.w[p + "attn_k.weight"], m.nkv)
        t[q + "self_attn.v_proj.weight"] = m.w[p + "attn_v.weight"]
        t[q + "self_attn.o_proj.weight"] = m.w[p + "attn_output.weight"]
        for a, b in (("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")):
            t[q + b + ".weight"] = m.w[p + a + ".weight"]
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, os.path.join(d, "model.safetensors"))
    cfg = {"hidden_size": m.H, "intermediate_size": m.F, "num_attention_heads": m.nh,
           "num_key_value_heads": m.nkv, "num_hidden_layers": m.L, "rms_norm_eps": m.eps,
           "rope_theta": m.base, "vocab_size": m.V, "tie_word_embeddings": "output.weight" not in m.w}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--tokens", action="append")
    ap.add_argument("--max-tokens", type=int, default=8)
    args = ap.parse_args()
    prompts = [[int(x) for x in s.split(",")] for s in (args.tokens or DEFAULT_PROMPTS)]
    m = GgufLlama(args.gguf)
    if m.n_rot != m.hd or m.pos_scale != 1.0:
        raise SystemExit("crosscheck assumes full-head RoPE without scaling")
    ok = True
    with tempfile.TemporaryDirectory() as d:
        write_hf(m, d)
        for p in prompts:
            ours = m.logits_all(p)
            o = subprocess.run([sys.executable, os.path.join(HERE, "llama_reference.py"), d,
                                "--tokens", ",".join(map(str, p)), "--logits", "all"],
                               capture_output=True, text=True, check=True)
            hf = np.array(json.loads(o.stdout)["logits"])
            diff = float(np.abs(ours - hf).max())
            ok &= diff < 1e-9
            print(json.dumps({"check": "gguf-normal-rope vs unpermuted+rotate_half", "prompt_len": len(p),
                              "max_abs_diff": diff, "max_abs_logit": float(np.abs(hf).max())}))
    for p in prompts:
        _, g1, l1, _, _ = m.generate(p, args.max_tokens, use_cache=True)
        _, g2, l2, _, _ = m.generate(p, args.max_tokens, use_cache=False)
        diff = float(np.abs(np.array(l1) - np.array(l2)).max()) if g1 == g2 else float("inf")
        ok &= g1 == g2 and diff < 1e-9
        print(json.dumps({"check": "kv-cache vs recompute", "tokens_equal": g1 == g2, "max_logprob_diff": diff}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
