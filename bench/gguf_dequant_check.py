#!/usr/bin/python3
"""gguf_dequant_check.py GGUF_PY_DIR QUANT.gguf F32.gguf

Checks that llama.cpp's own dequantizers (its gguf-py package, given by path; not part of this
repository) read a GGUF file written by `raftlm quantize` to the values raftlm reads: F32.gguf is
`raftlm convert QUANT.gguf F32.gguf --to gguf --type f32` (raftlm's dequantization written out).
Prints the largest difference per tensor type and exits 1 on any difference above 1e-6
relative to the tensor's largest value."""
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

q = GGUFReader(sys.argv[2])
f = {t.name: t for t in GGUFReader(sys.argv[3]).tensors}
worst = {}
bad = 0
for t in q.tensors:
    ours = np.asarray(f[t.name].data, dtype=np.float32).reshape(-1)
    theirs = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
    scale = max(float(np.abs(ours).max()), 1e-30)
    err = float(np.abs(ours - theirs).max()) / scale
    name = t.tensor_type.name
    worst[name] = max(worst.get(name, 0.0), err)
    bad += err > 1e-6
for name, err in sorted(worst.items()):
    print(f"{name}: largest difference {err:.2e} of the tensor's largest value")
print("same values" if not bad else f"{bad} tensors differ")
sys.exit(1 if bad else 0)
