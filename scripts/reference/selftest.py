#!/usr/bin/env python3
"""Smoke tests of the numpy references on seeded tiny checkpoints (no torch needed).

  python selftest.py [--minilm MODEL_DIR]

Exit 0 when every check passes. Checks: output shapes; determinism (same seed ->
byte-identical checkpoints, same CLI output twice); causality (logits at
position i depend only on tokens <= i; position 0 only on token 0); Llama has
no absolute positions (a repeated token gives identical rows) while GPT-2 does;
RoPE relative-shift invariance and the rotate_half pairing against a complex
formulation; GQA equals MHA with duplicated k/v heads (HF repeat_kv order);
tied == untied with lm_head copied from embed_tokens; sharded == single file;
BF16 hand-parsing; greedy --generate equals step-by-step argmax; gelu_new
values. With --minilm, also runs minilm_reference.py --self-check.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep __pycache__ out of the repo
sys.path.insert(0, HERE)
import gpt2_reference as g2  # noqa: E402
import llama_reference as ll  # noqa: E402
import make_tiny  # noqa: E402
import st_common  # noqa: E402

FAILS = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""))
    if not ok:
        FAILS.append(name)


def sha_tree(d):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(d)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            h.update(os.path.relpath(p, d).encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def make(out, *extra):
    subprocess.run([sys.executable, os.path.join(HERE, "make_tiny.py"), out, *extra],
                   check=True, stdout=subprocess.DEVNULL)


def cli(script, model, toks, *extra):
    r = subprocess.run([sys.executable, os.path.join(HERE, script), model,
                        "--tokens", ",".join(map(str, toks)), *extra],
                       check=True, capture_output=True, text=True)
    return r.stdout


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lit-ref-selftest-")
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    make(a, "--seed", "7")
    make(b, "--seed", "7")
    check("make_tiny deterministic", sha_tree(a) == sha_tree(b))
    c = os.path.join(tmp, "c")
    make(c, "--seed", "8")
    check("different seed differs", sha_tree(a) != sha_tree(c))

    V = make_tiny.VOCAB
    prompt = [5, 17, 3, 42, 9]
    for script, sub in (("llama_reference.py", "llama"), ("llama_reference.py", "llama-tied"),
                        ("gpt2_reference.py", "gpt2")):
        m = os.path.join(a, sub)
        o1 = cli(script, m, prompt, "--generate", "4")
        o2 = cli(script, m, prompt, "--generate", "4")
        d = json.loads(o1)
        check(f"{sub}: CLI deterministic", o1 == o2)
        check(f"{sub}: logits shape", np.asarray(d["logits"]).shape == (len(prompt), V),
              str(np.asarray(d["logits"]).shape))
        check(f"{sub}: generated 4 ids in range",
              len(d["generated"]) == 4 and all(0 <= t < V for t in d["generated"]))
        check(f"{sub}: generated[0] = argmax(last logits)",
              d["generated"][0] == int(np.argmax(d["logits"][-1])))
        last = json.loads(cli(script, m, prompt, "--logits", "last"))
        check(f"{sub}: --logits last", last["logits"] == [d["logits"][-1]] and last["generated"] == [])
        check(f"{sub}: --generate 0 -> []", json.loads(cli(script, m, prompt))["generated"] == [])

        fwd = (ll.Llama(m) if sub.startswith("llama") else g2.GPT2(m)).forward
        # greedy = step-by-step recompute
        seq = list(prompt)
        for _ in range(4):
            seq.append(int(np.argmax(fwd(seq)[-1])))
        check(f"{sub}: generate = stepwise argmax", seq[len(prompt):] == d["generated"])
        # causality
        full = fwd(prompt)
        ok = all(maxdiff(fwd(prompt[:i + 1])[i], full[i]) < 1e-12 for i in range(len(prompt)))
        check(f"{sub}: causal (prefix logits unchanged)", ok)
        alt = fwd([prompt[0], 60, 61, 62])
        check(f"{sub}: position 0 depends only on token 0", maxdiff(alt[0], full[0]) < 1e-12)
        check(f"{sub}: later positions do depend on later tokens", maxdiff(alt[1], full[1]) > 1e-3)
        check(f"{sub}: logits finite and not degenerate",
              np.isfinite(full).all() and float(full.std()) > 0.1, f"std {full.std():.3f}")
        rep = fwd([11] * 6)
        spread = max(maxdiff(rep[i], rep[0]) for i in range(6))
        if sub.startswith("llama"):
            # no absolute position embedding: identical tokens -> identical rows
            check(f"{sub}: repeated token -> identical rows (no absolute positions)", spread < 1e-12,
                  f"{spread:.2e}")
        else:
            check(f"{sub}: repeated token -> rows differ (wpe)", spread > 1e-3, f"{spread:.2e}")

    # Llama specifics
    la = ll.Llama(os.path.join(a, "llama"))
    base = la.forward(prompt)
    shifted = la.forward(prompt, start_pos=37)
    check("llama: RoPE relative-shift invariance", maxdiff(base, shifted) < 1e-9,
          f"{maxdiff(base, shifted):.2e}")
    check("llama: shift invariance is not vacuous (rope on)",
          maxdiff(base, la.forward(prompt[::-1])[::-1]) > 1e-3)
    rng = np.random.default_rng(0)
    hd = la.hd
    x = rng.standard_normal((3, 7, hd))
    pos = np.arange(7) + 5
    got = ll.apply_rope(x, pos, la.inv_freq)
    z = (x[..., :hd // 2] + 1j * x[..., hd // 2:]) * np.exp(1j * np.outer(pos, la.inv_freq))[None]
    want = np.concatenate([z.real, z.imag], axis=-1)
    check("llama: rotate_half == complex rotation of (j, j+d/2) pairs", maxdiff(got, want) < 1e-12)
    check("llama: inv_freq = theta^(-2j/d)",
          maxdiff(la.inv_freq, [10000.0 ** (-2 * j / hd) for j in range(hd // 2)]) < 1e-15)

    # GQA == MHA with k/v heads duplicated in HF repeat_kv order (head j uses kv head j // group)
    cfg = st_common.load_config(os.path.join(a, "llama"))
    w = st_common.load_weights(os.path.join(a, "llama"))
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    grp = nh // nkv
    w2 = dict(w)
    for i in range(cfg["num_hidden_layers"]):
        for nm in ("k_proj", "v_proj"):
            k = f"model.layers.{i}.self_attn.{nm}.weight"
            heads = w[k].reshape(nkv, hd, -1)
            w2[k] = np.repeat(heads, grp, axis=0).reshape(nh * hd, -1)
    mha = os.path.join(tmp, "llama-mha")
    make_tiny.write_checkpoint(mha, dict(cfg, num_key_value_heads=nh), w2, "f32", 1)
    check("llama: GQA == MHA with duplicated kv heads",
          maxdiff(ll.Llama(mha).forward(prompt), base) < 1e-12)
    # a wrong grouping (j % nkv) would give different logits
    w3 = dict(w)
    for i in range(cfg["num_hidden_layers"]):
        for nm in ("k_proj", "v_proj"):
            k = f"model.layers.{i}.self_attn.{nm}.weight"
            heads = w[k].reshape(nkv, hd, -1)
            w3[k] = np.tile(heads, (grp, 1, 1)).reshape(nh * hd, -1)
    bad = os.path.join(tmp, "llama-mha-bad")
    make_tiny.write_checkpoint(bad, dict(cfg, num_key_value_heads=nh), w3, "f32", 1)
    check("llama: GQA grouping is distinguishable", maxdiff(ll.Llama(bad).forward(prompt), base) > 1e-3)

    # tied == untied with lm_head = embed_tokens
    tcfg = st_common.load_config(os.path.join(a, "llama-tied"))
    tw = st_common.load_weights(os.path.join(a, "llama-tied"))
    check("llama-tied: no lm_head tensor", "lm_head.weight" not in tw)
    untied = os.path.join(tmp, "llama-untied")
    make_tiny.write_checkpoint(untied, dict(tcfg, tie_word_embeddings=False),
                               dict(tw, **{"lm_head.weight": tw["model.embed_tokens.weight"]}), "f32", 1)
    check("llama: tied == untied copy",
          maxdiff(ll.Llama(untied).forward(prompt), ll.Llama(os.path.join(a, "llama-tied")).forward(prompt)) == 0)

    # sharded == single, bf16 parsing, f16
    sh = os.path.join(tmp, "sharded")
    make(sh, "--seed", "7", "--shards", "3")
    check("sharded: 3 files + index", len([f for f in os.listdir(os.path.join(sh, "llama"))
                                           if f.endswith(".safetensors")]) == 3)
    for sub, M in (("llama", ll.Llama), ("gpt2", g2.GPT2)):
        check(f"{sub}: sharded == single",
              maxdiff(M(os.path.join(sh, sub)).forward(prompt), M(os.path.join(a, sub)).forward(prompt)) == 0)
    manual = st_common._load_manual(os.path.join(a, "gpt2", "model.safetensors"))
    lib = st_common.load_file(os.path.join(a, "gpt2", "model.safetensors"))
    check("hand parser == safetensors.numpy on F32",
          manual.keys() == lib.keys() and all(np.array_equal(manual[k], lib[k]) for k in lib))
    bf = os.path.join(tmp, "bf16")
    make(bf, "--seed", "7", "--dtype", "bf16")
    wf = st_common.load_weights(os.path.join(a, "llama"))
    wb = st_common.load_weights(os.path.join(bf, "llama"))
    ok = True
    for k in wf:
        bits = wb[k].astype(np.float32).view(np.uint32)
        ok &= bool(np.all(bits & 0xFFFF == 0))  # exactly representable in bf16
        ok &= bool(np.all(np.abs(wb[k] - wf[k]) <= np.abs(wf[k]) * 2.0 ** -8 + 1e-30))  # within half ulp
    check("bf16: values are bf16-rounded f32 weights", ok)
    ref_bits = make_tiny.f32_to_bf16_bits(np.array([1.0, -2.5, 1.00390625, 1.01171875, 3.0e38], np.float32))
    check("bf16: round-to-nearest-even", ref_bits.tolist() == [0x3F80, 0xC020, 0x3F80, 0x3F82, 0x7F62],
          str([hex(v) for v in ref_bits]))
    lb = ll.Llama(os.path.join(bf, "llama")).forward(prompt)
    check("bf16 llama logits close to f32", maxdiff(lb, base) < 0.25, f"{maxdiff(lb, base):.3f}")
    f16 = os.path.join(tmp, "f16")
    make(f16, "--seed", "7", "--dtype", "f16")
    gf = g2.GPT2(os.path.join(f16, "gpt2")).forward(prompt)
    check("f16 gpt2 logits close to f32",
          maxdiff(gf, g2.GPT2(os.path.join(a, "gpt2")).forward(prompt)) < 0.05)

    # GPT-2 specifics
    vals = g2.gelu_new(np.array([-3.0, -1.0, 0.0, 1.0, 2.0]))
    want = [-0.0036373920817729943, -0.15880800939172324, 0.0, 0.8411919906082768, 1.954597694087775]
    check("gelu_new values", maxdiff(vals, want) < 1e-15, str(vals.tolist()))
    check("gelu exact values", abs(float(g2.gelu_exact(np.array([1.0]))[0]) - 0.8413447460685429) < 1e-15)
    r = subprocess.run([sys.executable, os.path.join(HERE, "gpt2_reference.py"), os.path.join(a, "gpt2"),
                        "--tokens", ",".join(["1"] * 33)], capture_output=True, text=True)
    check("gpt2: > n_positions rejected", r.returncode != 0)

    if args.minilm:
        r = subprocess.run([sys.executable, os.path.join(HERE, "minilm_reference.py"), args.minilm,
                            "--self-check"], capture_output=True, text=True)
        check("minilm --self-check", r.returncode == 0, r.stdout.replace("\n", " ")[:300])

    import shutil
    shutil.rmtree(tmp)
    print(f"{len(FAILS)} failed" if FAILS else "all checks passed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
