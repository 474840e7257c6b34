#!/usr/bin/python3
"""make_engine_fixtures.py - writes the PyTorch reference fixtures of the transformer engine.

For a few tiny random Llama / Qwen2 configs this script builds the model as a plain PyTorch
module (written out below, no transformers library), runs a batch through it in float64 and
writes, per config, a Hugging Face style folder under tests/fixtures/engine/<name>/:

  config.json          the HF config (model_type llama or qwen2)
  model.safetensors    the weights (F32, F16 or BF16; values are exactly representable)
  ref.safetensors      inputs (tokens, targets, pos, seg), logits, loss, grad.<tensor name> for
                       every parameter (full fine-tuning), and for some configs:
                       lora.* and lgrad.* (a LoRA adapter with PEFT names and its gradients),
                       adamw.losses (11 losses over 10 AdamW steps of full fine-tuning),
                       lora_adamw.losses (the same for LoRA training)

The C tests (tests/test_engine.c) load the folder with the real loader and compare.
Run with Debian's python3-torch:  /usr/bin/python3 scripts/make_engine_fixtures.py
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "engine")

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ---- safetensors (the format is simple enough to write by hand) ----------------------------

def st_write(path, tensors):
    """tensors: list of (name, torch tensor, dtype string F32/F16/BF16/I32)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t, dt in tensors:
        t = t.detach().contiguous()
        if dt == "F32":
            b = t.to(torch.float32).numpy().tobytes()
        elif dt == "F16":
            b = t.to(torch.float16).numpy().tobytes()
        elif dt == "BF16":
            b = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dt == "I32":
            b = t.to(torch.int32).numpy().tobytes()
        else:
            raise ValueError(dt)
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


def representable(t, dt):
    """Rounds t to the values the storage dtype can hold, so that the file is exact."""
    if dt == "F16":
        return t.to(torch.float16).to(torch.float64)
    if dt == "BF16":
        return t.to(torch.bfloat16).to(torch.float64)
    return t.to(torch.float32).to(torch.float64)


# ---- the model ----------------------------------------------------------------------------

def inv_freq_of(cfg):
    hd = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs["rope_type"] == "linear":
        inv = inv / rs["factor"]
    elif rs and rs["rope_type"] == "llama3":
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Llama(torch.nn.Module):
    """A plain Llama / Qwen2 decoder with HF parameter names and an optional LoRA."""

    def __init__(self, cfg, params):
        super().__init__()
        self.cfg = cfg
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.clone()) for k, v in params.items()})
        self.lora = None

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def linear(self, x, l, mod, kind):
        pre = f"model.layers.{l}.{kind}.{mod}"
        y = x @ self.w(pre + ".weight").T
        if self.cfg["qkv_bias"] and mod in ("q_proj", "k_proj", "v_proj"):
            y = y + self.w(pre + ".bias")
        if self.lora is not None and mod in self.lora["targets"]:
            A = self.lora["p"][f"{l}.{mod}.A"]
            B = self.lora["p"][f"{l}.{mod}.B"]
            y = y + self.lora["scale"] * ((x @ A.T) @ B.T)
        return y

    def forward(self, tokens, pos, seg):
        c = self.cfg
        Bn, T = tokens.shape
        NH, NKV, HD = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        eps = c["rms_norm_eps"]
        x = self.w("model.embed_tokens.weight")[tokens]
        ang = pos[..., None].to(torch.float64) * inv_freq_of(c)[None, None, :]
        cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None]  # (B,1,T,HD)
        sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        mask = causal[None] & (seg[:, :, None] == seg[:, None, :])  # (B,T,T)
        for l in range(c["num_hidden_layers"]):
            h = rms_norm(x, self.w(f"model.layers.{l}.input_layernorm.weight"), eps)
            q = self.linear(h, l, "q_proj", "self_attn").view(Bn, T, NH, HD).transpose(1, 2)
            k = self.linear(h, l, "k_proj", "self_attn").view(Bn, T, NKV, HD).transpose(1, 2)
            v = self.linear(h, l, "v_proj", "self_attn").view(Bn, T, NKV, HD).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(NH // NKV, dim=1)
            v = v.repeat_interleave(NH // NKV, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
            s = s.masked_fill(~mask[:, None], float("-inf"))
            y = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(Bn, T, NH * HD)
            x = x + self.linear(y, l, "o_proj", "self_attn")
            h = rms_norm(x, self.w(f"model.layers.{l}.post_attention_layernorm.weight"), eps)
            g = self.linear(h, l, "gate_proj", "mlp")
            u = self.linear(h, l, "up_proj", "mlp")
            x = x + self.linear(torch.nn.functional.silu(g) * u, l, "down_proj", "mlp")
        x = rms_norm(x, self.w("model.norm.weight"), eps)
        head = self.w("model.embed_tokens.weight") if c["tie_word_embeddings"] else self.w("lm_head.weight")
        return x @ head.T


def loss_of(logits, targets):
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)


# ---- configs ------------------------------------------------------------------------------

def hf_config(name, arch, C, NH, NKV, F, L, V, tied, rope_scaling=None):
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
        "model_type": arch, "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
        "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": tied, "hidden_act": "silu", "rope_scaling": rope_scaling,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    if arch == "qwen2":
        cfg["use_sliding_window"] = False
    return cfg


def make_params(cfg, gen, dt):
    C, F, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    NH, NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HD = C // NH
    p = {}

    def mat(o, i):
        return representable(torch.randn(o, i, generator=gen) / math.sqrt(i), dt)

    def vec(n, base, sd):
        return representable(base + sd * torch.randn(n, generator=gen), dt)

    p["model.embed_tokens.weight"] = representable(0.3 * torch.randn(V, C, generator=gen), dt)
    for l in range(L):
        pre = f"model.layers.{l}."
        p[pre + "input_layernorm.weight"] = vec(C, 1.0, 0.1)
        p[pre + "self_attn.q_proj.weight"] = mat(NH * HD, C)
        p[pre + "self_attn.k_proj.weight"] = mat(NKV * HD, C)
        p[pre + "self_attn.v_proj.weight"] = mat(NKV * HD, C)
        if cfg["model_type"] == "qwen2":
            p[pre + "self_attn.q_proj.bias"] = vec(NH * HD, 0.0, 0.2)
            p[pre + "self_attn.k_proj.bias"] = vec(NKV * HD, 0.0, 0.2)
            p[pre + "self_attn.v_proj.bias"] = vec(NKV * HD, 0.0, 0.2)
        p[pre + "self_attn.o_proj.weight"] = mat(C, NH * HD)
        p[pre + "post_attention_layernorm.weight"] = vec(C, 1.0, 0.1)
        p[pre + "mlp.gate_proj.weight"] = mat(F, C)
        p[pre + "mlp.up_proj.weight"] = mat(F, C)
        p[pre + "mlp.down_proj.weight"] = mat(C, F)
    p["model.norm.weight"] = vec(C, 1.0, 0.1)
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = mat(V, C)
    return p


def make_batch(gen, B, T, V, packed):
    tokens = torch.randint(3, V, (B, T), generator=gen)
    pos = torch.arange(T).repeat(B, 1)
    seg = torch.zeros(B, T, dtype=torch.long)
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = tokens[:, 1:]
    targets[:, :2] = -100  # a masked prompt
    if packed:  # two samples in one row: positions restart, attention and targets stop at the seam
        cut = T // 2 - 1
        seg[:, cut:] = 1
        pos[:, cut:] = torch.arange(T - cut)
        targets[:, cut - 1] = -100
        targets[:, cut:cut + 1] = -100
    return tokens, targets, pos, seg


def adamw_run(model, params, tokens, targets, pos, seg, steps=10, lr=1e-2, wd=0.1, clip=1.0):
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() != 2]
    groups = [{"params": decay, "weight_decay": wd}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_of(model(tokens, pos, seg), targets)
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
    with torch.no_grad():
        losses.append(loss_of(model(tokens, pos, seg), targets).item())
    return torch.tensor(losses)


def build(name, cfg, dt, B=2, T=8, packed=False, lora=None, adamw=False, seed=0, pos_offset=0):
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(cfg)
    cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    internal = dict(cfg, qkv_bias=cfg["model_type"] == "qwen2")
    params = make_params(cfg, gen, dt)
    tokens, targets, pos, seg = make_batch(gen, B, T, cfg["vocab_size"], packed)
    pos = pos + pos_offset  # positions far from 0 exercise every frequency band of the scaling
    model = Llama(internal, params)
    logits = model(tokens, pos, seg)
    loss = loss_of(logits, targets)
    loss.backward()

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    hf = {k: v for k, v in cfg.items() if k != "head_dim"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    st_write(os.path.join(d, "model.safetensors"), [(k, v, dt) for k, v in params.items()])
    ref = [("tokens", tokens, "I32"), ("targets", targets, "I32"), ("pos", pos, "I32"), ("seg", seg, "I32"),
           ("logits", logits, "F32"), ("loss", loss.reshape(()), "F32")]
    for k in params:
        ref.append(("grad." + k, model.w(k).grad, "F32"))
    if packed:  # the same two samples run separately: the sum of their token losses
        total = 0.0
        for s in (0, 1):
            sel = seg[0] == s
            lg = model(tokens[:, sel], pos[:, sel], seg[:, sel])
            total += torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[:, sel].reshape(-1),
                                                       ignore_index=-100, reduction="sum").item()
        ref.append(("unpacked_loss_sum", torch.tensor(total), "F32"))
    if adamw:
        m2 = Llama(internal, params)
        ref.append(("adamw.losses", adamw_run(m2, list(m2.p.values()), tokens, targets, pos, seg), "F32"))
    if lora:
        r, alpha, targets_m = lora["r"], lora["alpha"], lora["targets"]
        lp = {}
        C, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        QD, KD = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
        dims = {"q_proj": (C, QD), "k_proj": (C, KD), "v_proj": (C, KD), "o_proj": (QD, C),
                "gate_proj": (C, F), "up_proj": (C, F), "down_proj": (F, C)}
        for l in range(L):
            for mname in targets_m:
                i, o = dims[mname]
                lp[f"{l}.{mname}.A"] = torch.nn.Parameter(representable(torch.randn(r, i, generator=gen) / math.sqrt(i), "F32"))
                # B is zero in PEFT's init; random here so that every gradient is non-trivial
                lp[f"{l}.{mname}.B"] = torch.nn.Parameter(representable(0.3 * torch.randn(o, r, generator=gen), "F32"))
        m3 = Llama(internal, params)
        for p in m3.p.values():
            p.requires_grad_(False)
        m3.lora = {"p": lp, "targets": targets_m, "scale": alpha / r}
        ll = loss_of(m3(tokens, pos, seg), targets)
        ll.backward()
        ref.append(("lora.loss", ll.reshape(()), "F32"))
        ad = os.path.join(d, "lora")
        os.makedirs(ad, exist_ok=True)

        def peft(key):
            l, mname, ab = key.split(".")
            kind = "self_attn" if mname in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            return f"base_model.model.model.layers.{l}.{kind}.{mname}.lora_{ab}.weight"

        st_write(os.path.join(ad, "adapter_model.safetensors"), [(peft(k), v, "F32") for k, v in lp.items()])
        with open(os.path.join(ad, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                       "lora_dropout": 0.0, "target_modules": targets_m, "use_rslora": False, "bias": "none",
                       "fan_in_fan_out": False, "base_model_name_or_path": name}, f, indent=2)
        for k, v in lp.items():
            ref.append(("lgrad." + peft(k), v.grad, "F32"))
        if adamw:
            lp2 = {k: torch.nn.Parameter(v.detach().clone()) for k, v in lp.items()}
            m4 = Llama(internal, params)
            for p in m4.p.values():
                p.requires_grad_(False)
            m4.lora = {"p": lp2, "targets": targets_m, "scale": alpha / r}
            ref.append(("lora_adamw.losses", adamw_run(m4, list(lp2.values()), tokens, targets, pos, seg), "F32"))
    st_write(os.path.join(d, "ref.safetensors"), ref)
    print(f"{name}: loss {loss.item():.6f}")


# ---- ggml block formats: random blocks and their values, computed block-wise from the format ----

def f16_bytes(x):
    return torch.tensor([x], dtype=torch.float16).view(torch.uint8)


def kquant_fixture(gen):
    """Random Q4_0, Q8_0, Q4_K and Q6_K blocks (valid f16 scales) and their dequantized values,
    computed with whole-tensor reshapes (the formulation of llama.cpp's gguf-py) rather than the
    per-element loops of the C code."""
    out = []
    nb = 3

    def rnd_bytes(n):
        return torch.randint(0, 256, (nb, n), generator=gen, dtype=torch.int64).to(torch.uint8)

    def scales(lo, hi):
        return [f16_bytes(float(torch.empty(1).uniform_(lo, hi, generator=gen))) for _ in range(nb)]

    # Q8_0: d, 32 x int8
    d = torch.stack(scales(0.001, 0.1))
    qs = rnd_bytes(32)
    blocks = torch.cat([d, qs], 1)
    vals = d.view(torch.float16).double() * qs.view(torch.int8).double()
    out += [("q8_0.bytes", blocks.reshape(-1), "I32"), ("q8_0.values", vals.reshape(-1), "F32")]
    # Q4_0: d, 16 bytes: low nibbles first half, high nibbles second half, minus 8
    d = torch.stack(scales(0.001, 0.1))
    qs = rnd_bytes(16)
    q = torch.cat([(qs & 0xF), (qs >> 4)], 1).double() - 8
    out += [("q4_0.bytes", torch.cat([d, qs], 1).reshape(-1), "I32"), ("q4_0.values", (d.view(torch.float16).double() * q).reshape(-1), "F32")]
    # Q4_K: d, dmin, 12 scale bytes, 128 nibble bytes
    d, dmin, sc, qs = torch.stack(scales(0.001, 0.05)), torch.stack(scales(0.001, 0.05)), rnd_bytes(12), rnd_bytes(128)
    sc3 = sc.reshape(nb, 3, 4).long()
    dd, mm, md = sc3[:, 0], sc3[:, 1], sc3[:, 2]
    scale = torch.cat([dd & 0x3F, (md & 0x0F) | ((dd >> 2) & 0x30)], 1).double()  # (nb, 8)
    mins = torch.cat([mm & 0x3F, (md >> 4) | ((mm >> 2) & 0x30)], 1).double()
    q = qs.reshape(nb, 4, 1, 32).long() >> torch.tensor([0, 4]).reshape(1, 1, 2, 1)
    q = (q & 0xF).reshape(nb, 8, 32).double()
    vals = d.view(torch.float16).double().reshape(nb, 1, 1) * scale.reshape(nb, 8, 1) * q - \
        dmin.view(torch.float16).double().reshape(nb, 1, 1) * mins.reshape(nb, 8, 1)
    out += [("q4_k.bytes", torch.cat([d, dmin, sc, qs], 1).reshape(-1), "I32"), ("q4_k.values", vals.reshape(-1), "F32")]
    # Q6_K: ql 128, qh 64, 16 int8 scales, d
    ql, qh, sc, d = rnd_bytes(128), rnd_bytes(64), rnd_bytes(16), torch.stack(scales(0.001, 0.05))
    lo = (ql.reshape(nb, 2, 1, 64).long() >> torch.tensor([0, 4]).reshape(1, 1, 2, 1)) & 0xF
    lo = lo.reshape(nb, 2, 4, 32)  # per half: (low nibbles of 0..31, 32..63, high of 0..31, 32..63)
    hi = (qh.reshape(nb, 2, 1, 32).long() >> torch.tensor([0, 2, 4, 6]).reshape(1, 1, 4, 1)) & 3
    q = (lo | (hi << 4)) - 32  # (nb, 2, 4, 32) -> 256 values in order
    q = q.reshape(nb, 16, 16).double()
    vals = d.view(torch.float16).double().reshape(nb, 1, 1) * sc.view(torch.int8).double().reshape(nb, 16, 1) * q
    out += [("q6_k.bytes", torch.cat([ql, qh, sc, d], 1).reshape(-1), "I32"), ("q6_k.values", vals.reshape(-1), "F32")]
    st_write(os.path.join(OUT, "ggml_blocks.safetensors"), out)
    print("ggml_blocks: Q8_0, Q4_0, Q4_K, Q6_K")


def main():
    kquant_fixture(torch.Generator().manual_seed(9))
    build("gqa_tied", hf_config("gqa_tied", "llama", 32, 4, 2, 40, 2, 64, True), "BF16", adamw=True,
          lora={"r": 4, "alpha": 8, "targets": MODULES}, seed=1)
    build("mha_untied", hf_config("mha_untied", "llama", 32, 4, 4, 40, 2, 64, False), "F16", seed=2)
    build("qwen2_bias", hf_config("qwen2_bias", "qwen2", 32, 4, 2, 40, 2, 64, True), "BF16", seed=3,
          lora={"r": 2, "alpha": 16, "targets": ["q_proj", "v_proj"]})
    build("llama3_rope", hf_config("llama3_rope", "llama", 32, 4, 2, 40, 2, 64, False,
                                   {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), "F32", seed=4,
          pos_offset=40)
    build("packed", hf_config("packed", "llama", 32, 4, 2, 40, 2, 64, True), "BF16", B=1, T=16, packed=True, seed=5)


if __name__ == "__main__":
    main()
