"""How cost grows with size: ciphervec `ivf_pq` with codes only in RAM against FAISS IVFPQ
fast-scan + RefineFlat on the same synthetic clustered data (examples/scale_run.rs `gen`),
one size after another, each in its own processes. Never run in CI (see bench/scale.sh).

Per size: the exact ground truth (FAISS flat search over the base file, a million rows at a
time), ciphervec's build (upserts and training, streamed: examples/scale_run.rs `build`) and
FAISS's (train on the first 500,000 rows, add a million at a time), peak RSS and disk; open
time codes only and resident (up to 3M); then a sweep of both engines over probes and re-rank
window (one call of all queries) picks, per engine, the cheapest setting reaching recall@10
0.90 and 0.95 (or the one of highest recall if none does), and ROUNDS interleaved
rounds at those settings run every engine one query per call and all queries in one call,
all on one thread. Ratios are medians of per-round ratios.

    python3 bench/scale.py WORK_DIR ROUNDS SCALE_RUN_BINARY N [N ...]

Prints the markdown table; JSON lines of every measurement go to WORK_DIR/scale.jsonl.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

PROBES = [int(p) for p in os.environ.get("SCALE_PROBES", "4,8,16,32,64,128").split(",")]
# Re-rank windows (ciphervec `rerank`, FAISS RefineFlat `k_factor`) swept with the probes: on
# data whose PQ codes blur the nearest neighbours, recall stops growing with probes at a
# window of 5, and 0.95 is reached only with a wider one (at 10M, FAISS's needs more than 10).
WINDOWS = [int(w) for w in os.environ.get("SCALE_WINDOWS", "5,10").split(",")]
# Above this size the resident open (every vector decrypted into RAM, about 1.4 kB per
# vector) would not fit this machine's memory beside FAISS: it is not measured.
RESIDENT_MAX = 3_000_000
TARGETS = (0.90, 0.95)
MODES = ("call", "batch")


def fvecs_memmap(path):
    dim = int(np.fromfile(path, dtype=np.int32, count=1)[0])
    raw = np.memmap(path, dtype=np.float32, mode="r")
    return raw.reshape(-1, dim + 1)[:, 1:], dim


def ground_truth(data, k=10):
    out = os.path.join(data, "groundtruth.ivecs")
    if os.path.exists(out):
        return
    import faiss
    xb, d = fvecs_memmap(os.path.join(data, "base.fvecs"))
    xq = np.ascontiguousarray(fvecs_memmap(os.path.join(data, "query.fvecs"))[0])
    best_d = np.full((len(xq), k), np.inf, dtype=np.float32)
    best_i = np.zeros((len(xq), k), dtype=np.int64)
    step = 1_000_000
    for start in range(0, len(xb), step):
        chunk = np.ascontiguousarray(xb[start:start + step])
        dist, idx = faiss.knn(xq, chunk, k)
        dist = np.concatenate([best_d, dist], axis=1)
        idx = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(dist, order, axis=1)
        best_i = np.take_along_axis(idx, order, axis=1)
    rows = np.concatenate([np.full((len(xq), 1), k, dtype=np.int32),
                           best_i.astype(np.int32)], axis=1)
    rows.tofile(out)


def recall_at(found, gt, k=10):
    hits = sum(len(set(f[:k]) & set(g[:k])) for f, g in zip(found, gt))
    return hits / (k * len(gt))


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class Faiss:
    def __init__(self, data, workdir):
        import faiss
        faiss.omp_set_num_threads(1)
        xb, d = fvecs_memmap(os.path.join(data, "base.fvecs"))
        n = len(xb)
        self.nlist = int(round(n ** 0.5))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        t = time.perf_counter()
        quantizer = faiss.IndexFlatL2(d)
        self.ivf = faiss.IndexIVFPQFastScan(quantizer, d, self.nlist, d // 4, 4, faiss.METRIC_L2)
        self.ivf.cp.seed = 1234
        self.index = faiss.IndexRefineFlat(self.ivf)
        self.index.train(np.ascontiguousarray(xb[:500_000]))
        for start in range(0, n, 1_000_000):
            self.index.add(np.ascontiguousarray(xb[start:start + 1_000_000]))
        self.build_s = time.perf_counter() - t
        self.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.rss_growth = self.peak_rss - rss0
        path = os.path.join(workdir, "faiss.index")
        faiss.write_index(self.index, path)
        self.disk = os.path.getsize(path)
        os.remove(path)
        self.quantizer = quantizer

    def round(self, xq, gt, nprobe, window, mode):
        self.ivf.nprobe = nprobe
        self.index.k_factor = window
        t = time.perf_counter()
        if mode == "batch":
            found = self.index.search(xq, 10)[1]
        else:
            found = [self.index.search(q.reshape(1, -1), 10)[1][0] for q in xq]
        return len(xq) / (time.perf_counter() - t), recall_at(np.array(found), gt)


class Ciphervec:
    def __init__(self, binary, data, index, resident=False):
        args = [binary, "serve", "--data", data, "--index", index]
        if resident:
            args.append("--resident")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def round(self, probes, window, mode):
        self.proc.stdin.write(f"round {probes} {mode} {window}\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return r["qps"], r["recall@10"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def pick(sweep, target):
    """The cheapest (probes, window) whose recall reaches target in the sweep: fewest probes,
    then the narrowest window (the sweep's own QPS are too noisy here to rank settings by);
    if none reaches it, the one of highest recall."""
    reaching = [key for key, (_, rec) in sweep.items() if rec >= target]
    if reaching:
        return min(reaching)
    return max(sweep, key=lambda key: (sweep[key][1], -key[0], -key[1]))


def measure(binary, workdir, n, rounds, log):
    data = os.path.join(workdir, f"data-{n}")
    index = os.path.join(workdir, f"index-{n}")
    if not os.path.exists(os.path.join(data, "query.fvecs")):
        subprocess.run([binary, "gen", "--out", data, "--n", str(n)], check=True)
    ground_truth(data)
    built = json.loads(subprocess.run([binary, "build", "--data", data, "--index", index],
                                      check=True, capture_output=True, text=True).stdout)
    log({"n": n, "ciphervec_build": built})
    resident_info = None
    if n <= RESIDENT_MAX:
        resident = Ciphervec(binary, data, index, resident=True)
        resident.close()
        resident_info = resident.info
    log({"n": n, "ciphervec_resident_open": resident_info})
    cv = Ciphervec(binary, data, index)
    log({"n": n, "ciphervec_codes_open": cv.info})
    fs = Faiss(data, workdir)
    log({"n": n, "faiss_build": {"build_s": fs.build_s, "peak_rss_bytes": fs.peak_rss,
                                 "rss_growth_bytes": fs.rss_growth, "disk_bytes": fs.disk,
                                 "nlist": fs.nlist}})
    xq = np.ascontiguousarray(fvecs_memmap(os.path.join(data, "query.fvecs"))[0])
    gt = np.fromfile(os.path.join(data, "groundtruth.ivecs"), dtype=np.int32).reshape(-1, 11)[:, 1:]
    grid = [(p, w) for p in PROBES for w in WINDOWS]
    sweep_cv = {(p, w): cv.round(p, w, "batch") for p, w in grid if p <= built["n_lists"]}
    sweep_fs = {(p, w): fs.round(xq, gt, p, w, "batch") for p, w in grid if p <= fs.nlist}
    log({"n": n, "sweep_ciphervec": {f"{p}/{w}": v for (p, w), v in sweep_cv.items()},
         "sweep_faiss": {f"{p}/{w}": v for (p, w), v in sweep_fs.items()}})
    engines = []
    for target in TARGETS:
        for mode in MODES:
            pc, pf = pick(sweep_cv, target), pick(sweep_fs, target)
            engines.append((target, mode, "ciphervec", pc,
                            lambda s=pc, m=mode: cv.round(s[0], s[1], m)))
            engines.append((target, mode, "faiss", pf,
                            lambda s=pf, m=mode: fs.round(xq, gt, s[0], s[1], m)))
    qps = {i: [] for i in range(len(engines))}
    rec = {}
    for r in range(rounds):
        order = list(range(len(engines)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            q, recall = engines[i][4]()
            qps[i].append(q)
            rec[i] = recall
    cv.close()
    rows = []
    for i in range(0, len(engines), 2):
        target, mode, _, pc, _ = engines[i]
        pf = engines[i + 1][3]
        ratios = [a / b for a, b in zip(qps[i], qps[i + 1])]
        row = {"n": n, "target": target, "mode": mode, "ciphervec_probes": pc,
               "faiss_nprobe": pf, "ciphervec_recall": rec[i], "faiss_recall": rec[i + 1],
               "ciphervec_qps": statistics.median(qps[i]),
               "faiss_qps": statistics.median(qps[i + 1]),
               "ratio": statistics.median(ratios)}
        log(row)
        rows.append(row)
    return built, resident_info, cv.info, fs, rows


def main():
    workdir, rounds, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sizes = [int(s) for s in sys.argv[4:]]
    os.makedirs(workdir, exist_ok=True)
    out = open(os.path.join(workdir, "scale.jsonl"), "a")

    def log(record):
        out.write(json.dumps(record) + "\n")
        out.flush()
        print(json.dumps(record), file=sys.stderr)

    results = [(n,) + measure(binary, workdir, n, rounds, log) for n in sizes]
    print(f"# Scale: synthetic clustered data, 96 dimensions, 1 thread, {rounds} interleaved "
          "rounds of 1000 queries per size\n")
    print("| n | engine | build s | peak RSS GB | disk GB | open s codes only / resident "
          "| RAM B/vector codes only / resident |")
    print("|---|---|---|---|---|---|---|")
    for n, built, res, codes, fs, _ in results:
        res_open = f"{res['open_s']:.2f}" if res else "not measured"
        res_ram = f"{res['index_rss_bytes'] / n:.0f}" if res else "not measured"
        print(f"| {n:,} | ciphervec ivf_pq m={built['m']} | {built['build_s']:.0f} | "
              f"{built['peak_rss_bytes'] / 1e9:.2f} | {built['disk_bytes'] / 1e9:.2f} | "
              f"{codes['open_s']:.2f} / {res_open} | "
              f"{codes['index_rss_bytes'] / n:.0f} / {res_ram} |")
        print(f"| {n:,} | FAISS IVFPQ fast-scan + RefineFlat | {fs.build_s:.0f} | "
              f"{fs.peak_rss / 1e9:.2f} | {fs.disk / 1e9:.2f} | - | "
              f"{fs.rss_growth / n:.0f} |")
    print("\n| n | recall target | mode | ciphervec probes/rerank, recall, QPS | FAISS "
          "nprobe/k_factor, recall, QPS | ratio to FAISS (median per round) |")
    print("|---|---|---|---|---|---|")
    for n, _, _, _, _, rows in results:
        for r in rows:
            print(f"| {n:,} | {r['target']:.2f} | {'one query per call' if r['mode'] == 'call' else 'one call'} | "
                  f"{r['ciphervec_probes'][0]}/{r['ciphervec_probes'][1]}, {r['ciphervec_recall']:.3f}, {r['ciphervec_qps']:.0f} | "
                  f"{r['faiss_nprobe'][0]}/{r['faiss_nprobe'][1]}, {r['faiss_recall']:.3f}, {r['faiss_qps']:.0f} | "
                  f"{r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
