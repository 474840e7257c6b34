#!/usr/bin/python3
"""ann_report.py - Markdown tables from bench/ann.sh's JSON results.

  ann_report.py RESULTS_DIR SET...

For each set: per engine, build time, memory and the recall/QPS curve; then queries/s at
recall@10 = 0.95 and 0.99 (interpolated on each engine's curve, see at()), and the ratio to
hnswlib (the -march=native build when it ran). Each engine's
best round (highest queries/s per ef, shortest build) is used.
"""
import glob
import math
import json
import os
import sys

ENGINES = ["raftlm", "raftlm_int8", "hnswlib_native", "hnswlib", "faiss"]
NAMES = {"raftlm": "raftlm (f32)", "raftlm_int8": "raftlm (int8+rescore)",
         "hnswlib_native": "hnswlib 0.6.2, -march=native", "hnswlib": "hnswlib 0.6.2 (Debian python3-hnswlib)",
         "faiss": "FAISS 1.7.3 HNSWFlat"}


def load(d, s, e):
    rs = []
    for p in sorted(glob.glob(os.path.join(d, f"{s}-{e}-*.json"))):
        try:
            rs.append(json.load(open(p)))
        except ValueError:  # a run still going, or one that failed
            print(f"(skipping {p}: not complete JSON)", file=sys.stderr)
    if not rs:
        return None
    best = dict(rs[0])
    best["build_s"] = min(r["build_s"] for r in rs)
    best["rounds"] = len(rs)
    runs = []
    for i, run in enumerate(rs[0]["runs"]):
        runs.append({"ef": run["ef"], "recall": run["recall"],
                     "qps": max(r["runs"][i]["qps"] for r in rs),
                     "qps_cpu": max(r["runs"][i].get("qps_cpu", 0) for r in rs)})
    best["runs"] = runs
    return best


def at(r, target, key):
    """Queries/s at exactly recall `target`: log-linear interpolation between the two ef points
    around it on the engine's recall/QPS curve (None when the curve never reaches it; the first
    point's QPS, marked, when even the smallest ef is above it)."""
    runs = r["runs"]
    if runs[0]["recall"] >= target:
        return runs[0][key], f"ef {runs[0]['ef']}, recall {runs[0]['recall']:.4f}"
    for a, b in zip(runs, runs[1:]):
        if a["recall"] < target <= b["recall"] and a[key] > 0 and b[key] > 0:
            f = (target - a["recall"]) / (b["recall"] - a["recall"])
            q = math.exp(math.log(a[key]) + f * (math.log(b[key]) - math.log(a[key])))
            return q, f"ef {a['ef']}-{b['ef']}"
    return None, None


def main():
    d, sets = sys.argv[1], sys.argv[2:]
    for s in sets:
        res = {e: load(d, s, e) for e in ENGINES}
        res = {e: r for e, r in res.items() if r}
        if not res:
            continue
        any_r = next(iter(res.values()))
        print(f"\n#### {s}: {any_r['n_base']} x {any_r['dim']}, {any_r['metric']}, {any_r['n_query']} queries, "
              f"M {any_r['M']}, ef_construction {any_r['ef_construction']}, build threads {any_r['threads']}, "
              f"best of {any_r['rounds']} round(s)\n")
        print("| engine | build s | memory MB | " + " | ".join(f"ef {x['ef']}" for x in any_r["runs"]) + " |")
        print("|---|---|---|" + "---|" * len(any_r["runs"]))
        for e, r in res.items():
            mem = r.get("rss_delta_bytes", 0) / 1e6
            cells = " | ".join(f"{x['recall']:.4f} / {x['qps']:.0f}" for x in r["runs"])
            print(f"| {NAMES[e]} | {r['build_s']:.1f} | {mem:.0f} | {cells} |")
        print("\n(cells: recall@10 / single-thread queries per second, wall clock; memory: resident-set growth "
              "during the build)\n")
        for key, label in (("qps", "wall"), ("qps_cpu", "CPU")):
            ref = "hnswlib_native" if "hnswlib_native" in res else "hnswlib"
            print(f"| queries/s ({label}) | at recall 0.95 | vs {NAMES.get(ref)} | at recall 0.99 | vs {NAMES.get(ref)} |")
            print("|---|---|---|---|---|")
            base95, _ = at(res[ref], 0.95, key) if ref in res else (None, None)
            base99, _ = at(res[ref], 0.99, key) if ref in res else (None, None)
            for e, r in res.items():
                row = [NAMES[e]]
                for t, b in ((0.95, base95), (0.99, base99)):
                    q, where = at(r, t, key)
                    row.append(f"{q:.0f} ({where})" if q else "not reached")
                    row.append(f"{q / b:.2f}x" if q and b else "-")
                print("| " + " | ".join(row) + " |")
            print()


if __name__ == "__main__":
    main()
