"""Markdown table of bench/quantized.sh results: per engine, build time, size on disk, the
decrypted bytes held in RAM per vector (ciphervec only; lists plus item table, and the ratio to
ciphervec ivf_flat in the same file), and the best single-thread QPS among the settings that
reach recall@10 >= 0.95 (with that recall)."""
import json
import sys

TARGET = 0.95


def label(r):
    cfg = r.get("config", {})
    if r["peer"].startswith("ciphervec"):
        held = "vectors in RAM" if cfg.get("vectors_resident", True) else "codes only in RAM"
        if cfg.get("index") == "flat" and not cfg.get("vectors_resident", True):
            held = "lists decrypted per query"
        return f"ciphervec {cfg.get('index')} (n_lists {cfg.get('n_lists')}, {held})"
    return f"{r['peer']} ({cfg.get('index', '')})"


def ram(r):
    if "ram_list_bytes_per_vector" not in r:
        return None
    return r["ram_list_bytes_per_vector"] + r["ram_item_bytes_per_vector"]


def main(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    flat = [ram(r) for r in recs if r["peer"] == "ciphervec" and r["config"].get("index") == "flat"]
    flat_ram = flat[0] if flat and flat[0] else None
    print(f"# {recs[0]['dataset']}: n={recs[0]['n_base']} d={recs[0]['dim']}, 1 thread, one run\n")
    print(f"| engine | build s | on disk MiB | decrypted RAM B/vector (x flat) "
          f"| QPS at recall@10 >= {TARGET} | recall | setting |")
    print("|---|---|---|---|---|---|---|")
    for r in recs:
        ok = [s for s in r["search"] if s.get("recall@10", 0) >= TARGET]
        best = max(ok, key=lambda s: s["qps_single"]) if ok else None
        size = f"{r['index_bytes'] / 2**20:.0f}" if r.get("index_bytes") else "-"
        held = ram(r)
        if held is None:
            memory = "-"
        elif flat_ram:
            memory = f"{held:.0f} ({held / flat_ram:.2f}x)"
        else:
            memory = f"{held:.0f}"
        if best:
            setting = f"{best['param']}={best['value']}"
            if best.get("rerank"):
                setting += f", rerank={best['rerank']}"
            row = f"{best['qps_single']:.0f} | {best['recall@10']:.3f} | {setting}"
        else:
            row = "not reached | - | -"
        print(f"| {label(r)} | {r['build_s']:.1f} | {size} | {memory} | {row} |")


if __name__ == "__main__":
    main(sys.argv[1])
