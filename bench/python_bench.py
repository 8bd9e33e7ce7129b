#!/usr/bin/env python3
"""ciphervec through Python, next to CyborgDB's embedded core (its Python API) and to
ciphervec's own Rust benchmark, on the same data in the same run.

    bench/python_bench.sh                 # builds the venv and the wheel, then runs this
    python bench/python_bench.py --data ../shared/data/wordnet-minilm-50k [--nq 1000]

Prints, one thread:
- ciphervec (Python, one query per call) recall@10 and QPS per n_probes;
- CyborgDB core (one query per call, `query_numpy(batch=False)`) recall@10 and QPS per
  (n_probes, rerank_mult), if `cyborgdb_core` is installed;
- the Python-call overhead: Python QPS / Rust `ann_bench` QPS at the same n_lists and
  n_probes (`cargo run --release --example ann_bench`, run by this script);
- GIL release: two Python threads querying halves of a fixed batch against one thread
  doing both halves (a separate process, so that its thread pools are not pinned to one).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def load(data):
    base = read_vecs(data / "base.fvecs", np.float32)
    queries = read_vecs(data / "query.fvecs", np.float32)
    truth = read_vecs(data / "groundtruth.ivecs", np.int32)
    return np.ascontiguousarray(base), np.ascontiguousarray(queries), truth


def recall(found, truth, k=10):
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def timed_single(search, queries):
    out = []
    t = time.perf_counter()
    for q in queries:
        out.append(search(q))
    return out, len(queries) / (time.perf_counter() - t)


def bench_ciphervec(base, queries, truth, probes):
    import ciphervec as cv

    index = cv.Client().create_index("bench", cv.generate_key(), dimension=base.shape[1])
    t = time.perf_counter()
    index.upsert([str(i) for i in range(len(base))], base)
    up = time.perf_counter() - t
    t = time.perf_counter()
    index.train()
    tr = time.perf_counter() - t
    print(f"ciphervec (Python): upsert {len(base) / up:,.0f} vectors/s, train {tr:.1f} s, "
          f"{index.n_lists} lists")
    rows = []
    for p in probes:
        def one(q, p=p):
            return [int(h["id"]) for h in index.query(q, top_k=10, n_probes=p)]

        found, qps = timed_single(one, queries)
        t = time.perf_counter()
        batch = index.query_ids(queries, top_k=10, n_probes=p)
        qps_batch = len(queries) / (time.perf_counter() - t)
        assert (batch[:, :10] == np.array(found)).all()
        rows.append({"n_probes": p, "recall@10": recall(found, truth), "qps_single": qps,
                     "qps_batch": qps_batch})
        print(f"  n_probes {p:4}: recall@10 {rows[-1]['recall@10']:.3f}  "
              f"QPS single {qps:7.0f}  batch (1 thread) {qps_batch:7.0f}")
    return index.n_lists, rows


def bench_cyborgdb(base, queries, truth, n_lists, settings):
    try:
        import cyborgdb_core as cy
    except ImportError:
        print("cyborgdb_core is not installed: CyborgDB skipped")
        return []
    import secrets
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="cyborgdb-", dir=ROOT / "target")
    try:
        sc = cy.StorageConfig.disk(folder, cache_vectors=True, cache_metadata=True,
                                   cache_ids=True, cache_metadata_index=True)
        client = cy.Client(storage_config=sc, cpu_threads=1)
        key = secrets.token_bytes(32)
        index = client.create_index("bench", key, dimension=base.shape[1], metric="euclidean")
        ids = [str(i) for i in range(len(base))]
        t = time.perf_counter()
        for s in range(0, len(base), 10_000):
            index.upsert(ids[s:s + 10_000], base[s:s + 10_000], index_key=key)
        up = time.perf_counter() - t
        t = time.perf_counter()
        index.train(n_lists=n_lists, max_iters=20, index_key=key)
        tr = time.perf_counter() - t
        print(f"CyborgDB core {cy.__version__}: upsert {len(base) / up:,.0f} vectors/s, "
              f"train {tr:.1f} s, {n_lists} lists")
        rows = []
        for p, rm in settings:
            def one(q, p=p, rm=rm):
                res = index.query_numpy(q, top_k=10, n_probes=p, batch=False, rerank_mult=rm,
                                        index_key=key)
                return [int(x) for x in np.asarray(res[0] if isinstance(res, tuple) else res).ravel()[:10]]

            found, qps = timed_single(one, queries)
            rows.append({"n_probes": p, "rerank_mult": rm, "recall@10": recall(found, truth),
                         "qps_single": qps})
            print(f"  n_probes {p:4} rerank_mult {rm:5}: recall@10 "
                  f"{rows[-1]['recall@10']:.3f}  QPS single {qps:7.0f}")
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_rust(data, n_lists, probes, nq):
    cmd = ["cargo", "run", "--release", "-q", "--example", "ann_bench", "--", "--data",
           str(data), "--probes", ",".join(map(str, probes)), "--n-lists", str(n_lists),
           "--nq-single", str(nq), "--threads", "1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return {s["value"]: s for s in json.loads(line)["search"]}


def gil_ratio(base, queries, p, rounds=3):
    """Seconds for one thread to run every query, over seconds for two threads to run half
    each (best of `rounds`): near 2 on two free cores when the GIL is released."""
    import ciphervec as cv

    index = cv.Client().create_index("gil", cv.generate_key(), dimension=base.shape[1])
    index.upsert([str(i) for i in range(len(base))], base)
    index.train()

    def run(part):
        for q in part:
            index.query(q, top_k=10, n_probes=p)

    halves = (queries[0::2], queries[1::2])
    one, two = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        run(halves[0])
        run(halves[1])
        one.append(time.perf_counter() - t)
        threads = [threading.Thread(target=run, args=(h,)) for h in halves]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        two.append(time.perf_counter() - t)
    return min(one) / min(two)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/wordnet-minilm-50k"))
    ap.add_argument("--probes", default="8,16,32,64,128")
    ap.add_argument("--cyborg", default="32:50,64:200,64:1000",
                    help="CyborgDB (n_probes:rerank_mult) settings")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--gil-only", action="store_true")
    a = ap.parse_args()
    data = Path(a.data)
    base, queries, truth = load(data)
    queries, truth = queries[:a.nq], truth[:a.nq]
    probes = [int(p) for p in a.probes.split(",")]
    if a.gil_only:
        print(f"GIL release: 2 threads / 1 thread throughput = {gil_ratio(base, queries, 32):.2f}x "
              f"({os.cpu_count()} CPUs)")
        return
    n_lists, py_rows = bench_ciphervec(base, queries, truth, probes)
    rust = bench_rust(data, n_lists, probes, a.nq)
    print("Python-call overhead (same n_lists, n_probes, queries; one query per call):")
    for r in py_rows:
        s = rust.get(r["n_probes"])
        if s:
            print(f"  n_probes {r['n_probes']:4}: Python {r['qps_single']:7.0f} QPS, Rust "
                  f"{s['qps_single']:7.0f} QPS: ratio {r['qps_single'] / s['qps_single']:.2f} "
                  f"(recall {r['recall@10']:.3f} vs {s['recall@10']:.3f})")
    settings = [tuple(int(x) for x in s.split(":")) for s in a.cyborg.split(",") if s]
    bench_cyborgdb(base, queries, truth, n_lists, settings)
    env = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
    subprocess.run([sys.executable, __file__, "--data", str(data), "--nq", str(a.nq),
                    "--gil-only"], env=env, check=True)


if __name__ == "__main__":
    # One thread for the single-thread figures (the GIL run is a child without this).
    if "--gil-only" not in sys.argv:
        os.environ.setdefault("RAYON_NUM_THREADS", "1")
    main()
