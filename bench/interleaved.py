"""Interleaved single-thread QPS of ciphervec configurations against hnswlib, FAISS IVFFlat
and FAISS IVFPQ fast-scan with an exact refine, on one dataset, in two modes: one query per
call, and all queries in one call (ciphervec `query_batch`, hnswlib `knn_query` of the whole
matrix, FAISS `search` of the whole matrix), always on one thread. Each engine is built once;
then, round after round, every engine runs all queries once in a rotating order. The shared
machines this runs on change speed by up to 2x within minutes, so one run per engine compares
moments, not engines: here every round gives each engine's QPS over the same few seconds, and
the table reports medians over rounds and the median per-round ratio to hnswlib in the same
mode.

    bench/interleaved.sh DATASET_DIR [ROUNDS]     (runs this with the peer venv)
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("CIPHERVEC_SHARED", os.path.join(HERE, "..", "..", "shared")), "bench"))
import bench_peers as bp  # noqa: E402
import numpy as np  # noqa: E402

# (type, n_probes, rerank, cache budget, n_lists): settings that reach recall@10 0.95 on
# wordnet-minilm-50k in bench/quantized.sh; "0" budget = codes only in RAM, n_lists None = the
# library's default; "pq:M:8" = 8-bit refine codes. INTERLEAVED_CONFIGS (a JSON list of such lists) replaces them.
CIPHERVEC = [
    ("flat", 56, None, None, None),
    ("pq:96", 40, 5, None, None),
    ("pq:96", 40, 5, 0, None),
    ("pq:96:8", 40, 5, 0, None),
    ("sq8", 56, 2, 0, None),
]
if os.environ.get("INTERLEAVED_CONFIGS"):
    CIPHERVEC = [tuple(c) for c in json.loads(os.environ["INTERLEAVED_CONFIGS"])]
HNSW_EF = 32
FAISS_NPROBE = 56
# FAISS IVFPQ fast-scan + RefineFlat at the settings of ciphervec's ivf_pq defaults: sqrt(n)
# lists, d/4 4-bit subquantizers; probes and refine factor chosen for recall@10 ~0.95.
FASTSCAN_NPROBE = int(os.environ.get("FASTSCAN_NPROBE", "40"))
FASTSCAN_K_FACTOR = int(os.environ.get("FASTSCAN_K_FACTOR", "5"))
# Several (nprobe, k_factor) settings of the one FAISS fast-scan index, each run as an engine
# of its own (FASTSCAN_SETTINGS='[[36, 5], [32, 6]]'): the ratio column then compares with
# the fastest of them that reaches recall@10 0.95 in the same mode and round (QPS at equal
# recall, not at equal settings, where the engines' recalls differ).
FASTSCAN_SETTINGS = [tuple(s) for s in json.loads(
    os.environ.get("FASTSCAN_SETTINGS", f"[[{FASTSCAN_NPROBE}, {FASTSCAN_K_FACTOR}]]"))]
RECALL_TARGET = 0.95
MODES = ("per query", "one call")


class Hnsw:
    def __init__(self, xb):
        import hnswlib
        t = time.perf_counter()
        self.index = hnswlib.Index(space="l2", dim=xb.shape[1])
        self.index.init_index(max_elements=len(xb), ef_construction=200, M=16, random_seed=100)
        self.index.add_items(xb, np.arange(len(xb)), num_threads=1)
        self.index.set_ef(HNSW_EF)
        self.info = {"engine": "hnswlib", "setting": f"M=16, ef_construction=200, ef={HNSW_EF}",
                     "build_s": time.perf_counter() - t}

    def search(self, q):
        return self.index.knn_query(q, k=10, num_threads=1)[0][0]

    def search_all(self, xq):
        return self.index.knn_query(xq, k=10, num_threads=1)[0]


class FaissIvfFlat:
    def __init__(self, xb):
        import faiss
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        nlist = int(round(4 * len(xb) ** 0.5))
        self.quantizer = faiss.IndexFlatL2(xb.shape[1])
        self.index = faiss.IndexIVFFlat(self.quantizer, xb.shape[1], nlist)
        self.index.cp.seed = 1234
        self.index.train(xb)
        self.index.add(xb)
        self.index.nprobe = FAISS_NPROBE
        self.info = {"engine": "faiss-ivfflat", "setting": f"nlist={nlist}, nprobe={FAISS_NPROBE}",
                     "build_s": time.perf_counter() - t}

    def search(self, q):
        return self.index.search(q.reshape(1, -1), 10)[1][0]

    def search_all(self, xq):
        return self.index.search(xq, 10)[1]


class FaissFastScanRefine(FaissIvfFlat):
    def __init__(self, xb):
        import faiss
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        n, d = xb.shape
        nlist = int(round(n ** 0.5))
        self.quantizer = faiss.IndexFlatL2(d)
        self.ivf = faiss.IndexIVFPQFastScan(self.quantizer, d, nlist, d // 4, 4, faiss.METRIC_L2)
        self.ivf.cp.seed = 1234
        self.index = faiss.IndexRefineFlat(self.ivf)
        self.index.train(xb)
        self.index.add(xb)
        self.nlist, self.d = nlist, d
        self.build_s = time.perf_counter() - t

    def at(self, nprobe, k_factor):
        """The same index searched at one (nprobe, k_factor) setting."""
        return FastScanSetting(self, nprobe, k_factor)


class FastScanSetting:
    def __init__(self, base, nprobe, k_factor):
        self.base, self.nprobe, self.k_factor = base, nprobe, k_factor
        self.info = {"engine": "faiss-ivfpq-fastscan+refine",
                     "setting": f"nlist={base.nlist}, PQ{base.d // 4}x4fs, nprobe={nprobe}, "
                                f"k_factor={k_factor}",
                     "build_s": base.build_s}

    def apply(self):
        self.base.ivf.nprobe = self.nprobe
        self.base.index.k_factor = self.k_factor

    def search(self, q):
        return self.base.search(q)

    def search_all(self, xq):
        return self.base.search_all(xq)


def python_round(engine, xq, gt, mode):
    if hasattr(engine, "apply"):
        engine.apply()
    t = time.perf_counter()
    if mode == "one call":
        found = engine.search_all(xq)
    else:
        found = [engine.search(q) for q in xq]
    qps = len(xq) / (time.perf_counter() - t)
    return qps, bp.recall_at(np.array(found), gt, 10)


class Ciphervec:
    def __init__(self, binary, data, kind, probes, rerank, budget, n_lists, mode):
        args = [binary, "--data", data, "--type", kind, "--probes", str(probes)]
        if mode == "one call":
            args.append("--batch")
        if n_lists is not None:
            args += ["--n-lists", str(n_lists)]
        if rerank is not None:
            args += ["--rerank", str(rerank)]
        if budget is not None:
            args += ["--cache-budget", str(budget)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.info = None

    def ready(self):
        self.info = json.loads(self.proc.stdout.readline())
        return self.info

    def round(self, probes=None):
        self.proc.stdin.write("round\n" if probes is None else f"round {probes}\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return r["qps"], r["recall@10"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def main(data, rounds, binary):
    xb = bp.read_fvecs(os.path.join(data, "base.fvecs"))
    xq = bp.read_fvecs(os.path.join(data, "query.fvecs"))
    gt = bp.read_ivecs(os.path.join(data, "groundtruth.ivecs"))
    # ciphervec processes build one after another (each builds, then waits for rounds).
    # (info, mode, run): every engine in both modes.
    engines, processes = [], []
    for mode in MODES:
        for kind, probes, rerank, budget, n_lists in CIPHERVEC:
            c = Ciphervec(binary, data, kind, probes, rerank, budget, n_lists, mode)
            info = dict(c.ready())
            info["engine"] = info["engine"].replace(" query_batch", "")
            if not info["vectors_resident"]:
                info["engine"] += " (codes only in RAM)"
            engines.append((info, mode, c.round))
            processes.append(c)
    fastscan = FaissFastScanRefine(xb)
    peers = [Hnsw(xb), FaissIvfFlat(xb)] + [fastscan.at(*s) for s in FASTSCAN_SETTINGS]
    for mode in MODES:
        for peer in peers:
            engines.append((peer.info, mode,
                            lambda peer=peer, mode=mode: python_round(peer, xq, gt, mode)))
    for info, mode, run in engines:
        run()  # warm-up
    qps = {i: [] for i in range(len(engines))}
    recall = {}
    for r in range(rounds):
        order = list(range(len(engines)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            q, rec = engines[i][2]()
            qps[i].append(q)
            recall[i] = rec
        print(f"round {r + 1}/{rounds}: " +
              ", ".join(f"{engines[i][0]['engine']} ({engines[i][1]}) {qps[i][-1]:.0f}"
                        for i in range(len(engines))),
              file=sys.stderr)
    hnsw_of = {mode: i for i, (info, mode, _) in enumerate(engines) if info["engine"] == "hnswlib"}
    # Per mode, the FAISS fast-scan settings that reach the recall target (all of them if
    # none does); each round's ratio is to the fastest of those in that round.
    faiss_pq_of = {}
    for mode in MODES:
        settings = [i for i, (info, m, _) in enumerate(engines)
                    if m == mode and info["engine"] == "faiss-ivfpq-fastscan+refine"]
        reaching = [i for i in settings if recall[i] >= RECALL_TARGET]
        faiss_pq_of[mode] = reaching or settings
    best_faiss = {mode: [max(qps[i][r] for i in faiss_pq_of[mode]) for r in range(rounds)]
                  for mode in MODES}
    name = os.path.basename(os.path.normpath(data))
    print(f"# {name}: {len(xb)} x {xb.shape[1]}, 1 thread, {rounds} interleaved rounds of "
          f"{len(xq)} queries\n")
    print("| mode | engine | setting | build s | decrypted RAM B/vector | recall@10 | median QPS "
          "| median ratio to hnswlib (same mode) | median ratio to FAISS fast-scan+refine "
          f"(same mode; the fastest setting with recall@10 >= {RECALL_TARGET} each round) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (info, mode, _) in enumerate(engines):
        ratios = [a / b for a, b in zip(qps[i], qps[hnsw_of[mode]])]
        to_faiss = [a / b for a, b in zip(qps[i], best_faiss[mode])]
        ram = info.get("ram_bytes_per_vector")
        ram = "-" if ram is None else f"{ram:.0f}"
        print(f"| {mode} | {info['engine']} | {info['setting']} | {info['build_s']:.1f} | {ram} | "
              f"{recall[i]:.4f} | {statistics.median(qps[i]):.0f} | "
              f"{statistics.median(ratios):.2f} | {statistics.median(to_faiss):.2f} |")
    for c in processes:
        c.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9, sys.argv[3])
