#!/usr/bin/env python3
"""Independent reference for lit's GGUF dequantizers: llama.cpp's own `gguf` package.

Usage:
  gguf_dequant.py file MODEL.gguf OUT.json
      For every tensor of MODEL.gguf (in file order): name, GGML type name, element count and
      the sha256 of its `gguf.quants.dequantize` output as little-endian f32 bytes, in GGUF
      order (no permutation undone).
  gguf_dequant.py random OUT_DIR SEED
      For Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K: 64 blocks of random bytes whose f16 scales
      (d, dmin / m) are random finite values, written as OUT_DIR/<TYPE>.blocks, and their
      dequantized f32 values as OUT_DIR/<TYPE>.f32.
  gguf_dequant.py hf MODEL.gguf NAME HEADS OUT.f32
      Tensor NAME dequantized, with llama.cpp's RoPE row permutation of Q/K undone in numpy
      (convert_hf_to_gguf's `permute` is reshape(heads, 2, rows/heads/2, cols).swapaxes(1, 2);
      its inverse is reshape(heads, rows/heads/2, 2, cols).swapaxes(1, 2)), row-major f32.
      HEADS = 0: no permutation (tensors llama.cpp does not permute).
  gguf_dequant.py write OUT_DIR SEED
      A tiny Llama GGUF written by gguf-py's GGUFWriter (OUT_DIR/tiny.gguf, alignment 64, one
      tensor of each of F32, F16, BF16, Q8_0, Q4_0, Q4_1, quantized by gguf.quants.quantize), and
      for every tensor the values lit must store for it with --dtype f32, under its Hugging Face
      name (OUT_DIR/<name>.f32: dequantized by gguf-py, Q/K rows unpermuted in numpy).
"""
import hashlib
import json
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize

# (byte offset, count) of the f16 scale fields in each block layout.
F16_FIELDS = {
    T.Q8_0: (34, [0]),
    T.Q4_0: (18, [0]),
    T.Q4_1: (20, [0, 2]),
    T.Q4_K: (144, [0, 2]),
    T.Q5_K: (176, [0, 2]),
    T.Q6_K: (210, [208]),
}


def file_mode(path, out):
    r = GGUFReader(path)
    rows = []
    for t in r.tensors:
        values = dequantize(np.asarray(t.data), t.tensor_type).astype("<f4", copy=False)
        rows.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "elements": int(values.size),
            "sha256": hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest(),
        })
    with open(out, "w") as f:
        json.dump(rows, f)


def random_mode(out_dir, seed):
    rng = np.random.default_rng(seed)
    for qtype, (size, fields) in F16_FIELDS.items():
        blocks = rng.integers(0, 256, size=(64, size), dtype=np.uint8)
        for at in fields:
            # Finite f16 scales of assorted magnitudes and signs (subnormals included).
            scale = (rng.standard_normal(64) * 10.0 ** rng.integers(-6, 3, 64)).astype(np.float16)
            blocks[:, at:at + 2] = scale.view(np.uint8).reshape(64, 2)
        values = dequantize(blocks, qtype).astype("<f4", copy=False)
        assert np.all(np.isfinite(values)), qtype
        blocks.tofile(f"{out_dir}/{qtype.name}.blocks")
        np.ascontiguousarray(values).tofile(f"{out_dir}/{qtype.name}.f32")


def hf_mode(path, name, heads, out):
    r = GGUFReader(path)
    t = next(t for t in r.tensors if t.name == name)
    w = dequantize(np.asarray(t.data), t.tensor_type).astype("<f4", copy=False)
    if heads > 0:
        rows, cols = w.shape
        w = w.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
    np.ascontiguousarray(w).tofile(out)


def write_mode(out_dir, seed):
    from gguf import GGUFWriter, quantize
    rng = np.random.default_rng(seed)
    w = GGUFWriter(f"{out_dir}/tiny.gguf", "llama")
    w.add_custom_alignment(64)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(32)
    # (gguf name, hf name, shape (rows, cols), type, heads whose RoPE permutation is undone)
    specs = [
        ("token_embd.weight", "model.embed_tokens.weight", (32, 64), T.Q8_0, 0),
        ("output.weight", "lm_head.weight", (32, 64), T.BF16, 0),
        ("output_norm.weight", "model.norm.weight", (64,), T.F32, 0),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", (64,), T.F32, 0),
        ("blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", (64,), T.F32, 0),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", (64, 64), T.Q4_0, 4),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", (32, 64), T.Q4_1, 2),
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", (32, 64), T.F16, 0),
        ("blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", (64, 64), T.F32, 0),
        ("blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", (96, 64), T.Q8_0, 0),
        ("blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", (96, 64), T.Q4_0, 0),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", (64, 96), T.Q4_1, 0),
    ]
    expected = {}
    for name, hf, shape, qtype, heads in specs:
        x = rng.standard_normal(shape).astype(np.float32)
        q = quantize(x, qtype)
        w.add_tensor(name, q, raw_dtype=qtype)
        v = dequantize(q, qtype).astype("<f4").reshape(shape)
        if heads:
            rows, cols = shape
            v = v.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
        expected[hf] = np.ascontiguousarray(v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for hf, v in expected.items():
        v.tofile(f"{out_dir}/{hf}.f32")


if __name__ == "__main__":
    if sys.argv[1] == "file":
        file_mode(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "random":
        random_mode(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "write":
        write_mode(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "hf":
        hf_mode(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(__doc__)
