#!/usr/bin/env python3
"""Independent numpy float64 reference forward pass for Hugging Face Llama checkpoints.

  python llama_reference.py MODEL_DIR --tokens 1,2,3 [--generate N] [--logits all|last|none]

prints {"logits": [[vocab floats] per prompt position], "generated": [greedy ids]}.
Generation recomputes the full sequence each step (no KV cache); argmax ties go
to the lowest id.

MODEL_DIR holds config.json and model.safetensors (or shards + index). Tensor
names as HF LlamaForCausalLM writes them:
  model.embed_tokens.weight [vocab, hidden]
  model.layers.{i}.input_layernorm.weight, post_attention_layernorm.weight
  model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   [out, in] (torch Linear)
  model.layers.{i}.self_attn.{q,k,v,o}_proj.bias     (optional, if present)
  model.layers.{i}.mlp.{gate,up,down}_proj.weight
  model.norm.weight, lm_head.weight (absent when tie_word_embeddings)
Config: hidden_size, intermediate_size, num_attention_heads,
num_key_value_heads (default = heads), num_hidden_layers, rms_norm_eps,
rope_theta (default 10000), vocab_size, tie_word_embeddings (default false),
head_dim (default hidden/heads), rope_scaling (None or rope_type "llama3").
RoPE: HF "rotate_half" convention (dimension j pairs with j + head_dim/2).
"""
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_common import load_config, load_weights, run_cli, softmax_causal  # noqa: E402


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope_inv_freq(cfg, head_dim):
    theta = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv
    if kind != "llama3":
        raise SystemExit(f"unsupported rope_scaling type {kind!r}")
    factor = float(rs["factor"])
    lo, hi = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    old = float(rs["original_max_position_embeddings"])
    lo_wl, hi_wl = old / lo, old / hi
    wl = 2 * math.pi / inv
    out = np.where(wl > lo_wl, inv / factor, inv)
    smooth = (old / wl - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wl < hi_wl) & ~(wl > lo_wl)
    return np.where(medium, smoothed, out)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, positions, inv_freq):
    """x [heads, n, head_dim]; HF Llama: x*cos + rotate_half(x)*sin, freqs duplicated."""
    freqs = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)  # [n, d/2]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [n, d]
    return x * np.cos(emb)[None] + rotate_half(x) * np.sin(emb)[None]


class Llama:
    def __init__(self, model_dir):
        self.cfg = cfg = load_config(model_dir)
        self.w = load_weights(model_dir)
        self.H = int(cfg["hidden_size"])
        self.nh = int(cfg["num_attention_heads"])
        self.nkv = int(cfg.get("num_key_value_heads") or self.nh)
        self.hd = int(cfg.get("head_dim") or self.H // self.nh)
        self.L = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["rms_norm_eps"])
        self.inv_freq = rope_inv_freq(cfg, self.hd)
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise SystemExit(f"unsupported hidden_act {act!r}")
        if self.nh % self.nkv:
            raise SystemExit("num_attention_heads must be a multiple of num_key_value_heads")
        emb = self.w["model.embed_tokens.weight"]
        if cfg.get("tie_word_embeddings", False):
            self.lm_head = emb
        elif "lm_head.weight" in self.w:
            self.lm_head = self.w["lm_head.weight"]
        else:
            raise SystemExit("no lm_head.weight and tie_word_embeddings is not true")
        V = int(cfg["vocab_size"])
        assert emb.shape == (V, self.H), (emb.shape, V, self.H)
        assert self.lm_head.shape == (V, self.H), self.lm_head.shape

    def _lin(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b

    def forward(self, ids, start_pos=0):
        w, n = self.w, len(ids)
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.arange(start_pos, start_pos + n)
        x = w["model.embed_tokens.weight"][ids]  # [n, H]
        group = self.nh // self.nkv
        for i in range(self.L):
            p = f"model.layers.{i}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            q = self._lin(h, p + "self_attn.q_proj").reshape(n, self.nh, self.hd).transpose(1, 0, 2)
            k = self._lin(h, p + "self_attn.k_proj").reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            v = self._lin(h, p + "self_attn.v_proj").reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            q = apply_rope(q, pos, self.inv_freq)
            k = apply_rope(k, pos, self.inv_freq)
            # GQA: query head j uses key/value head j // group.
            k = np.repeat(k, group, axis=0)
            v = np.repeat(v, group, axis=0)
            a = softmax_causal(q @ k.transpose(0, 2, 1) / math.sqrt(self.hd))
            ctx = (a @ v).transpose(1, 0, 2).reshape(n, self.nh * self.hd)
            x = x + self._lin(ctx, p + "self_attn.o_proj")
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            m = silu(self._lin(h, p + "mlp.gate_proj")) * self._lin(h, p + "mlp.up_proj")
            x = x + self._lin(m, p + "mlp.down_proj")
        x = rms_norm(x, w["model.norm.weight"], self.eps)
        return x @ self.lm_head.T  # [n, vocab]


if __name__ == "__main__":
    run_cli(__doc__, lambda d: Llama(d).forward)
