#!/usr/bin/env python3
"""Cost against size, from a scale table (bench/scale.sh's bench/results/scale-*.md): build
time, peak RSS, open time and one-query-per-call QPS at the recall target, ciphervec
against FAISS, on log-log axes (a line steeper than its neighbour's grows faster).
Usage: plot_scale.py SCALE.md OUT.png [TARGET (0.95)]"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    """The table rows of a markdown file, as lists of cell strings."""
    for line in open(path):
        if line.startswith("| ") and not line.startswith("| n ") and "---" not in line:
            yield [c.strip() for c in line.strip().strip("|").split("|")]


def number(text):
    """The first number in a cell ('454', '15.20 / not measured' -> 15.2), or None."""
    m = re.search(r"[\d.]+", text.replace(",", ""))
    return float(m.group()) if m else None


def main(table, png, target="0.95"):
    size = {}   # (engine, measure) -> [(n, value)]
    for r in rows(table):
        n = number(r[0])
        engine = "ciphervec" if r[1].startswith("ciphervec") else "FAISS" if "FAISS" in r[1] else None
        if len(r) == 7 and engine:
            size.setdefault((engine, "build s"), []).append((n, number(r[2])))
            size.setdefault((engine, "peak RSS GB"), []).append((n, number(r[3])))
            if engine == "ciphervec":
                size.setdefault((engine, "open s (codes only)"), []).append((n, number(r[5])))
        elif len(r) == 6 and r[1] == target and r[2] == "one query per call":
            qps = lambda cell: number(cell.split(",")[-1])
            size.setdefault(("ciphervec", f"QPS per call, recall {target}"), []).append((n, qps(r[3])))
            size.setdefault(("FAISS", f"QPS per call, recall {target}"), []).append((n, qps(r[4])))
    measures = ["build s", "peak RSS GB", "open s (codes only)", f"QPS per call, recall {target}"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, measure in zip(axes, measures):
        for engine, style in (("ciphervec", "-o"), ("FAISS", "--x")):
            pts = sorted(p for p in size.get((engine, measure), []) if p[1] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=engine)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vectors")
        ax.set_title(measure)
        ax.legend()
    fig.suptitle(f"Cost against size ({table.split('/')[-1]})")
    fig.tight_layout()
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    main(*sys.argv[1:])
