"""Recall@10 of FAISS IndexIVFPQFastScan (4-bit PQ, its default by_residual=False) + IndexRefineFlat
at sqrt(n) lists, probes 16/32/48 and k_factor 3/5/10, the settings of bench/results/pq-recall-vs-faiss.md:

    python bench/faiss_pq_recall.py DATA_DIR M
"""
import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
import bench_peers as bp, numpy as np, faiss
faiss.omp_set_num_threads(1)
d, m = sys.argv[1], int(sys.argv[2])
xb = bp.read_fvecs(os.path.join(d, "base.fvecs")); xq = bp.read_fvecs(os.path.join(d, "query.fvecs"))
gt = bp.read_ivecs(os.path.join(d, "groundtruth.ivecs"))
n, dim = xb.shape
nlist = int(round(n ** 0.5))
for resid in [False]:
    q = faiss.IndexFlatL2(dim)
    ivf = faiss.IndexIVFPQFastScan(q, dim, nlist, m, 4, faiss.METRIC_L2)
    ivf.by_residual = resid
    ivf.cp.seed = 1234
    ix = faiss.IndexRefineFlat(ivf)
    ix.train(xb); ix.add(xb)
    for kf in [3, 5, 10]:
        ix.k_factor = kf
        row = []
        for p in [16, 32, 48]:
            ivf.nprobe = p
            I = ix.search(xq, 10)[1]
            row.append(round(bp.recall_at(I, gt, 10), 4))
        print(f"faiss nlist={nlist} m={m} by_residual={resid} k_factor={kf} probes 16/32/48: {row}", flush=True)
