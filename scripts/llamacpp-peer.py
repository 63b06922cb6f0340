"""llama.cpp (llama-cpp-python) decoding greedily, for scripts/bench-llamacpp.sh.

Usage: llamacpp-peer.py GGUF THREADS TOKENS MMAP(1|0) PROMPT
Resets llama.cpp's performance counters, then completes PROMPT greedily (top_k 1; no BOS:
SmolLM2's metadata says not to add one) for up to TOKENS tokens and prints, as the last stdout
line, JSON with the per-token decode time from llama_perf_context (t_eval_ms / n_eval: llama.cpp's
own timing of the one-token decodes; the prompt is counted apart, in t_p_eval_ms) and the text.
"""
import json
import sys
import time

import llama_cpp
from llama_cpp import Llama

path, threads, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mmap, prompt = sys.argv[4] == "1", sys.argv[5]
t0 = time.perf_counter()
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, use_mmap=mmap,
            n_ctx=512, n_batch=64, verbose=False)
load_ms = (time.perf_counter() - t0) * 1e3
ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
llama_cpp.llama_perf_context_reset(llm.ctx)
t0 = time.perf_counter()
res = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, top_k=1)
wall_ms = (time.perf_counter() - t0) * 1e3
perf = llama_cpp.llama_perf_context(llm.ctx)
print(res["choices"][0]["text"], file=sys.stderr)
print(json.dumps({"token_ms": perf.t_eval_ms / perf.n_eval, "n_eval": perf.n_eval,
                  "t_eval_ms": perf.t_eval_ms, "n_p_eval": perf.n_p_eval,
                  "t_p_eval_ms": perf.t_p_eval_ms, "wall_ms": wall_ms, "load_ms": load_ms,
                  "mmap": mmap, "prompt_ids": ids, "text": res["choices"][0]["text"]}))
