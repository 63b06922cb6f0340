#!/usr/bin/env python3
"""Independent byte-level BPE tokenizer built from a GGUF file's tokenizer metadata.

  python gguf_bpe.py MODEL.gguf --encode "text" [--encode ...]   -> {"ids": [[...], ...]}
  python gguf_bpe.py MODEL.gguf --decode 1,2,3 [--decode ...]    -> {"texts": [...]}
  python gguf_bpe.py MODEL.gguf --self-check                     -> sanity check vs `tokenizers`

Implements, from `tokenizer.ggml.{model,pre,tokens,token_type,merges}` only:
- GPT-2's byte-to-unicode map (every byte is a printable code point; space is 'Ġ').
- Control (type 3) and user-defined (type 4) tokens matched verbatim in the input,
  longest first, before any pre-tokenization (llama.cpp's `parse_special = true`).
- The pre-tokenizer named by `tokenizer.ggml.pre`:
    gpt2:   the GPT-2 split  's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    smollm: first every \\p{N} character on its own, then the GPT-2 split on each piece
            (llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM: regex_exprs =
             {"\\p{N}", <GPT-2 regex>}; Hugging Face's SmolLM2 tokenizer.json says the same:
             Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false)]).
  The regex is matched by hand (Python's `re` has no \\p{..}): \\p{L} = Unicode category L*,
  \\p{N} = N*, \\s = the Unicode White_Space property.
- BPE: merges applied lowest rank first (rank = position in tokenizer.ggml.merges).
- decode: tokens' code points mapped back to bytes, UTF-8 decoded (invalid -> U+FFFD);
  control tokens rendered verbatim unless skip_special.
No BOS/EOS is added (SmolLM2's metadata says add_bos_token = false); pass them yourself.

--self-check builds a Hugging Face tokenizer.json from the same metadata and compares
encodings with the `tokenizers` package on a set of tricky strings and on this repository's
text files. It is a sanity check only: the tokenizer here is the reference.
"""
import json
import os
import sys
import unicodedata

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo

SUPPORTED_PRE = ("gpt2", "smollm")

# Unicode White_Space property (what \s means in Unicode regex engines).
_WHITESPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)]
    + [chr(c) for c in (0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)]
    + [chr(c) for c in range(0x2000, 0x200B)]
)


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable code point map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _is_space(c):
    return c in _WHITESPACE


def _is_letter(c):
    return unicodedata.category(c)[0] == "L"


def _is_number(c):
    return unicodedata.category(c)[0] == "N"


def _is_other(c):
    return not (_is_space(c) or _is_letter(c) or _is_number(c))


def gpt2_split(text):
    """Split `text` like the GPT-2 regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    (leftmost alternative that matches wins, each quantifier greedy)."""
    out = []
    i, n = 0, len(text)

    def run(j, pred):
        while j < n and pred(text[j]):
            j += 1
        return j

    while i < n:
        c = text[i]
        # 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
        if c == "'" and i + 1 < n:
            if text[i + 1] in "stmd":
                out.append(text[i:i + 2])
                i += 2
                continue
            if text[i + 1:i + 3] in ("re", "ve", "ll"):
                out.append(text[i:i + 3])
                i += 3
                continue
        nxt = text[i + 1] if i + 1 < n else None
        start = i + 1 if (c == " " and nxt is not None) else i
        head = text[start]
        matched = False
        for pred in (_is_letter, _is_number, _is_other):
            # ` ?X+`: optional single space, then a non-empty run of class X
            if pred(head) and (start == i + 1 or pred(c)):
                j = run(start, pred)
                out.append(text[i:j])
                i = j
                matched = True
                break
        if matched:
            continue
        # c is whitespace here (every non-space char is L, N or other).
        j = run(i, _is_space)
        if j < n and j - i >= 2:
            j -= 1  # \s+(?!\S): leave the last space to prefix the next word
        out.append(text[i:j])  # at end of text the whole run; a single space falls to \s+
        i = j
    return out


def split_numbers(text):
    """\\p{N} matched on its own: every N-category char is a piece; the gaps are pieces."""
    out, cur = [], []
    for c in text:
        if _is_number(c):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(c)
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return out


class GgufBpe:
    """Byte-level BPE from GGUF tokenizer metadata (see module docstring)."""

    def __init__(self, tokens, merges, token_types=None, pre="gpt2", model="gpt2"):
        if model != "gpt2":
            raise ValueError(f"tokenizer.ggml.model {model!r} is not byte-level BPE ('gpt2')")
        if pre not in SUPPORTED_PRE:
            raise ValueError(f"pre-tokenizer {pre!r} not supported (supported: {', '.join(SUPPORTED_PRE)})")
        self.pre = pre
        self.tokens = list(tokens)
        self.token_types = list(token_types) if token_types is not None else [1] * len(self.tokens)
        if len(self.token_types) != len(self.tokens):
            raise ValueError("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length")
        self.vocab = {}
        for i, t in enumerate(self.tokens):
            self.vocab.setdefault(t, i)
        self.ranks = {}
        for r, m in enumerate(merges):
            parts = m.split(" ")
            if len(parts) != 2:
                raise ValueError(f"merge {r} {m!r} is not two space-separated symbols")
            self.ranks.setdefault((parts[0], parts[1]), r)
        # Control and user-defined tokens are matched verbatim (longest first).
        self.special = sorted(
            (t for t, ty in zip(self.tokens, self.token_types) if ty in (3, 4) and t),
            key=lambda s: (-len(s), s))
        self.special_ids = {i for i, ty in enumerate(self.token_types) if ty == 3}
        self.b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in self.b2u.items()}
        self._cache = {}

    @classmethod
    def from_gguf(cls, path_or_reader):
        import gguf

        r = path_or_reader if isinstance(path_or_reader, gguf.GGUFReader) else gguf.GGUFReader(path_or_reader)

        def get(key, default=None):
            f = r.fields.get(key)
            return default if f is None else f.contents()

        tokens = get("tokenizer.ggml.tokens")
        merges = get("tokenizer.ggml.merges")
        if tokens is None or merges is None:
            raise ValueError("GGUF has no tokenizer.ggml.tokens / tokenizer.ggml.merges")
        tok = cls(tokens, merges, get("tokenizer.ggml.token_type"),
                  pre=get("tokenizer.ggml.pre", "gpt2"), model=get("tokenizer.ggml.model", "gpt2"))
        tok.bos_id = get("tokenizer.ggml.bos_token_id")
        tok.eos_id = get("tokenizer.ggml.eos_token_id")
        tok.chat_template = get("tokenizer.chat_template")
        return tok

    # -- encoding ---------------------------------------------------------------
    def _pre_split(self, text):
        pieces = split_numbers(text) if self.pre == "smollm" else [text]
        out = []
        for p in pieces:
            out.extend(gpt2_split(p))
        return out

    def _bpe(self, word):
        """word: string of byte-unicode chars -> list of token ids."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        syms = list(word)
        while len(syms) > 1:
            best, best_i = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, best_i = r, i
            if best is None:
                break
            # merge every occurrence of this pair, left to right
            a, b = syms[best_i], syms[best_i + 1]
            merged, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(syms[i])
                    i += 1
            syms = merged
        ids = []
        for s in syms:
            tid = self.vocab.get(s)
            if tid is None:
                raise ValueError(f"BPE symbol {s!r} is not in the vocabulary")
            ids.append(tid)
        self._cache[word] = ids
        return ids

    def _encode_plain(self, text):
        ids = []
        for piece in self._pre_split(text):
            word = "".join(self.b2u[b] for b in piece.encode("utf-8"))
            ids.extend(self._bpe(word))
        return ids

    def encode(self, text, parse_special=True):
        if not parse_special or not self.special:
            return self._encode_plain(text)
        ids, i, start = [], 0, 0
        while i < len(text):
            for s in self.special:
                if text.startswith(s, i):
                    if start < i:
                        ids.extend(self._encode_plain(text[start:i]))
                    ids.append(self.vocab[s])
                    i += len(s)
                    start = i
                    break
            else:
                i += 1
        if start < len(text):
            ids.extend(self._encode_plain(text[start:]))
        return ids

    # -- decoding ---------------------------------------------------------------
    def decode(self, ids, skip_special=False):
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} out of range (vocabulary {len(self.tokens)})")
            t = self.tokens[i]
            if self.token_types[i] in (3, 4):
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                if not (skip_special and i in self.special_ids):
                    out.append(t)
                continue
            for ch in t:
                b = self.u2b.get(ch)
                if b is None:
                    raise ValueError(f"token {i} {t!r} has a char outside the byte map")
                buf.append(b)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    # -- sanity check -------------------------------------------------------------
    def hf_tokenizer_json(self):
        """A Hugging Face tokenizer.json equivalent to this tokenizer (for --self-check)."""
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        if self.pre == "smollm":
            pre = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, pre]}
        merges = sorted(self.ranks.items(), key=lambda kv: kv[1])
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.vocab[s], "content": s, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True}
                for s in self.special
            ],
            "normalizer": None,
            "pre_tokenizer": pre,
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": self.vocab, "merges": [[a, b] for (a, b), _ in merges]},
        }


SELF_CHECK_TEXTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Hello, World! It's a test; they'll say we've done it, I'm sure he'd agree.",
    "He said 'hello' and ''quoted'' 'S 'T don't DON'T",
    "  leading spaces   and   runs\tof\t\twhitespace \n\n\n  trailing  ",
    "numbers 1234567 3.14159 -42 1e-5 0x1F ١٢٣ ½ Ⅻ",
    "unicode: café naïve façade 日本語のテキスト 한국어 Ελληνικά русский emoji 😀👍🏽 e\u0301",
    "code:\n    for i in range(10):\n        print(i ** 2)  # squares\n\treturn x->y && !z;",
    "mixed<|im_end|>special<|endoftext|><|im_start|><file_sep>x<gh_stars>10",
    "\u00a0nbsp\u2003emspace\u3000ideographic \u200bzwsp",
    "",
    " ",
    "a",
    "!!!???...,,,;;;:::",
    "'",
    "'s",
    "x'",
    "\r\n\r\nwindows\r\nlines",
]


def _repo_texts(max_files=400, max_chars=20000):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    texts = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("target",)]
        for f in sorted(filenames):
            if f.endswith((".md", ".rs", ".py", ".sh", ".toml")):
                try:
                    with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                        texts.append(fh.read()[:max_chars])
                except (OSError, UnicodeDecodeError):
                    pass
                if len(texts) >= max_files:
                    return texts
    return texts


def _random_texts(n=300, seed=0):
    """Seeded random strings over a pool that stresses the split rules."""
    import random

    rng = random.Random(seed)
    pool = list(" \t\n\r'sdtmlrev") + list("aZé日😀٣5½!?.,-_(){}<>|") + ["\u00a0", "\u3000", "'s", "'ll",
                                                                      "<|im_end|>", "  ", "123"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 24))) for _ in range(n)]


def self_check(tok):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_str(json.dumps(tok.hf_tokenizer_json()))
    texts = SELF_CHECK_TEXTS + _random_texts() + _repo_texts()
    bad, n_tokens = 0, 0
    for t in texts:
        ours = tok.encode(t)
        theirs = hf.encode(t, add_special_tokens=False).ids
        n_tokens += len(ours)
        if ours != theirs:
            bad += 1
            k = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            print(f"MISMATCH on {t[:60]!r}: at {k}: ours {ours[k:k+8]} tokenizers {theirs[k:k+8]}",
                  file=sys.stderr)
        back = tok.decode(ours)
        if back != t:
            bad += 1
            print(f"ROUND TRIP FAILED on {t[:60]!r}: {back[:60]!r}", file=sys.stderr)
        if hf.decode(ours, skip_special_tokens=False) != back:
            bad += 1
            print(f"DECODE differs from tokenizers on {t[:60]!r}", file=sys.stderr)
    print(json.dumps({"texts": len(texts), "tokens": n_tokens, "failures": bad}))
    return bad == 0


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--encode", action="append", default=[], metavar="TEXT")
    ap.add_argument("--decode", action="append", default=[], metavar="IDS")
    ap.add_argument("--skip-special", action="store_true", help="decode: drop control tokens")
    ap.add_argument("--self-check", action="store_true")
    args = ap.parse_args()
    tok = GgufBpe.from_gguf(args.gguf)
    if args.self_check:
        sys.exit(0 if self_check(tok) else 1)
    out = {}
    if args.encode:
        out["ids"] = [tok.encode(t) for t in args.encode]
    if args.decode:
        out["texts"] = [tok.decode([int(x) for x in s.split(",") if x.strip()], args.skip_special)
                        for s in args.decode]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
