"""ciphervec ivf_flat against FAISS IVFFlat on a large set (1M x 128 in the issue that asked),
one thread, at several probe counts, in interleaved rounds: one ciphervec index per mode
(`query_rounds` one query per call, and `--batch`: all queries in one `query_batch` call)
serves every probe count (`round P`), FAISS likewise (`nprobe`), both with 4 * sqrt(n) lists.

    python bench/scale_flat.py DATA_DIR [ROUNDS] [PROBES]     # PROBES default 8,16,32,64,128

Prints a markdown table of median QPS and the median of the per-round ratios.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import bench_peers as bp  # noqa: E402
import numpy as np  # noqa: E402
from interleaved import MODES, Ciphervec  # noqa: E402


class Faiss:
    def __init__(self, xb, xq, gt):
        import faiss
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        self.nlist = int(round(4 * len(xb) ** 0.5))
        self.quantizer = faiss.IndexFlatL2(xb.shape[1])
        self.index = faiss.IndexIVFFlat(self.quantizer, xb.shape[1], self.nlist)
        self.index.cp.seed = 1234
        self.index.train(xb)
        self.index.add(xb)
        self.build_s = time.perf_counter() - t
        self.xq, self.gt = xq, gt

    def round(self, probes, mode):
        self.index.nprobe = probes
        t = time.perf_counter()
        if mode == "one call":
            found = self.index.search(self.xq, 10)[1]
        else:
            found = np.array([self.index.search(q.reshape(1, -1), 10)[1][0] for q in self.xq])
        return len(self.xq) / (time.perf_counter() - t), bp.recall_at(found, self.gt, 10)


def main(data, rounds, probes, binary):
    xb = bp.read_fvecs(os.path.join(data, "base.fvecs"))
    xq = bp.read_fvecs(os.path.join(data, "query.fvecs"))
    gt = bp.read_ivecs(os.path.join(data, "groundtruth.ivecs"))
    ours = {}
    for mode in MODES:
        ours[mode] = Ciphervec(binary, data, "flat", probes[0], None, None, None, mode)
        ours[mode].ready()
    faiss = Faiss(xb, xq, gt)
    del xb
    runs = [(p, mode, engine) for p in probes for mode in MODES for engine in ("ciphervec", "faiss")]

    def run(p, mode, engine):
        return ours[mode].round(p) if engine == "ciphervec" else faiss.round(p, mode)

    for r in runs:
        run(*r)  # warm-up
    qps = {r: [] for r in runs}
    recall = {}
    for i in range(rounds):
        order = runs[i % len(runs):] + runs[:i % len(runs)]
        for r in order:
            q, rec = run(*r)
            qps[r].append(q)
            recall[r] = rec
        print(f"round {i + 1}/{rounds} done", file=sys.stderr)
    name = os.path.basename(os.path.normpath(data))
    print(f"# {name}: {len(xq)} queries, ivf_flat vs FAISS IVFFlat ({faiss.nlist} lists both), "
          f"1 thread, {rounds} interleaved rounds\n")
    print("| n_probes | mode | ciphervec recall@10 | FAISS recall@10 | ciphervec QPS | FAISS QPS "
          "| median ratio |")
    print("|---|---|---|---|---|---|---|")
    for p in probes:
        for mode in MODES:
            c, f = (p, mode, "ciphervec"), (p, mode, "faiss")
            ratio = statistics.median(a / b for a, b in zip(qps[c], qps[f]))
            print(f"| {p} | {mode} | {recall[c]:.4f} | {recall[f]:.4f} | "
                  f"{statistics.median(qps[c]):.0f} | {statistics.median(qps[f]):.0f} | "
                  f"{ratio:.2f} |")
    for c in ours.values():
        c.close()


if __name__ == "__main__":
    probes = [int(p) for p in (sys.argv[3] if len(sys.argv) > 3 else "8,16,32,64,128").split(",")]
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9, probes,
         os.path.join(HERE, "..", "target", "release", "examples", "query_rounds"))
