#!/usr/bin/python3
"""ann_gen.py - generated vector sets for bench/ann.sh, with exact ground truth.

  ann_gen.py OUTDIR KIND N NQ [DIM] [SEED]

KIND
  embed   embedding-like: 384-d unit vectors with low intrinsic dimension. Points come from a
          mixture of 500 Gaussian topics in a 32-d latent space (topic sizes follow a Zipf law,
          spreads differ by topic), mapped to DIM dimensions by a random linear map with a
          decaying spectrum, plus 5% isotropic noise, then L2-normalised (cosine metric).
  hard    high intrinsic dimension: DIM-d vectors, 10 broad Gaussian clusters whose spread is
          close to full rank, compared with L2 (close to the worst case for graph indexes).
Queries are fresh draws from the same distribution (not base points). Ground truth: the 100
nearest base vectors by exact search (numpy, float64 distances in blocks).
Writes OUTDIR/base.fvecs, query.fvecs, gt.ivecs and meta (the metric).
"""
import os
import sys

import numpy as np


def write_vecs(path, a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = a.view(np.int32)
    out.tofile(path)


def embed(rng, n, dim):
    r, topics = 32, 500
    centers = rng.normal(size=(topics, r))
    w = 1.0 / np.arange(1, topics + 1) ** 0.8
    w /= w.sum()
    spread = rng.uniform(0.3, 0.8, size=topics)
    spectrum = 1.0 / np.sqrt(np.arange(1, r + 1))
    A = rng.normal(size=(r, dim)) * spectrum[:, None]

    def draw(m):
        t = rng.choice(topics, size=m, p=w)
        z = centers[t] + rng.normal(size=(m, r)) * spread[t, None]
        x = z @ A
        x += rng.normal(size=x.shape) * 0.05 * np.sqrt((x * x).mean())
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw, "cosine"


def hard(rng, n, dim):
    k = 10
    centers = rng.normal(size=(k, dim)) * 0.7
    scales = rng.uniform(0.6, 1.0, size=dim)

    def draw(m):
        t = rng.integers(0, k, size=m)
        return centers[t] + rng.normal(size=(m, dim)) * scales

    return draw, "l2"


def main():
    out, kind, n, nq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dim = int(sys.argv[5]) if len(sys.argv) > 5 else (384 if kind == "embed" else 128)
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    rng = np.random.default_rng(seed)
    draw, metric = {"embed": embed, "hard": hard}[kind](rng, n, dim)
    base = np.concatenate([draw(min(20000, n - i)) for i in range(0, n, 20000)]).astype(np.float32)
    query = draw(nq).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    write_vecs(os.path.join(out, "base.fvecs"), base, np.float32)
    write_vecs(os.path.join(out, "query.fvecs"), query, np.float32)
    k = 100
    b64 = base.astype(np.float64)
    bn = (b64 * b64).sum(1)
    gt = np.empty((nq, k), dtype=np.int32)
    for i in range(0, nq, 200):
        q = query[i:i + 200].astype(np.float64)
        if metric == "l2":
            d = bn[None, :] - 2 * q @ b64.T
        else:
            d = -(q @ b64.T)
        idx = np.argpartition(d, k, axis=1)[:, :k]
        dd = np.take_along_axis(d, idx, 1)
        gt[i:i + 200] = np.take_along_axis(idx, np.argsort(dd, axis=1, kind="stable"), 1)
    write_vecs(os.path.join(out, "gt.ivecs"), gt, np.int32)
    with open(os.path.join(out, "meta"), "w") as f:
        f.write(metric + "\n")
    print(f"{out}: {n} x {dim} {kind} ({metric}), {nq} queries")


if __name__ == "__main__":
    main()
