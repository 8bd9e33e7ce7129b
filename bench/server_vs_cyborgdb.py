"""Differential test of `ciphervec serve` against CyborgDB's own service
(cyborgdb-service 0.18.0): the same raw HTTP calls (as the SDKs and cURL send them) to both,
comparing status codes, error-body shapes and answers. Differences that server/WIRE.md
documents (with the reason) are reported as such; any other difference fails the run.
Opt-in, not part of the test run: bench/server_vs_cyborgdb.sh installs and starts both.
"""

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, argv, env, port, api_key, tmp):
        self.name, self.api_key = name, api_key
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(tmp, f"{name}.log"), "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.1)

    def call(self, method, path, body=None, key="default"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        key = self.api_key if key == "default" else key
        if key:
            req.add_header("X-API-Key", key)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                text = r.read().decode()
                status = r.status
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


K = secrets.token_hex(32)
K2 = secrets.token_hex(32)
V = [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.9, 0.1, 0.5, 0.5]]

# (what, method, path, body, key, the documented difference or None)
CASES = [
    ("health without a key", "GET", "/v1/health", None, None, None),
    ("list without a key", "GET", "/v1/indexes/list", None, None, None),
    ("list with a wrong key", "GET", "/v1/indexes/list", None, "wrong-key-0000000000", None),
    ("training status without a key", "GET", "/v1/indexes/training-status", None, None,
     "200 instead of 401: the service's OpenAPI declares no key and the JS SDK 0.14 sends none"),
    ("create without a dimension (the cURL call)", "POST", "/v1/indexes/create", {"index_name": "p1", "index_key": K}, "default", None),
    ("create an existing name", "POST", "/v1/indexes/create", {"index_name": "p1", "index_key": K}, "default",
     "409 instead of 400: a state conflict (ConflictError), see WIRE.md Differences"),
    ("create with a key that is not hex", "POST", "/v1/indexes/create", {"index_name": "p2", "index_key": "zz"}, "default", None),
    ("create with a short key", "POST", "/v1/indexes/create", {"index_name": "p2", "index_key": "abcd"}, "default", None),
    ("create with neither key nor KMS name", "POST", "/v1/indexes/create", {"index_name": "p2"}, "default", None),
    ("create without a name", "POST", "/v1/indexes/create", {"index_key": K}, "default", None),
    ("create with dimension and metric", "POST", "/v1/indexes/create", {"index_name": "p3", "index_key": K, "dimension": 4, "metric": "euclidean"}, "default", None),
    ("create with a TurboQuant tier", "POST", "/v1/indexes/create", {"index_name": "p7", "index_key": K, "dimension": 4, "storage_precision": "tq8"}, "default",
     "400: ciphervec has no TurboQuant tiers"),
    ("describe", "POST", "/v1/indexes/describe", {"index_name": "p3", "index_key": K}, "default", None),
    ("describe with a wrong index key", "POST", "/v1/indexes/describe", {"index_name": "p3", "index_key": K2}, "default", None),
    ("describe an unknown index", "POST", "/v1/indexes/describe", {"index_name": "nope", "index_key": K}, "default", None),
    ("upsert", "POST", "/v1/vectors/upsert", {"index_name": "p3", "index_key": K, "items": [
        {"id": f"v{i}", "vector": v, "metadata": {"n": i}, "contents": f"text {i}"} for i, v in enumerate(V)]}, "default", None),
    ("upsert a wrong dimension", "POST", "/v1/vectors/upsert", {"index_name": "p3", "index_key": K, "items": [{"id": "x", "vector": [1.0, 2.0]}]}, "default", None),
    ("query", "POST", "/v1/vectors/query", {"index_name": "p3", "index_key": K, "query_vectors": V[0], "top_k": 3, "include": ["distance", "metadata"]}, "default", None),
    ("query with a filter", "POST", "/v1/vectors/query", {"index_name": "p3", "index_key": K, "query_vectors": V[0], "top_k": 3, "filters": {"n": {"$gte": 1}}}, "default", None),
    ("get", "POST", "/v1/vectors/get", {"index_name": "p3", "index_key": K, "ids": ["v2", "v0"], "include": ["metadata"]}, "default", None),
    ("get with an unknown include name", "POST", "/v1/vectors/get", {"index_name": "p3", "index_key": K, "ids": ["v0"], "include": ["bogus"]}, "default",
     "400 instead of ignoring it: no silent drop (CyborgDB's newer SDK tests expect the 400)"),
    ("list_ids", "POST", "/v1/vectors/list_ids", {"index_name": "p3", "index_key": K}, "default", None),
    ("delete vectors", "POST", "/v1/vectors/delete", {"index_name": "p3", "index_key": K, "ids": ["v1"]}, "default", None),
    ("delete an index with a wrong key", "POST", "/v1/indexes/delete", {"index_name": "p3", "index_key": K2}, "default", None),
    ("delete an index", "POST", "/v1/indexes/delete", {"index_name": "p3", "index_key": K}, "default", None),
    ("describe a deleted index", "POST", "/v1/indexes/describe", {"index_name": "p3", "index_key": K}, "default", None),
]


def shape(body):
    """What is compared of an answer beyond its status: the keys of an object, the ids of
    results (as sets), and whether an error carries a detail."""
    if not isinstance(body, dict):
        return type(body).__name__
    if "results" in body and isinstance(body["results"], list):
        return ("results", sorted(r.get("id") for r in body["results"] if isinstance(r, dict)))
    if "ids" in body:
        return ("ids", sorted(body["ids"]))
    if "indexes" in body:
        return ("indexes", sorted(body["indexes"]))
    return ("keys", "detail" in body)


def main():
    serve_bin = os.environ.get("CIPHERVEC_BIN", str(ROOT / "target/release/ciphervec"))
    service_bin = ROOT / "target/cyborgdb-service-venv/bin/cyborgdb-service"
    with tempfile.TemporaryDirectory(prefix="cv-diff-") as tmp:
        key_a, key_b = "serve-" + secrets.token_hex(12), "svc-" + secrets.token_hex(12)
        pa, pb = free_port(), free_port()
        serve = Server("serve", [serve_bin, "serve", os.path.join(tmp, "a"), "--listen", f"127.0.0.1:{pa}"],
                       dict(os.environ, CIPHERVEC_API_KEY=key_a), pa, key_a, tmp)
        service = Server("cyborgdb-service", [str(service_bin)],
                         dict(os.environ, PORT=str(pb), CYBORGDB_DB_TYPE="disk",
                              CYBORGDB_DISK_PATH=os.path.join(tmp, "b"), CYBORGDB_SERVICE_ROOT_KEY=key_b),
                         pb, key_b, tmp)
        unexpected = 0
        try:
            print(f"{'call':45} {'serve':>5} {'service':>7}  verdict")
            for what, method, path, body, key, documented in CASES:
                a = serve.call(method, path, body, key)
                b = service.call(method, path, body, key)
                same = a[0] == b[0] and (a[0] >= 400 or shape(a[1]) == shape(b[1]))
                if same:
                    verdict = "same"
                elif documented:
                    verdict = f"documented: {documented}"
                else:
                    verdict = f"DIFFERENT: {json.dumps(a[1])[:120]} | {json.dumps(b[1])[:120]}"
                    unexpected += 1
                print(f"{what:45} {a[0]:>5} {b[0]:>7}  {verdict}")
        finally:
            serve.stop()
            service.stop()
    print(f"{len(CASES)} calls, {unexpected} undocumented differences")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
