#!/usr/bin/python3
"""bert_torch.py - sentence-encoder throughput in PyTorch, side by side with `raftlm bench embed`.

  bert_torch.py write DIR [SHAPE]   writes a random-weight HF folder of SHAPE (minilm: all-MiniLM-L6-v2,
                                    384 hidden, 6 layers, 12 heads, 1536 ffn, 30522 vocab; bge-base:
                                    768/12/12/3072) for both engines
  bert_torch.py time DIR B T N THREADS REPEAT
                                    times N forwards of B x T random ids (float32, no_grad, the
                                    encoder written out below, the same math as transformers' BertModel)
bench/bert.sh runs both, alternating. Random weights: speed does not depend on the values.
"""
import json
import math
import os
import struct
import sys
import time

import torch

SHAPES = {"minilm": (384, 6, 12, 1536), "bge-base": (768, 12, 12, 3072)}


def write(d, shape):
    C, L, NH, F = SHAPES[shape]
    V, P = 30522, 512
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    t = {"embeddings.word_embeddings.weight": (V, C), "embeddings.position_embeddings.weight": (P, C),
         "embeddings.token_type_embeddings.weight": (2, C), "embeddings.LayerNorm.weight": (C,), "embeddings.LayerNorm.bias": (C,)}
    for l in range(L):
        p = f"encoder.layer.{l}."
        for n, s in {"attention.self.query": (C, C), "attention.self.key": (C, C), "attention.self.value": (C, C),
                     "attention.output.dense": (C, C), "intermediate.dense": (F, C), "output.dense": (C, F)}.items():
            t[p + n + ".weight"], t[p + n + ".bias"] = s, (s[0],)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + n + ".weight"], t[p + n + ".bias"] = (C,), (C,)
    header, off, blobs = {}, 0, []
    for name, s in t.items():
        x = torch.randn(*s, generator=g, dtype=torch.float32) * 0.05
        if name.endswith("LayerNorm.weight"):
            x = x + 1
        b = x.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(s), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": NH,
                   "intermediate_size": F, "vocab_size": V, "max_position_embeddings": P, "type_vocab_size": 2,
                   "hidden_act": "gelu", "layer_norm_eps": 1e-12}, f)


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    p = {}
    for k, v in hdr.items():
        a, b = v["data_offsets"]
        p[k] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).view(*v["shape"])
    return cfg, p


def forward(p, cfg, ids):
    B, T = ids.shape
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    HD = C // NH
    ln = torch.nn.functional.layer_norm
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:T][None] + \
        p["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, (C,), p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], 1e-12)
    lin = torch.nn.functional.linear
    for l in range(cfg["num_hidden_layers"]):
        q_ = lambda n: p[f"encoder.layer.{l}.{n}"]
        q = lin(x, q_("attention.self.query.weight"), q_("attention.self.query.bias")).view(B, T, NH, HD).transpose(1, 2)
        k = lin(x, q_("attention.self.key.weight"), q_("attention.self.key.bias")).view(B, T, NH, HD).transpose(1, 2)
        v = lin(x, q_("attention.self.value.weight"), q_("attention.self.value.bias")).view(B, T, NH, HD).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD), -1) @ v
        a = a.transpose(1, 2).reshape(B, T, C)
        x = ln(lin(a, q_("attention.output.dense.weight"), q_("attention.output.dense.bias")) + x, (C,),
               q_("attention.output.LayerNorm.weight"), q_("attention.output.LayerNorm.bias"), 1e-12)
        h = torch.nn.functional.gelu(lin(x, q_("intermediate.dense.weight"), q_("intermediate.dense.bias")))
        x = ln(lin(h, q_("output.dense.weight"), q_("output.dense.bias")) + x, (C,), q_("output.LayerNorm.weight"),
               q_("output.LayerNorm.bias"), 1e-12)
    return x


def time_it(d, B, T, N, threads, repeat):
    torch.set_num_threads(threads)
    cfg, p = load(d)
    ids = torch.randint(0, cfg["vocab_size"], (B, T))
    best = 1e300
    with torch.no_grad():
        forward(p, cfg, ids)
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(N):
                forward(p, cfg, ids)
            best = min(best, time.perf_counter() - t0)
    print(f"pytorch {torch.__version__} encoder: {N} batches of {B} x {T} on {threads} threads: {N * B / best:.1f} texts/s "
          f"({best / N:.3f} s per batch)")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "minilm")
    else:
        time_it(sys.argv[2], *(int(a) for a in sys.argv[3:8]))
