#!/usr/bin/env python3
"""Independent numpy float64 reference for llama-architecture GGUF files (SmolLM2 et al.).

  python smollm2_reference.py MODEL.gguf --tokens 504,3575,282,4649,314 [--tokens ...] [options]
  python smollm2_reference.py MODEL.gguf --text "The capital of France is" [--text ...] [--chat]

Options:
  --tokens IDS       a prompt as comma-separated token ids; repeat the flag (or separate
                     prompts with ';') for several prompts
  --text TEXT        a prompt as text, tokenized by gguf_bpe.py (control tokens such as
                     <|im_start|> are matched verbatim); repeatable
  --chat             wrap each --text as a single user turn with the GGUF's chat template
                     (only SmolLM2's ChatML template is rendered; others are refused)
  --max-tokens N     greedy tokens to generate per prompt (default 16)
  --ignore-eos       keep generating after EOS (default: stop after emitting EOS)
  --logits top|full|none
                     what to print of the first-step logits (the row of the last prompt
                     position): top = the --top-k best (default), full = the whole row
  --top-k K          default 10
  --logits-npy PATH  also save the first-step rows as float64 [prompts, vocab] .npy
  --rope normal|neox RoPE pairing applied to Q/K as stored in the GGUF. normal (default) is
                     llama.cpp's convention for arch llama: adjacent pairs (2j, 2j+1).
                     neox (pairs j, j+d/2) is the WRONG one for these rows; it exists to show
                     that the choice matters (see README).
  --no-cache         recompute the whole sequence each step instead of using a KV cache
  --score            teacher-forced scoring: no generation; report the log-prob of each
                     prompt token given the ones before it (mean_logprob, perplexity)

Prints one JSON object:
  {"model": {...hyper-parameters read from the GGUF...},
   "results": [{"prompt": [ids], "generated": [ids], "text": decoded generated,
                "logprobs": [log p of each generated token], "mean_logprob": float,
                "stopped_at_eos": bool, "min_margin": smallest top-1 minus top-2 logit
                over the greedy steps (how robust the argmax is to rounding),
                "top_logits": [[id, logit], ...], "logits": [vocab floats] (with --logits full),
                "token_logprobs", "perplexity" (with --score)}],
   "seconds": {"load": s, "run": s}}
Argmax ties go to the lowest id. Everything is float64 after dequantization
(gguf.quants.dequantize gives float32, widened exactly).

The forward pass works in GGUF's native layout and llama.cpp's conventions:
- GGUF lists dimensions fastest-first: a 2-D tensor with shape [ne0, ne1] is the row-major
  matrix [ne1, ne0] = [out, in]; y = x @ W.T.
- Q and K rows are used as stored. llama.cpp's HF->GGUF converter reorders them within each
  head (rows [a_0..a_{d/2-1}, b_0..b_{d/2-1}] become [a_0, b_0, a_1, b_1, ...]) so that its
  "normal" RoPE, which rotates adjacent pairs (x[2j], x[2j+1]) by pos * base^(-2j/n_rot),
  equals HF's rotate_half on the original rows. Dimensions past rope.dimension_count pass
  through unrotated.
- RMSNorm eps, rope base, heads/KV heads (GQA: query head h reads KV head h // (heads/kv)),
  layer count, sizes from the `llama.*` metadata; SiLU-gated MLP; output = token_embd when the
  file has no output.weight (tied embeddings); rope scaling type none or linear only.
"""
import json
import math
import os
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The SmolLM2 ChatML template, as stored in tokenizer.chat_template. --chat renders only this.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def render_chat(template, user_text):
    """The template applied to [{"role": "user", "content": user_text}], add_generation_prompt."""
    if template != SMOLLM2_CHAT_TEMPLATE:
        raise SystemExit("--chat: only SmolLM2's ChatML chat template is rendered by this reference")
    return (f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user_text}<|im_end|>\n<|im_start|>assistant\n")


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def log_softmax(z):
    m = z.max()
    return z - m - math.log(np.exp(z - m).sum())


class GgufLlama:
    def __init__(self, path, rope="normal"):
        import gguf
        from gguf.quants import dequantize

        if rope not in ("normal", "neox"):
            raise SystemExit(f"--rope {rope!r}: expected normal or neox")
        self.rope = rope
        try:
            r = gguf.GGUFReader(path)
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: cannot read as GGUF: {e}")
        self.reader = r

        def meta(key, default=None, required=True):
            f = r.fields.get(key)
            if f is None:
                if required and default is None:
                    raise SystemExit(f"{path}: metadata key {key!r} missing")
                return default
            return f.contents()

        arch = meta("general.architecture")
        if arch != "llama":
            raise SystemExit(f"{path}: architecture {arch!r} not supported (only llama)")
        a = arch + "."
        self.L = int(meta(a + "block_count"))
        self.H = int(meta(a + "embedding_length"))
        self.F = int(meta(a + "feed_forward_length"))
        self.nh = int(meta(a + "attention.head_count"))
        self.nkv = int(meta(a + "attention.head_count_kv", self.nh))
        self.eps = float(meta(a + "attention.layer_norm_rms_epsilon"))
        self.base = float(meta(a + "rope.freq_base", 10000.0))
        self.hd = self.H // self.nh
        self.n_rot = int(meta(a + "rope.dimension_count", self.hd))
        scaling = meta(a + "rope.scaling.type", "none")
        self.pos_scale = 1.0
        if scaling == "linear":
            self.pos_scale = 1.0 / float(meta(a + "rope.scaling.factor"))
        elif scaling != "none":
            raise SystemExit(f"{path}: rope scaling {scaling!r} not supported (none, linear)")
        if self.nh % self.nkv or self.H % self.nh or self.n_rot % 2 or self.n_rot > self.hd:
            raise SystemExit(f"{path}: inconsistent heads {self.nh}/{self.nkv}, hidden {self.H}, rope dims {self.n_rot}")
        self.eos = meta("tokenizer.ggml.eos_token_id", -1, required=False)
        self.chat_template = meta("tokenizer.chat_template", "", required=False)

        self.w = {}
        for t in r.tensors:
            arr = dequantize(t.data, t.tensor_type)
            shape = tuple(int(x) for x in reversed([int(d) for d in t.shape]))  # GGUF ne0 is fastest
            arr = np.asarray(arr, dtype=np.float64).reshape(shape)
            self.w[t.name] = arr
        emb = self._get("token_embd.weight")
        self.V = emb.shape[0]
        if emb.shape != (self.V, self.H):
            raise SystemExit(f"token_embd.weight shape {emb.shape}, expected [vocab, {self.H}]")
        self.out_w = self.w.get("output.weight", emb)  # tied embeddings when absent
        kvd = self.nkv * self.hd
        for i in range(self.L):
            p = f"blk.{i}."
            for n, s in (("attn_q", (self.H, self.H)), ("attn_k", (kvd, self.H)), ("attn_v", (kvd, self.H)),
                         ("attn_output", (self.H, self.H)), ("ffn_gate", (self.F, self.H)),
                         ("ffn_up", (self.F, self.H)), ("ffn_down", (self.H, self.F))):
                if self._get(p + n + ".weight").shape != s:
                    raise SystemExit(f"{p}{n}.weight shape {self.w[p + n + '.weight'].shape}, expected {s}")
        self.inv_freq = self.base ** (-np.arange(0, self.n_rot, 2, dtype=np.float64) / self.n_rot)

    def _get(self, name):
        w = self.w.get(name)
        if w is None:
            raise SystemExit(f"tensor {name!r} missing from the GGUF")
        return w

    def hparams(self):
        return {"arch": "llama", "n_layer": self.L, "n_embd": self.H, "n_ff": self.F, "n_head": self.nh,
                "n_head_kv": self.nkv, "head_dim": self.hd, "n_rot": self.n_rot, "rope_base": self.base,
                "rms_eps": self.eps, "vocab": self.V, "tied_output": "output.weight" not in self.w,
                "rope": self.rope, "eos": self.eos}

    def apply_rope(self, x, pos):
        """x [heads, n, hd] rows as stored in the GGUF; pos [n]."""
        ang = np.outer(np.asarray(pos, dtype=np.float64) * self.pos_scale, self.inv_freq)  # [n, n_rot/2]
        cos, sin = np.cos(ang)[None], np.sin(ang)[None]
        out = x.copy()
        r = self.n_rot
        if self.rope == "normal":  # llama.cpp mode 0: adjacent pairs (2j, 2j+1)
            a, b = x[..., 0:r:2], x[..., 1:r:2]
            out[..., 0:r:2] = a * cos - b * sin
            out[..., 1:r:2] = a * sin + b * cos
        else:  # neox: pairs (j, j + n_rot/2)
            a, b = x[..., : r // 2], x[..., r // 2: r]
            out[..., : r // 2] = a * cos - b * sin
            out[..., r // 2: r] = a * sin + b * cos
        return out

    def forward(self, ids, cache, start):
        """ids: new tokens at positions start..; cache: list of per-layer [k, v] (or None
        entries), extended in place. Returns logits [n, vocab]."""
        w, n = self.w, len(ids)
        pos = np.arange(start, start + n)
        x = w["token_embd.weight"][np.asarray(ids, dtype=np.int64)]
        g = self.nh // self.nkv
        scale = 1.0 / math.sqrt(self.hd)
        for i in range(self.L):
            p = f"blk.{i}."
            h = rms_norm(x, w[p + "attn_norm.weight"], self.eps)
            q = (h @ w[p + "attn_q.weight"].T).reshape(n, self.nh, self.hd).transpose(1, 0, 2)
            k = (h @ w[p + "attn_k.weight"].T).reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            q = self.apply_rope(q, pos)
            k = self.apply_rope(k, pos)
            if cache[i] is not None:
                k = np.concatenate([cache[i][0], k], axis=1)
                v = np.concatenate([cache[i][1], v], axis=1)
            cache[i] = (k, v)
            T = k.shape[1]
            # GQA: query head h reads KV head h // g.
            qg = q.reshape(self.nkv, g * n, self.hd)
            s = (qg @ k.transpose(0, 2, 1)).reshape(self.nkv, g, n, T) * scale
            mask = np.arange(T)[None, :] > (start + np.arange(n))[:, None]  # causal
            s = np.where(mask, -np.inf, s)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s.reshape(self.nkv, g * n, T) @ v).reshape(self.nh, n, self.hd)
            ctx = ctx.transpose(1, 0, 2).reshape(n, self.H)
            x = x + ctx @ w[p + "attn_output.weight"].T
            h = rms_norm(x, w[p + "ffn_norm.weight"], self.eps)
            m = silu(h @ w[p + "ffn_gate.weight"].T) * (h @ w[p + "ffn_up.weight"].T)
            x = x + m @ w[p + "ffn_down.weight"].T
        x = rms_norm(x, w["output_norm.weight"], self.eps)
        return x @ self.out_w.T

    def logits_all(self, ids):
        return self.forward(ids, [None] * self.L, 0)

    def generate(self, prompt, max_tokens, stop_at_eos=True, use_cache=True):
        """Greedy. Returns (first-step logits row, generated ids, their logprobs, stopped_at_eos,
        margins: top-1 minus top-2 logit at each step)."""
        cache = [None] * self.L
        row = self.forward(prompt, cache, 0)[-1]
        first = row
        seq, gen, lps, margins = list(prompt), [], [], []
        while len(gen) < max_tokens:
            nxt = int(np.argmax(row))
            margins.append(float(row[nxt] - np.max(np.delete(row, nxt))))
            lps.append(float(log_softmax(row)[nxt]))
            gen.append(nxt)
            seq.append(nxt)
            if stop_at_eos and nxt == self.eos:
                return first, gen, lps, True, margins
            if len(gen) == max_tokens:
                break
            if use_cache:
                row = self.forward([nxt], cache, len(seq) - 1)[-1]
            else:
                row = self.logits_all(seq)[-1]
        return first, gen, lps, False, margins


def parse_prompts(values):
    prompts = []
    for v in values:
        for part in v.split(";"):
            if part.strip():
                try:
                    prompts.append([int(x) for x in part.split(",") if x.strip()])
                except ValueError:
                    raise SystemExit(f"--tokens {part!r}: expected comma-separated integers")
    return prompts


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--tokens", action="append", default=[])
    ap.add_argument("--text", action="append", default=[])
    ap.add_argument("--chat", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--logits", choices=["top", "full", "none"], default="top")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--logits-npy")
    ap.add_argument("--rope", choices=["normal", "neox"], default="normal")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--score", action="store_true")
    args = ap.parse_args()
    if args.max_tokens < 0 or args.top_k < 0:
        raise SystemExit("--max-tokens and --top-k must be >= 0")

    t0 = time.time()
    model = GgufLlama(args.gguf, rope=args.rope)
    tok = None
    prompts = parse_prompts(args.tokens)
    if args.text or args.chat:
        from gguf_bpe import GgufBpe

        tok = GgufBpe.from_gguf(model.reader)
        for t in args.text:
            prompts.append(tok.encode(render_chat(model.chat_template, t) if args.chat else t))
    if not prompts:
        raise SystemExit("give at least one prompt (--tokens or --text)")
    for p in prompts:
        bad = [i for i in p if not 0 <= i < model.V]
        if bad or not p:
            raise SystemExit(f"prompt {p}: empty or ids out of range [0, {model.V})")
    if tok is None:
        try:
            from gguf_bpe import GgufBpe

            tok = GgufBpe.from_gguf(model.reader)
        except (ValueError, ImportError):
            tok = None  # no usable tokenizer: ids only
    t1 = time.time()

    results, rows = [], []
    for p in prompts:
        res = {"prompt": p}
        if tok is not None:
            res["prompt_text"] = tok.decode(p)
        if args.score:
            lg = model.logits_all(p)
            lps = [float(log_softmax(lg[i])[p[i + 1]]) for i in range(len(p) - 1)]
            res["token_logprobs"] = lps
            res["mean_logprob"] = float(np.mean(lps)) if lps else 0.0
            res["perplexity"] = math.exp(-res["mean_logprob"])
            first = lg[-1]
        else:
            first, gen, lps, eos, margins = model.generate(p, args.max_tokens, not args.ignore_eos,
                                                            not args.no_cache)
            res.update({"generated": gen, "logprobs": lps,
                        "mean_logprob": float(np.mean(lps)) if lps else 0.0, "stopped_at_eos": eos,
                        "min_margin": min(margins) if margins else None})
            if tok is not None:
                res["text"] = tok.decode(gen)
        rows.append(first)
        if args.logits != "none":
            top = np.argsort(-first, kind="stable")[: args.top_k]
            res["top_logits"] = [[int(i), float(first[i])] for i in top]
        if args.logits == "full":
            res["logits"] = first.tolist()
        results.append(res)
    t2 = time.time()
    if args.logits_npy:
        np.save(args.logits_npy, np.stack(rows))
    out = {"model": model.hparams(), "results": results,
           "seconds": {"load": round(t1 - t0, 3), "run": round(t2 - t1, 3)}}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
