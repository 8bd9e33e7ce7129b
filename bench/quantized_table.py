"""Markdown table of bench/quantized.sh results: per engine, build time, size on disk, and the
best single-thread QPS among the settings that reach recall@10 >= 0.95 (with that recall)."""
import json
import sys

TARGET = 0.95


def label(r):
    cfg = r.get("config", {})
    if r["peer"] == "ciphervec":
        return f"ciphervec {cfg.get('index')} (n_lists {cfg.get('n_lists')})"
    return f"{r['peer']} ({cfg.get('index', '')})"


def main(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    print(f"# {recs[0]['dataset']}: n={recs[0]['n_base']} d={recs[0]['dim']}, 1 thread, one run\n")
    print(f"| engine | build s | on disk MiB | QPS at recall@10 >= {TARGET} | recall | setting |")
    print("|---|---|---|---|---|---|")
    for r in recs:
        ok = [s for s in r["search"] if s.get("recall@10", 0) >= TARGET]
        best = max(ok, key=lambda s: s["qps_single"]) if ok else None
        size = f"{r['index_bytes'] / 2**20:.0f}" if r.get("index_bytes") else "-"
        if best:
            row = f"{best['qps_single']:.0f} | {best['recall@10']:.3f} | {best['param']}={best['value']}"
        else:
            row = "not reached | - | -"
        print(f"| {label(r)} | {r['build_s']:.1f} | {size} | {row} |")


if __name__ == "__main__":
    main(sys.argv[1])
