"""Writes tiny.pt with torch.save (run once with real PyTorch; the file is committed).

Tensors: a float32 matrix, a bfloat16 vector, an int64 buffer and a non-contiguous (transposed)
view, so the reader's dtype and stride handling are exercised. Values are arange-based so the
Rust test can recompute them independently.
"""
import sys
import torch

out = sys.argv[1] if len(sys.argv) > 1 else "tiny.pt"
state = {
    "encoder.layer.0.dense.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8,
    "encoder.layer.0.dense.bias": torch.arange(3, dtype=torch.bfloat16) - 1,
    "encoder.layer.1.dense.weight": (torch.arange(12, dtype=torch.float32).reshape(4, 3) * 2).t(),
    "embeddings.position_ids": torch.arange(5, dtype=torch.int64).unsqueeze(0),
}
torch.save(state, out)
