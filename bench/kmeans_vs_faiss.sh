#!/usr/bin/env bash
# k-means wall time, ciphervec vs FAISS, same data (100k x 128), k, iterations and threads,
# in one command. Sets up the peer venv if missing. Usage: bench/kmeans_vs_faiss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(../shared/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
cargo build --release --example kmeans_timing -q
for t in 1 2; do
  RAYON_NUM_THREADS=$t target/release/examples/kmeans_timing
  OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PY" - "$t" <<'PYEOF'
import sys, time, runpy
import faiss, numpy as np
t = int(sys.argv[1]); faiss.omp_set_num_threads(t)
mod = runpy.run_path("scripts/kmeans_faiss_reference.py", run_name="lib")
x = mod["dataset"]()
for k in (256, 1024):
    km = faiss.Kmeans(128, k, niter=10, seed=1)
    t0 = time.perf_counter(); km.train(x); secs = time.perf_counter() - t0
    idx = faiss.IndexFlatL2(128); idx.add(km.centroids)
    obj = float(idx.search(x, 1)[0].sum(dtype=np.float64))
    print(f"faiss     k={k} iters=10 threads={t} seconds={secs:.3f} objective={obj:.0f}")
PYEOF
done
