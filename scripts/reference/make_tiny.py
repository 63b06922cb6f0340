#!/usr/bin/env python3
"""Write seeded random tiny Llama and GPT-2 checkpoints (HF naming, safetensors + config.json).

  python make_tiny.py OUT_DIR [--seed 0] [--dtype f32|f16|bf16] [--shards 1]

writes
  OUT_DIR/llama       GQA (4 query heads, 2 kv heads), untied lm_head, 2 layers
  OUT_DIR/llama-tied  MHA, tie_word_embeddings=true (no lm_head.weight), 2 layers
  OUT_DIR/gpt2        4 heads, 2 layers, n_positions 32, tied head
all with vocab 64, hidden 32. The same seed gives byte-identical files.
--shards N > 1 splits each checkpoint into model-0000k-of-0000N.safetensors plus
model.safetensors.index.json. --dtype bf16 is written by hand (numpy has no
bf16; rounding f32 -> bf16 is round-to-nearest-even).
Prints OUT_DIR as the last line.
"""
import argparse
import json
import os
import struct

import numpy as np
from safetensors.numpy import save_file

VOCAB, HIDDEN = 64, 32


def f32_to_bf16_bits(a):
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    if dtype == "f32":
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
                  path, metadata={"format": "pt"})
        return
    if dtype == "f16":
        save_file({k: np.ascontiguousarray(v, dtype=np.float16) for k, v in tensors.items()},
                  path, metadata={"format": "pt"})
        return
    # bf16, by hand
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(tensors):
        b = f32_to_bf16_bits(tensors[k]).astype("<u2").tobytes()
        hdr[k] = {"dtype": "BF16", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_checkpoint(out, cfg, tensors, dtype, shards):
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(out, fn))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    parts = [names[i::shards] for i in range(shards)]
    wm, total = {}, 0
    esize = {"f32": 4, "f16": 2, "bf16": 2}[dtype]
    for j, part in enumerate(parts):
        fn = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out, fn), {k: tensors[k] for k in part}, dtype)
        for k in part:
            wm[k] = fn
            total += tensors[k].size * esize
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": int(total)}, "weight_map": wm}, f, indent=2, sort_keys=True)
        f.write("\n")


def lin(rng, out_f, in_f):
    return rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)


def tiny_llama(rng, nh, nkv, tied, layers=2, inter=48):
    hd = HIDDEN // nh
    t = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, HIDDEN))}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1.0 + 0.1 * rng.standard_normal(HIDDEN)
        t[p + "post_attention_layernorm.weight"] = 1.0 + 0.1 * rng.standard_normal(HIDDEN)
        t[p + "self_attn.q_proj.weight"] = lin(rng, nh * hd, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = lin(rng, nkv * hd, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = lin(rng, nkv * hd, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = lin(rng, HIDDEN, nh * hd)
        t[p + "mlp.gate_proj.weight"] = lin(rng, inter, HIDDEN)
        t[p + "mlp.up_proj.weight"] = lin(rng, inter, HIDDEN)
        t[p + "mlp.down_proj.weight"] = lin(rng, HIDDEN, inter)
    t["model.norm.weight"] = 1.0 + 0.1 * rng.standard_normal(HIDDEN)
    if not tied:
        t["lm_head.weight"] = rng.standard_normal((VOCAB, HIDDEN)) / np.sqrt(HIDDEN) * 3
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": inter,
        "num_attention_heads": nh, "num_key_value_heads": nkv,
        "num_hidden_layers": layers, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": VOCAB, "tie_word_embeddings": tied, "hidden_act": "silu",
        "max_position_embeddings": 128, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    return cfg, t


def tiny_gpt2(rng, nh=4, layers=2, n_pos=32):
    H = HIDDEN
    t = {"wte.weight": 0.5 * rng.standard_normal((VOCAB, H)),
         "wpe.weight": 0.5 * rng.standard_normal((n_pos, H))}
    for i in range(layers):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"] = 1.0 + 0.1 * rng.standard_normal(H)
            t[p + ln + ".bias"] = 0.1 * rng.standard_normal(H)
        # Conv1D: weight [in, out]
        t[p + "attn.c_attn.weight"] = lin(rng, 3 * H, H).T.copy()
        t[p + "attn.c_attn.bias"] = 0.1 * rng.standard_normal(3 * H)
        t[p + "attn.c_proj.weight"] = lin(rng, H, H).T.copy()
        t[p + "attn.c_proj.bias"] = 0.1 * rng.standard_normal(H)
        t[p + "mlp.c_fc.weight"] = lin(rng, 4 * H, H).T.copy()
        t[p + "mlp.c_fc.bias"] = 0.1 * rng.standard_normal(4 * H)
        t[p + "mlp.c_proj.weight"] = lin(rng, H, 4 * H).T.copy()
        t[p + "mlp.c_proj.bias"] = 0.1 * rng.standard_normal(H)
    t["ln_f.weight"] = 1.0 + 0.1 * rng.standard_normal(H)
    t["ln_f.bias"] = 0.1 * rng.standard_normal(H)
    cfg = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "n_embd": H, "n_head": nh, "n_layer": layers, "n_positions": n_pos, "n_ctx": n_pos,
        "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
        "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32",
    }
    return cfg, t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--shards", type=int, default=1)
    args = ap.parse_args()
    tdt = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[args.dtype]
    rng = np.random.default_rng(args.seed)
    for name, (cfg, t) in (("llama", tiny_llama(rng, nh=4, nkv=2, tied=False)),
                           ("llama-tied", tiny_llama(rng, nh=4, nkv=4, tied=True)),
                           ("gpt2", tiny_gpt2(rng))):
        cfg["torch_dtype"] = tdt
        write_checkpoint(os.path.join(args.out_dir, name), cfg, t, args.dtype, args.shards)
    print(args.out_dir)


if __name__ == "__main__":
    main()
