#!/usr/bin/python3
"""make_bert_fixtures.py - writes the PyTorch reference fixtures of the BERT-family encoder.

For a few tiny random BERT configs (shapes of all-MiniLM-L6-v2, bge-small, e5-small: learned
absolute positions, token types, embeddings LayerNorm, post-LayerNorm blocks, erf GELU, biases
everywhere) this script builds the encoder as plain PyTorch (written out below, no transformers
or sentence-transformers library), runs texts through it in float64 and writes, per config, a
sentence-transformers style folder under tests/fixtures/bert/<name>/:

  config.json             HF config (model_type bert)
  model.safetensors       weights (F32, F16 or BF16; values exactly representable), names with
                          or without the "bert." prefix
  tokenizer.json          the WordPiece vocabulary of tests/fixtures/tokenizer/wordpiece
                          ([CLS] $A [SEP]; one config with truncation.max_length)
  modules.json, 1_Pooling/config.json, sentence_bert_config.json (optional max_seq_length)
  model.gguf              (one config) the same weights as llama.cpp's "bert" GGUF, WPM vocabulary
  ref.safetensors         per text i: ids.i (with [CLS]/[SEP], truncated), hidden.i (T,C) last
                          hidden states, pooled.i (C) the sentence embedding; typed.ids,
                          typed.types, typed.hidden: one forward with token type ids
  ref.json                the texts

Each text is run alone (no padding); the C test runs them as one padded batch, so the mask is
tested against the unpadded truth. Tokenization here is a small independent WordPiece (BERT's
basic tokenizer on ASCII text + greedy longest match), checked against the C tokenizer.
Run with Debian's python3-torch:  /usr/bin/python3 scripts/make_bert_fixtures.py
"""
import json
import math
import os
import shutil
import struct

import torch

torch.set_default_dtype(torch.float64)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "bert")
VOCAB_SRC = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "wordpiece", "tokenizer.json")

TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog.",
    "what is covid-19? wash your hands!",
    "a",
    "",
    "how long does the virus live on surfaces such as plastic, steel and cardboard?",
]

CONFIGS = [
    # name, hidden, heads, layers, ffn, max_pos, dtype, prefix, pooling, normalize, max_seq, trunc, gguf
    dict(name="minilm_mean", C=32, NH=4, L=2, F=64, P=40, dtype="F16", prefix="", pooling="mean", normalize=True,
         max_seq=None, trunc=None, gguf=True),
    dict(name="bge_cls", C=24, NH=3, L=2, F=48, P=32, dtype="BF16", prefix="bert.", pooling="cls", normalize=True,
         max_seq=12, trunc=None, gguf=False),
    dict(name="e5_mean_raw", C=32, NH=2, L=1, F=48, P=24, dtype="F16", prefix="", pooling="mean", normalize=False,
         max_seq=None, trunc=10, gguf=False),
]


# ---- safetensors and GGUF (simple enough to write by hand) -----------------------------------

def tensor_bytes(t, dt):
    t = t.detach().contiguous()
    if dt == "F32":
        return t.to(torch.float32).numpy().tobytes()
    if dt == "F16":
        return t.to(torch.float16).numpy().tobytes()
    if dt == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    if dt == "I32":
        return t.to(torch.int32).numpy().tobytes()
    raise ValueError(dt)


def st_write(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t, dt in tensors:
        b = tensor_bytes(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_write(path, kvs, tensors):
    """kvs: list of (key, kind, value) with kind u32/f32/bool/str/strs/i32s; tensors: (name, torch, dt)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, kind, val in kvs:
        out += gguf_str(key)
        if kind == "u32":
            out += struct.pack("<II", 4, val)
        elif kind == "f32":
            out += struct.pack("<If", 6, val)
        elif kind == "bool":
            out += struct.pack("<IB", 7, 1 if val else 0)
        elif kind == "str":
            out += struct.pack("<I", 8) + gguf_str(val)
        elif kind == "strs":
            out += struct.pack("<IIQ", 9, 8, len(val)) + b"".join(gguf_str(s) for s in val)
        elif kind == "i32s":
            out += struct.pack("<IIQ", 9, 5, len(val)) + b"".join(struct.pack("<i", v) for v in val)
    data, infos = bytearray(), bytearray()
    for name, t, dt in tensors:
        while len(data) % 32:
            data += b"\0"
        dims = list(reversed(t.shape))  # GGUF lists the fastest dimension first
        infos += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", {"F32": 0, "F16": 1}[dt], len(data))
        data += tensor_bytes(t, dt)
    out += infos
    while len(out) % 32:
        out += b"\0"
    with open(path, "wb") as f:
        f.write(out + data)


def representable(t, dt):
    if dt == "F16":
        return t.to(torch.float16).to(torch.float64)
    if dt == "BF16":
        return t.to(torch.bfloat16).to(torch.float64)
    return t.to(torch.float32).to(torch.float64)


# ---- WordPiece (BERT basic tokenizer on lower-cased ASCII, greedy longest match) --------------

def wordpiece(text, vocab, max_len):
    words, cur = [], ""
    for ch in text.lower():
        if ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif not ch.isalnum():
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    ids = []
    for w in words:
        pieces, start = [], 0
        while start < len(w):
            end = len(w)
            while end > start:
                p = w[start:end] if start == 0 else "##" + w[start:end]
                if p in vocab:
                    break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[w[start:end] if start == 0 else "##" + w[start:end]])
            start = end
        ids += pieces
    if max_len is not None:
        ids = ids[: max_len - 2]  # truncation leaves room for [CLS] and [SEP]
    return [vocab["[CLS]"]] + ids + [vocab["[SEP]"]]


# ---- the encoder --------------------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def bert_forward(p, cfg, ids, types, mask=None):
    """ids, types (B,T); mask (B,T) 1 = real token. Returns the last hidden states (B,T,C)."""
    Bn, T = ids.shape
    C, NH, eps = cfg["C"], cfg["NH"], 1e-12
    HD = C // NH
    if mask is None:
        mask = torch.ones(Bn, T)
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][torch.arange(T)][None]
    x = x + p["embeddings.token_type_embeddings.weight"][types]
    x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    add = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float64).min  # padded keys get nothing
    for l in range(cfg["L"]):
        pre = f"encoder.layer.{l}."
        lin = lambda h, n: h @ p[pre + n + ".weight"].T + p[pre + n + ".bias"]
        q = lin(x, "attention.self.query").view(Bn, T, NH, HD).transpose(1, 2)
        k = lin(x, "attention.self.key").view(Bn, T, NH, HD).transpose(1, 2)
        v = lin(x, "attention.self.value").view(Bn, T, NH, HD).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + add, -1)
        y = (att @ v).transpose(1, 2).reshape(Bn, T, C)
        x = layer_norm(lin(y, "attention.output.dense") + x, p[pre + "attention.output.LayerNorm.weight"],
                       p[pre + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], eps)
    return x


def pool(hidden, cfg):
    """hidden (T,C) of one unpadded text -> the sentence embedding (sentence-transformers)."""
    e = hidden[0] if cfg["pooling"] == "cls" else hidden.mean(0)
    if cfg["normalize"]:
        e = e / torch.clamp(e.norm(), min=1e-12)
    return e


def make_params(cfg, gen):
    C, F, L, P = cfg["C"], cfg["F"], cfg["L"], cfg["P"]
    V = cfg["V"]
    rnd = lambda *shape, s=0.2: torch.randn(*shape, generator=gen) * s
    p = {
        "embeddings.word_embeddings.weight": rnd(V, C, s=0.5),
        "embeddings.position_embeddings.weight": rnd(P, C, s=0.3),
        "embeddings.token_type_embeddings.weight": rnd(2, C, s=0.3),
        "embeddings.LayerNorm.weight": 1 + rnd(C, s=0.1),
        "embeddings.LayerNorm.bias": rnd(C, s=0.1),
    }
    for l in range(L):
        pre = f"encoder.layer.{l}."
        for n, (o, i) in {"attention.self.query": (C, C), "attention.self.key": (C, C), "attention.self.value": (C, C),
                          "attention.output.dense": (C, C), "intermediate.dense": (F, C), "output.dense": (C, F)}.items():
            p[pre + n + ".weight"] = rnd(o, i, s=1.0 / math.sqrt(i))
            p[pre + n + ".bias"] = rnd(o, s=0.1)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            p[pre + n + ".weight"] = 1 + rnd(C, s=0.1)
            p[pre + n + ".bias"] = rnd(C, s=0.1)
    return {k: representable(v, cfg["dtype"]) for k, v in p.items()}


GGUF_NAMES = {
    "embeddings.word_embeddings.weight": "token_embd.weight",
    "embeddings.position_embeddings.weight": "position_embd.weight",
    "embeddings.token_type_embeddings.weight": "token_types.weight",
    "embeddings.LayerNorm.weight": "token_embd_norm.weight",
    "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    "attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm",
}


def gguf_name(hf):
    if hf in GGUF_NAMES:
        return GGUF_NAMES[hf]
    parts = hf.split(".")  # encoder.layer.N.<module>.(weight|bias)
    return f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def write_gguf(path, cfg, p, vocab_list):
    # llama.cpp's WPM vocabulary: "##x" -> "x", a word start "x" -> U+2581 "x", [SPECIAL] as is
    toks, types = [], []
    for t in vocab_list:
        if t.startswith("[") and t.endswith("]"):
            toks.append(t), types.append(3)
        elif t.startswith("##"):
            toks.append(t[2:]), types.append(1)
        else:
            toks.append("\u2581" + t), types.append(1)
    kvs = [("general.architecture", "str", "bert"), ("general.name", "str", "raftlm fixture"),
           ("bert.context_length", "u32", cfg["P"]), ("bert.embedding_length", "u32", cfg["C"]),
           ("bert.feed_forward_length", "u32", cfg["F"]), ("bert.block_count", "u32", cfg["L"]),
           ("bert.attention.head_count", "u32", cfg["NH"]), ("bert.attention.layer_norm_epsilon", "f32", 1e-12),
           ("bert.attention.causal", "bool", False), ("bert.pooling_type", "u32", 1 if cfg["pooling"] == "mean" else 2),
           ("tokenizer.ggml.model", "str", "bert"), ("tokenizer.ggml.tokens", "strs", toks),
           ("tokenizer.ggml.token_type", "i32s", types), ("tokenizer.ggml.token_type_count", "u32", 2),
           ("tokenizer.ggml.unknown_token_id", "u32", vocab_list.index("[UNK]")),
           ("tokenizer.ggml.cls_token_id", "u32", vocab_list.index("[CLS]")),
           ("tokenizer.ggml.seperator_token_id", "u32", vocab_list.index("[SEP]")),
           ("tokenizer.ggml.padding_token_id", "u32", vocab_list.index("[PAD]"))]
    # matrices as F16 (the fixture's values are F16-exact), norms and biases F32 as llama.cpp does
    tensors = [(gguf_name(k), v, "F16" if v.dim() == 2 and cfg["dtype"] == "F16" else "F32") for k, v in p.items()]
    gguf_write(path, kvs, tensors)


def main():
    with open(VOCAB_SRC) as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    vocab_list = [None] * len(vocab)
    for k, v in vocab.items():
        vocab_list[v] = k
    gen = torch.Generator().manual_seed(1234)
    for cfg in CONFIGS:
        cfg["V"] = len(vocab)
        d = os.path.join(OUT, cfg["name"])
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(os.path.join(d, "1_Pooling"))
        p = make_params(cfg, gen)
        hf = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": cfg["C"],
              "num_attention_heads": cfg["NH"], "num_hidden_layers": cfg["L"], "intermediate_size": cfg["F"],
              "max_position_embeddings": cfg["P"], "type_vocab_size": 2, "vocab_size": cfg["V"],
              "hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
              "pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(hf, f, indent=1)
        st_write(os.path.join(d, "model.safetensors"), [(cfg["prefix"] + k, v, cfg["dtype"]) for k, v in p.items()])
        t = dict(tok)
        if cfg["trunc"]:
            t["truncation"] = {"direction": "Right", "max_length": cfg["trunc"], "strategy": "LongestFirst", "stride": 0}
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(t, f, ensure_ascii=False)
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if cfg["normalize"]:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        with open(os.path.join(d, "modules.json"), "w") as f:
            json.dump(modules, f, indent=1)
        with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": cfg["C"], "pooling_mode_cls_token": cfg["pooling"] == "cls",
                       "pooling_mode_mean_tokens": cfg["pooling"] == "mean", "pooling_mode_max_tokens": False,
                       "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=1)
        if cfg["max_seq"]:
            with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
                json.dump({"max_seq_length": cfg["max_seq"], "do_lower_case": False}, f)
        max_len = cfg["max_seq"] or cfg["trunc"] or cfg["P"]
        ref = []
        for i, text in enumerate(TEXTS):
            ids = torch.tensor([wordpiece(text, vocab, max_len)])
            h = bert_forward(p, cfg, ids, torch.zeros_like(ids))[0]
            ref += [(f"ids.{i}", ids[0], "I32"), (f"hidden.{i}", h, "F32"), (f"pooled.{i}", pool(h, cfg), "F32")]
        # token types, and a padded batch through the mask as a self-check of the reference
        ids = torch.tensor([wordpiece(TEXTS[2], vocab, max_len)])
        types = (torch.arange(ids.shape[1]) >= ids.shape[1] // 2).long()[None]
        ref += [("typed.ids", ids[0], "I32"), ("typed.types", types[0], "I32"),
                ("typed.hidden", bert_forward(p, cfg, ids, types)[0], "F32")]
        rows = [wordpiece(s, vocab, max_len) for s in TEXTS]
        T = max(len(r) for r in rows)
        batch = torch.tensor([r + [0] * (T - len(r)) for r in rows])
        mask = torch.tensor([[1.0] * len(r) + [0.0] * (T - len(r)) for r in rows])
        hb = bert_forward(p, cfg, batch, torch.zeros_like(batch), mask)
        for i, r in enumerate(rows):
            alone = bert_forward(p, cfg, torch.tensor([r]), torch.zeros(1, len(r), dtype=torch.long))[0]
            assert (hb[i, : len(r)] - alone).abs().max() < 1e-9, "the mask must make padding invisible"
        st_write(os.path.join(d, "ref.safetensors"), ref)
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump({"texts": TEXTS, "pooling": cfg["pooling"], "normalize": cfg["normalize"], "max_len": max_len}, f,
                      indent=1)
        if cfg["gguf"]:
            write_gguf(os.path.join(d, "model.gguf"), cfg, p, vocab_list)
        print(cfg["name"], "written", sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fs in os.walk(d) for fn in fs),
              "bytes")


if __name__ == "__main__":
    main()
