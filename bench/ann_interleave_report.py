#!/usr/bin/python3
"""ann_interleave_report.py - the summary of bench/ann_interleave.sh: each engine's best run per
ef over the interleaved rounds, queries per CPU-second at recall 0.95 / 0.99 (log-linear
interpolation on each curve) and ratios to hnswlib -march=native.
  ann_interleave_report.py WORK_DIR DATA_DIR ROUNDS"""
import collections
import json
import math
import sys

import json, sys, collections
work, d, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
best = collections.defaultdict(dict)
for line in open(f"{work}/runs.jsonl"):
    eng, js = line.split(" ", 1)
    r = json.loads(js)
    b = best[eng].setdefault(r["ef"], {"recall": r["recall"], "qps": 0, "qps_cpu": 0})
    b["qps"] = max(b["qps"], r["qps"]); b["qps_cpu"] = max(b["qps_cpu"], r["qps_cpu"])
builds = {e: json.load(open(f"{work}/build-{e}.json")) for e in ("raftlm", "raftlm_int8", "hnswlib_native")}
names = {"raftlm": "raftlm (f32)", "raftlm_int8": "raftlm (int8+rescore)", "hnswlib_native": "hnswlib 0.6.2 -march=native"}
efs = sorted(best["raftlm"])
print(f"\n{d}: best of {rounds} interleaved rounds; cells: recall@10 / queries per CPU-second (wall)\n")
print("| engine | build s | memory MB | " + " | ".join(f"ef {e}" for e in efs) + " |")
print("|---|---|---|" + "---|" * len(efs))
for e in ("raftlm", "raftlm_int8", "hnswlib_native"):
    b = builds[e]
    cells = " | ".join(f"{best[e][x]['recall']:.4f} / {best[e][x]['qps_cpu']:.0f} ({best[e][x]['qps']:.0f})" for x in efs)
    print(f"| {names[e]} | {b['build_s']:.1f} | {b['rss_delta_bytes'] / 1e6:.0f} | {cells} |")
def at(e, t):
    pts = [(best[e][x]["recall"], best[e][x]["qps_cpu"]) for x in efs]
    if pts[0][0] >= t:
        return pts[0][1]
    for (ra, qa), (rb, qb) in zip(pts, pts[1:]):
        if ra < t <= rb:
            return math.exp(math.log(qa) + (t - ra) / (rb - ra) * (math.log(qb) - math.log(qa)))
    return None
print("\n| queries per CPU-second | at recall 0.95 | vs hnswlib | at recall 0.99 | vs hnswlib |")
print("|---|---|---|---|---|")
for e in ("raftlm", "raftlm_int8", "hnswlib_native"):
    row = [names[e]]
    for t in (0.95, 0.99):
        q, h = at(e, t), at("hnswlib_native", t)
        row += [f"{q:.0f}" if q else "not reached", f"{q / h:.2f}x" if q and h else "-"]
    print("| " + " | ".join(row) + " |")
print("\n| ratio to hnswlib (CPU) | " + " | ".join(f"ef {e}" for e in efs) + " |")
print("|---|" + "---|" * len(efs))
for e in ("raftlm", "raftlm_int8"):
    print(f"| {names[e]} | " + " | ".join(f"{best[e][x]['qps_cpu'] / best['hnswlib_native'][x]['qps_cpu']:.2f}x" for x in efs) + " |")
