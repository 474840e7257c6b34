#!/usr/bin/python3
"""ann_peers.py - the same measurement as `raftlm bench ann`, for hnswlib and FAISS's HNSW.

  ann_peers.py hnswlib|faiss DATA_DIR --M 16 --ef-construction 200 --ef 10,20,40 --threads 2
               [-k 10] [--repeat 3] [--metric l2|ip|cosine]

DATA_DIR holds base.fvecs, query.fvecs, gt.ivecs (bench/ann_gen.py). Builds with --threads
threads, then for each ef times single-thread search of all queries (one batch call, so the
per-query loop runs in C++, as raftlm's does; best of --repeat) and prints one JSON object in
the shape of `raftlm bench ann --json`. Memory: growth of the resident set during the build.
"""
import argparse
import json
import os
import time

import numpy as np


def read_vecs(path, dtype):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["hnswlib", "faiss"])
    ap.add_argument("data")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,160")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--metric", default=None)
    a = ap.parse_args()
    base = read_vecs(os.path.join(a.data, "base.fvecs"), np.float32)
    query = read_vecs(os.path.join(a.data, "query.fvecs"), np.float32)
    gt = read_vecs(os.path.join(a.data, "gt.ivecs"), np.int32)[:, : a.k]
    metric = a.metric or open(os.path.join(a.data, "meta")).read().strip()
    n, d = base.shape
    efs = [int(x) for x in a.ef.split(",")]
    r0 = rss()
    t0 = time.perf_counter()
    if a.engine == "hnswlib":
        import hnswlib

        idx = hnswlib.Index(space={"l2": "l2", "ip": "ip", "cosine": "cosine"}[metric], dim=d)
        idx.init_index(max_elements=n, M=a.M, ef_construction=a.ef_construction, random_seed=42)
        idx.set_num_threads(a.threads)
        idx.add_items(base, np.arange(n), num_threads=a.threads)
        build = time.perf_counter() - t0
        idx.set_num_threads(1)

        def search(ef):
            idx.set_ef(ef)
            labels, _ = idx.knn_query(query, k=a.k, num_threads=1)
            return labels
    else:
        import faiss

        faiss.omp_set_num_threads(a.threads)
        if metric == "l2":
            idx = faiss.IndexHNSWFlat(d, a.M)
        else:
            idx = faiss.IndexHNSWFlat(d, a.M, faiss.METRIC_INNER_PRODUCT)
        if metric == "cosine":
            base = base / np.linalg.norm(base, axis=1, keepdims=True)
            query = query / np.linalg.norm(query, axis=1, keepdims=True)
        idx.hnsw.efConstruction = a.ef_construction
        idx.add(np.ascontiguousarray(base, dtype=np.float32))
        build = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        q32 = np.ascontiguousarray(query, dtype=np.float32)

        def search(ef):
            idx.hnsw.efSearch = ef
            _, labels = idx.search(q32, a.k)
            return labels
    r1 = rss()
    runs = []
    for ef in efs:
        best = best_cpu = 1e300
        for _ in range(a.repeat):
            c0 = time.process_time()
            t0 = time.perf_counter()
            labels = search(ef)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        found = sum(len(set(labels[i].tolist()) & set(gt[i].tolist())) for i in range(len(query)))
        runs.append({"ef": ef, "recall": found / (len(query) * a.k), "qps": len(query) / best,
                     "qps_cpu": len(query) / best_cpu})
    print(json.dumps({"engine": a.engine, "n_base": n, "n_query": len(query), "dim": int(d), "metric": metric,
                      "M": a.M, "ef_construction": a.ef_construction, "k": a.k, "threads": a.threads,
                      "build_s": build, "rss_delta_bytes": r1 - r0, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
