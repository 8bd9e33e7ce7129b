#!/usr/bin/env python3
"""Recall@10 vs single-thread QPS, one line per engine, from a results .jsonl.
Usage: plot.py RESULTS.jsonl OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(jsonl, png):
    by = {}
    for line in open(jsonl):
        if line.strip():
            r = json.loads(line)
            by[(r["peer"], r["threads"])] = r
    fig, ax = plt.subplots(figsize=(8, 5))
    for (peer, threads), r in sorted(by.items()):
        pts = sorted((s["recall@10"], s["qps_single"]) for s in r["search"])
        if not pts:
            continue
        style = "-o" if peer.startswith("ciphervec") else "--x"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{peer} ({threads}t)")
    first = next(iter(by.values()))
    ax.set_title(f"{first['dataset']}: n={first['n_base']:,} d={first['dim']}, one thread, k=10")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (one query per call)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
