"""Throughput of `ciphervec serve` through CyborgDB's Python SDK (cyborgdb 0.18.0), against
the same engine in-process (the `ciphervec` Python package) and, with --service, against
CyborgDB's own service (cyborgdb-service 0.18.0) through the same SDK, on the same data in
one run. Each side: upsert the base vectors, train at its defaults, then timed rounds of one
batched query of all query vectors (top 10), interleaved across sides; the median QPS of
the rounds and recall@10 against the data set's ground truth are printed, with ratios.

    bench/server_throughput.sh [--service] [--rounds 5] [--n 50000]

Run by bench/server_throughput.sh, which installs what it needs under target/.
"""

import argparse
import os
import pathlib
import secrets
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def load(data, n):
    if data.exists():
        base = read_vecs(data / "base.fvecs", np.float32)[:n]
        queries = read_vecs(data / "query.fvecs", np.float32)
        truth = read_vecs(data / "groundtruth.ivecs", np.int32)
        if n < 50_000:
            truth = None
        return np.ascontiguousarray(base), np.ascontiguousarray(queries), truth, data.name
    print(f"{data} not found: random clustered data instead")
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((200, 384)).astype(np.float32)
    base = centers[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, 384)).astype(np.float32)
    queries = centers[rng.integers(0, 200, 1000)] + 0.3 * rng.standard_normal((1000, 384)).astype(np.float32)
    return base, queries, None, "random-clustered"


def exact_truth(base, queries, k=10):
    out = []
    norms = (base ** 2).sum(axis=1)
    for start in range(0, len(queries), 100):
        q = queries[start:start + 100]
        d = norms[None, :] - 2 * q @ base.T
        out.append(np.argsort(d, axis=1)[:, :k])
    return np.vstack(out)


def recall(found, truth, k=10):
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, log):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start: {pathlib.Path(log).read_text()[-2000:]}")


class Process:
    def __init__(self, argv, env, url, tmp):
        self.log_path = os.path.join(tmp, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_healthy(url, self.proc, self.log_path)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class InProcess:
    name = "ciphervec in-process (Python package)"

    def __init__(self, tmp):
        import ciphervec as cv
        self.client = cv.Client(os.path.join(tmp, "inproc"))
        self.key = cv.generate_key()
        self.cv = cv

    def load(self, ids, base):
        self.index = self.client.create_index("bench", self.key, dimension=base.shape[1])
        for start in range(0, len(ids), 10_000):
            self.index.upsert(ids[start:start + 10_000], base[start:start + 10_000])
        self.index.train()

    def query(self, queries):
        hits = self.index.query(queries, top_k=10)
        return [[int(h["id"]) for h in row] for row in hits]

    def stop(self):
        pass


class ThroughSdk:
    def __init__(self, name, url, api_key):
        import cyborgdb
        self.name = name
        self.client = cyborgdb.Client(url, api_key)
        self.key = cyborgdb.Client.generate_key()

    def load(self, ids, base):
        self.index = self.client.create_index("bench", self.key, dimension=base.shape[1])
        for start in range(0, len(ids), 10_000):
            self.index.upsert(ids[start:start + 10_000], base[start:start + 10_000])
        self.index.train()
        # A service that trains in the background: wait until it is done.
        deadline = time.monotonic() + 900
        while self.index.is_training() and time.monotonic() < deadline:
            time.sleep(1)

    def query(self, queries):
        rows = self.index.query(query_vectors=queries, top_k=10)
        return [[int(h["id"]) for h in row] for row in rows]


def start_serve(tmp):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_key = secrets.token_hex(16)
    binary = os.environ.get("CIPHERVEC_BIN", str(ROOT / "target/release/ciphervec"))
    env = dict(os.environ, CIPHERVEC_API_KEY=api_key)
    proc = Process([binary, "serve", os.path.join(tmp, "serve-db"), "--listen", f"127.0.0.1:{port}"], env, url, tmp)
    side = ThroughSdk("ciphervec serve (cyborgdb SDK)", url, api_key)
    side.stop = proc.stop
    return side


def start_service(tmp):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root = "svc-" + secrets.token_hex(16)
    binary = ROOT / "target/cyborgdb-service-venv/bin/cyborgdb-service"
    env = dict(os.environ, PORT=str(port), CYBORGDB_DB_TYPE="disk",
               CYBORGDB_DISK_PATH=os.path.join(tmp, "service-db"), CYBORGDB_SERVICE_ROOT_KEY=root)
    svc_tmp = os.path.join(tmp, "svc")
    os.makedirs(svc_tmp)
    proc = Process([str(binary)], env, url, svc_tmp)
    side = ThroughSdk("cyborgdb-service 0.18.0 (cyborgdb SDK)", url, root)
    side.stop = proc.stop
    return side


def main():
    ap = argparse.ArgumentParser()
    # ../shared beside the checkout (a worktree's is two levels up).
    shared = next((p / "shared/data/wordnet-minilm-50k" for p in (ROOT.parent, ROOT.parent.parent)
                   if (p / "shared/data/wordnet-minilm-50k").exists()), ROOT.parent / "shared/data/wordnet-minilm-50k")
    ap.add_argument("--data", default=str(shared))
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--service", action="store_true", help="also CyborgDB's own service")
    args = ap.parse_args()
    base, queries, truth, data_name = load(pathlib.Path(args.data), args.n)
    if truth is None:
        truth = exact_truth(base, queries)
    ids = [str(i) for i in range(len(base))]
    print(f"data: {data_name}, {len(base)} x {base.shape[1]}, {len(queries)} queries, top 10")
    with tempfile.TemporaryDirectory(prefix="cv-throughput-") as tmp:
        sides = [InProcess(tmp), start_serve(tmp)]
        if args.service:
            sides.append(start_service(tmp))
        try:
            for side in sides:
                t = time.perf_counter()
                side.load(ids, base)
                side.load_seconds = time.perf_counter() - t
                side.qps = []
                side.recall = recall(side.query(queries[:50]), truth[:50])  # warm-up
            for _ in range(args.rounds):
                for side in sides:
                    t = time.perf_counter()
                    found = side.query(queries)
                    side.qps.append(len(queries) / (time.perf_counter() - t))
                    side.recall = recall(found, truth)
        finally:
            for side in sides:
                side.stop()
    first = statistics.median(sides[0].qps)
    print(f"{'side':45} {'load+train s':>12} {'QPS (median)':>13} {'recall@10':>10} {'vs in-process':>14}")
    for side in sides:
        qps = statistics.median(side.qps)
        print(f"{side.name:45} {side.load_seconds:12.1f} {qps:13.0f} {side.recall:10.3f} {qps / first:13.2f}x")
    if args.service:
        serve_qps = statistics.median(sides[1].qps)
        svc_qps = statistics.median(sides[2].qps)
        print(f"serve / cyborgdb-service QPS: {serve_qps / svc_qps:.1f}x "
              f"(recall {sides[1].recall:.3f} vs {sides[2].recall:.3f})")


if __name__ == "__main__":
    main()
