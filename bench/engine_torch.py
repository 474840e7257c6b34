#!/usr/bin/python3
"""engine_torch.py - the PyTorch side of `raftlm bench`: one training step (forward, backward,
AdamW) of a Llama model with SmolLM2-135M's shape and random weights, LoRA (r=16 on all linear
layers) or full fine-tuning, T=512, batch 1, float32 on the CPU, in tokens/s.

    /usr/bin/python3 bench/engine_torch.py --mode lora --threads 2 --steps 3
"""
import argparse
import math
import time
import resource

import torch
import torch.nn.functional as Fn

p = argparse.ArgumentParser()
p.add_argument("--mode", default="lora", choices=["lora", "full"])
p.add_argument("--seq", type=int, default=512)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--rank", type=int, default=16)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--bf16", action="store_true", help="autocast the forward to bfloat16 (CPU autocast, oneDNN)")
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)
C, F, L, NH, NKV, V, T = 576, 1536, 30, 9, 3, 49152, a.seq
HD = C // NH
torch.manual_seed(0)


class Lin(torch.nn.Module):
    def __init__(self, i, o, r):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(o, i) * 0.02)
        self.r = r
        if r:
            self.A = torch.nn.Parameter(torch.randn(r, i) / math.sqrt(i))
            self.B = torch.nn.Parameter(torch.full((o, r), 0.001))
            self.s = 2.0

    def forward(self, x):
        y = x @ self.w.T
        if self.r:
            y = y + self.s * ((x @ self.A.T) @ self.B.T)
        return y


class Block(torch.nn.Module):
    def __init__(self, r):
        super().__init__()
        self.n1 = torch.nn.Parameter(torch.ones(C))
        self.n2 = torch.nn.Parameter(torch.ones(C))
        self.q, self.k, self.v, self.o = Lin(C, NH * HD, r), Lin(C, NKV * HD, r), Lin(C, NKV * HD, r), Lin(NH * HD, C, r)
        self.g, self.u, self.d = Lin(C, F, r), Lin(C, F, r), Lin(F, C, r)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


class Model(torch.nn.Module):
    def __init__(self, r):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.blocks = torch.nn.ModuleList([Block(r) for _ in range(L)])
        self.nf = torch.nn.Parameter(torch.ones(C))
        inv = 1.0 / (100000.0 ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.arange(T).float()[:, None] * inv[None]
        self.cos = torch.cat((ang.cos(), ang.cos()), -1)
        self.sin = torch.cat((ang.sin(), ang.sin()), -1)
        self.mask = torch.full((T, T), float("-inf")).triu(1)

    def rope(self, x):
        h = HD // 2
        return x * self.cos + torch.cat((-x[..., h:], x[..., :h]), -1) * self.sin

    def forward(self, tok):
        x = self.emb[tok]
        for b in self.blocks:
            h = rms(x, b.n1)
            q = self.rope(b.q(h).view(T, NH, HD).transpose(0, 1))
            k = self.rope(b.k(h).view(T, NKV, HD).transpose(0, 1)).repeat_interleave(NH // NKV, 0)
            v = b.v(h).view(T, NKV, HD).transpose(0, 1).repeat_interleave(NH // NKV, 0)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + self.mask, -1)
            x = x + b.o((att @ v).transpose(0, 1).reshape(T, C))
            h = rms(x, b.n2)
            x = x + b.d(Fn.silu(b.g(h)) * b.u(h))
        return rms(x, self.nf) @ self.emb.T


lora = a.mode == "lora"
m = Model(a.rank if lora else 0)
if lora:
    params = [p for n, p in m.named_parameters() if n.endswith(".A") or n.endswith(".B")]
    for n, p in m.named_parameters():
        p.requires_grad_(n.endswith(".A") or n.endswith(".B"))
else:
    params = list(m.parameters())
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
tok = torch.tensor([(i * 7919 + 13) % V for i in range(T)])
tgt = torch.tensor([(i * 104729 + 5) % V for i in range(T)])
times = []
for s in range(a.steps + 1):
    t0 = time.time()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        logits = m(tok)
    loss = Fn.cross_entropy(logits.float(), tgt)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if s:
        times.append(time.time() - t0)
mean = sum(times) / len(times)
print(f"pytorch {torch.__version__}, mode {a.mode}, T={T}, threads {torch.get_num_threads()}{', bf16 autocast' if a.bf16 else ''}")
print(f"step: mean {mean:.3f} s, best {min(times):.3f} s -> {T / mean:.0f} tokens/s (loss {loss.item():.4f})")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
