#!/usr/bin/env python3
"""Writes two small hand-configured BPE tokenizer.json files that exercise the pipeline parts the
real files do not use (tests/fixtures/tokenizer/mini-bl, mini-spm). Merges are learned by a naive
BPE over the corpus so that the merge machinery does real work. Reference ids come from
@huggingface/tokenizers via scripts/tokenizer-fixtures.sh like for the real files.

mini-bl: byte-level; normalizer Sequence[NFKC, Lowercase, Strip]; pre-tokenizer
  Sequence[Digits(individual), Punctuation, ByteLevel(add_prefix_space, use_regex)];
  post-processor TemplateProcessing <bos> $A <eos>; added tokens with lstrip/rstrip and a
  normalized one.
mini-spm: SentencePiece-style; normalizer Sequence[NFD, StripAccents, Replace(Regex \\s+ -> " ")];
  pre-tokenizer Sequence[WhitespaceSplit, Metaspace(prepend_scheme first)]; byte_fallback; Split
  with a String pattern; decoder Metaspace."""
import collections, json, os, unicodedata

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
fx = os.path.join(root, "tests/fixtures/tokenizer")
corpus = [json.loads(l) for l in open(os.path.join(fx, "corpus.jsonl"), encoding="utf-8")]

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

def learn(words, n_merges):
    words = [list(w) for w in words if w]
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += 1
        if not pairs: break
        (a, b), c = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2: break
        merges.append((a, b))
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                else:
                    i += 1
    return merges

def write(name, tj):
    d = os.path.join(fx, name)
    os.makedirs(d, exist_ok=True)
    json.dump(tj, open(os.path.join(d, "tokenizer.json"), "w"), ensure_ascii=False)
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>"},
              open(os.path.join(d, "tokenizer_config.json"), "w"))

# ---- mini-bl
b2u = bytes_to_unicode()
text = " ".join(s.lower() for s in corpus)
words = ["".join(b2u[b] for b in (" " + w).encode()) for w in text.split()]
merges = learn(words, 300)
vocab = {}
for tok in ["<pad>", "<bos>", "<eos>", "<|sep|>", "[mask]"]:
    vocab[tok] = len(vocab)
for b in range(256):
    vocab.setdefault(b2u[b], len(vocab))
for a, b in merges:
    vocab.setdefault(a + b, len(vocab))
added = [
    {"id": 0, "content": "<pad>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    {"id": 1, "content": "<bos>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    {"id": 2, "content": "<eos>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    {"id": 3, "content": "<|sep|>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
    {"id": 4, "content": "[MASK]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
]
vocab["[MASK]"] = vocab.pop("[mask]")
write("mini-bl", {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                   {"type": "Strip", "strip_left": True, "strip_right": True}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                      {"type": "Punctuation", "behavior": "Isolated"},
                      {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]},
    "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<eos>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<bos>": {"id": "<bos>", "ids": [1], "tokens": ["<bos>"]},
                           "<eos>": {"id": "<eos>", "ids": [2], "tokens": ["<eos>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
})

# ---- mini-spm
def norm(s):
    s = unicodedata.normalize("NFD", s)
    s = "".join(c for c in s if not unicodedata.category(c).startswith("M"))
    return " ".join(s.split())
chars = collections.Counter(c for s in corpus for c in norm(s))
words = ["\u2581" + w for s in corpus for w in norm(s).split()]
merges = learn(words, 300)
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    vocab[f"<0x{b:02X}>"] = len(vocab)
vocab.setdefault("\u2581", len(vocab))
for c, n in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
    if n >= 3: vocab.setdefault(c, len(vocab))
for a, b in merges:
    for p in (a, b):
        vocab.setdefault(p, len(vocab))
    vocab.setdefault(a + b, len(vocab))
write("mini-spm", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                      "special": True} for i, t in enumerate(["<unk>", "<s>", "</s>"])],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"},
                   {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\|"}, "behavior": "Removed", "invert": False},
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}]},
    "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
              "vocab": vocab, "merges": [[a, b] for a, b in merges]},
})
print("wrote mini-bl, mini-spm")

# ---- mini-unk: mini-spm without byte fallback, so that rare characters become <unk> and fuse_unk
# joins runs of them; a plain Metaspace pre-tokenizer (prepend_scheme always)
tj = json.load(open(os.path.join(fx, "mini-spm", "tokenizer.json"), encoding="utf-8"))
tj["model"]["byte_fallback"] = False
tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
tj["normalizer"] = None
write("mini-unk", tj)
print("wrote mini-unk")
