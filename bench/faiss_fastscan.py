"""FAISS IndexIVFPQFastScan (4-bit PQ, SIMD fast-scan) with an exact IndexRefineFlat re-rank,
as an extra peer of the shared harness (../shared/bench/bench_peers.py), which has no such
peer. Runs one worker in this process and prints the harness's `RESULT {json}` line.

    OMP_NUM_THREADS=1 python bench/faiss_fastscan.py --data DIR --nlist 224 --pq-m 96 \
        --refine 10 --nprobe 8,16,32 --tmp target/bench-tmp
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import bench_peers as bp  # noqa: E402


def take(flag, default):
    """Removes `flag VALUE` from argv (options the harness does not know)."""
    if flag in sys.argv:
        i = sys.argv.index(flag)
        value = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return value
    return default


PQ_M = int(take("--pq-m", "0"))
REFINE = int(take("--refine", "10"))


class FaissIVFPQFastScan(bp.FaissIVFFlat):
    name = "faiss-ivfpqfs"
    param_name = "nprobe"

    def __init__(self, a, d, n):
        super().__init__(a, d, n)
        faiss = self.faiss
        m = PQ_M or d // 4
        self.ivf = faiss.IndexIVFPQFastScan(self.quantizer, d, self.nlist, m, 4, faiss.METRIC_L2)
        self.ivf.cp.niter = a.kmeans_iters
        self.ivf.cp.seed = 1234
        self.ivf.cp.max_points_per_centroid = self.index.cp.max_points_per_centroid
        self.index = faiss.IndexRefineFlat(self.ivf)
        self.index.k_factor = REFINE
        self.cfg = {"index": f"IVF{self.nlist},PQ{m}x4fs,RFlat k_factor={REFINE}", "nlist": self.nlist, "pq_m": m,
                    "k_factor": REFINE, "kmeans_iters": a.kmeans_iters, "train_n": self.train_n}

    def build(self, xb):
        # As the harness's IVFFlat build (same training sample and seed); `self.index` is the
        # refine index, which trains and fills the fast-scan IVF inside it.
        import time

        import numpy as np
        rng = np.random.default_rng(42)
        if self.train_n >= len(xb):
            sample = xb
        else:
            sample = xb[np.sort(rng.choice(len(xb), self.train_n, replace=False))]
        t = time.perf_counter()
        self.index.train(sample)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        self.index.add(xb)
        return {"train_s": train_s, "add_s": time.perf_counter() - t}

    def set_param(self, v):
        self.ivf.nprobe = v


bp.PEERS[FaissIVFPQFastScan.name] = FaissIVFPQFastScan
bp.ALL_PEERS.append(FaissIVFPQFastScan.name)

if __name__ == "__main__":
    sys.argv[1:1] = ["--worker", "--peer", FaissIVFPQFastScan.name, "--threads-now", "1"]
    bp.main()
