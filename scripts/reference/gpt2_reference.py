#!/usr/bin/env python3
"""Independent numpy float64 reference forward pass for Hugging Face GPT-2 checkpoints.

  python gpt2_reference.py MODEL_DIR --tokens 1,2,3 [--generate N] [--logits all|last|none]

prints {"logits": [[vocab floats] per prompt position], "generated": [greedy ids]}.
Generation recomputes the full sequence each step (no KV cache); argmax ties go
to the lowest id.

MODEL_DIR holds config.json and model.safetensors (or shards + index). Tensor
names as in HF GPT2Model (a leading "transformer." is stripped if present;
the causal-mask buffers h.{i}.attn.bias / masked_bias are ignored):
  wte.weight [vocab, n_embd], wpe.weight [n_positions, n_embd]
  h.{i}.ln_1.{weight,bias}, h.{i}.ln_2.{weight,bias}, ln_f.{weight,bias}
  h.{i}.attn.c_attn.{weight,bias}  Conv1D: weight [in, out], y = x @ W + b;
                                   out = [q | k | v], each n_embd wide
  h.{i}.attn.c_proj, h.{i}.mlp.c_fc, h.{i}.mlp.c_proj  (Conv1D)
LM head tied to wte. Config: n_embd, n_head, n_layer, n_positions, vocab_size,
layer_norm_epsilon (default 1e-5), activation_function (default gelu_new =
tanh approximation; "gelu" = exact erf), scale_attn_weights (default true),
scale_attn_by_inverse_layer_idx (default false).
"""
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_common import load_config, load_weights, run_cli, softmax_causal  # noqa: E402

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_exact(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


ACTS = {"gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new, "gelu_fast": gelu_new,
        "gelu": gelu_exact}


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class GPT2:
    def __init__(self, model_dir):
        self.cfg = cfg = load_config(model_dir)
        raw = load_weights(model_dir)
        self.w = {}
        for k, v in raw.items():
            if k.startswith("transformer."):
                k = k[len("transformer."):]
            self.w[k] = v
        self.H = int(cfg["n_embd"])
        self.nh = int(cfg["n_head"])
        self.hd = self.H // self.nh
        self.L = int(cfg["n_layer"])
        self.P = int(cfg["n_positions"])
        self.eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        act = cfg.get("activation_function", "gelu_new")
        if act not in ACTS:
            raise SystemExit(f"unsupported activation_function {act!r}")
        self.act = ACTS[act]
        V = int(cfg["vocab_size"])
        assert self.w["wte.weight"].shape == (V, self.H), self.w["wte.weight"].shape
        assert self.w["wpe.weight"].shape[1] == self.H

    def _conv1d(self, x, name):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def forward(self, ids):
        w, n, H = self.w, len(ids), self.H
        if n > self.P:
            raise SystemExit(f"sequence length {n} > n_positions {self.P}")
        ids = np.asarray(ids, dtype=np.int64)
        x = w["wte.weight"][ids] + w["wpe.weight"][np.arange(n)]
        for i in range(self.L):
            p = f"h.{i}."
            h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], self.eps)
            qkv = self._conv1d(h, p + "attn.c_attn")  # [n, 3H]
            q, k, v = (qkv[:, j * H:(j + 1) * H].reshape(n, self.nh, self.hd).transpose(1, 0, 2)
                       for j in range(3))
            s = q @ k.transpose(0, 2, 1)
            if self.cfg.get("scale_attn_weights", True):
                s = s / math.sqrt(self.hd)
            if self.cfg.get("scale_attn_by_inverse_layer_idx", False):
                s = s / float(i + 1)
            a = softmax_causal(s)
            ctx = (a @ v).transpose(1, 0, 2).reshape(n, H)
            x = x + self._conv1d(ctx, p + "attn.c_proj")
            h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], self.eps)
            x = x + self._conv1d(self.act(self._conv1d(h, p + "mlp.c_fc")), p + "mlp.c_proj")
        x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], self.eps)
        return x @ w["wte.weight"].T  # tied LM head


if __name__ == "__main__":
    run_cli(__doc__, lambda d: GPT2(d).forward)
