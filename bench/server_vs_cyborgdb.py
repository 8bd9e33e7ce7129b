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

# Items whose metadata has a pattern field `title`, an unindexed `raw`, a text field `body`
# (words whose stems are themselves, so that the service's stemming changes nothing).
TEXT_ITEMS = [
    {"id": f"v{i}", "vector": v,
     "metadata": {"title": f"INV-{2000 + i}" if i < 3 else "memo", "date": [0, 3, 1, 4][i], "n": i, "raw": i,
                  "body": ["refund overdue", "overdue", "refund", "nothing here"][i]}}
    for i, v in enumerate(V + [[0.2, 0.2, 0.2, 0.9]])
]

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
] + [
    # Metadata schema, text fields, BM25, storage precision (issue #47's second half).
    (what, "POST", path, dict(body, index_key=K), "default", documented)
    for what, path, body, documented in [
        ("create with schema, text fields, BM25", "/v1/indexes/create",
         {"index_name": "t1", "dimension": 4, "metadata_schema": {"title": {"pattern": True}, "raw": {"filterable": False}},
          "text_fields": ["body"], "bm25_k1": 1.5, "bm25_b": 0.5}, None),
        ("describe it", "/v1/indexes/describe", {"index_name": "t1"}, None),
        ("upsert with text fields", "/v1/vectors/upsert", {"index_name": "t1", "items": TEXT_ITEMS}, None),
        ("query_metadata, every item", "/v1/vectors/query_metadata", {"index_name": "t1", "filters": {}}, None),
        ("query_metadata, top_k 0 (no cap)", "/v1/vectors/query_metadata", {"index_name": "t1", "filters": {}, "top_k": 0}, None),
        ("query_metadata, $regex", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {"title": {"$regex": "^INV-2\\d{3}$"}}}, None),
        ("query_metadata, $contains", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {"title": {"$contains": "NV-20"}}}, None),
        ("query_metadata, order_by name, descending", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "order_by": "date", "ascending": False, "top_k": 3}, None),
        ("query_metadata, order_by {field: 1}", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "order_by": {"date": 1}}, None),
        ("query_metadata, order_by two fields", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "order_by": {"date": -1, "n": 1}}, None),
        ("query_metadata, an unindexed field", "/v1/vectors/query_metadata", {"index_name": "t1", "filters": {"raw": 1}}, None),
        ("query_metadata, $regex off a pattern field", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {"date": {"$regex": "1"}}}, None),
        ("query_metadata, text", "/v1/vectors/query_metadata", {"index_name": "t1", "filters": {}, "text": "overdue refund"}, None),
        ("query_metadata, text, all terms", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "text": "overdue refund", "require_all_terms": True}, None),
        ("query_metadata, text and a filter", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {"n": {"$gte": 1}}, "text": "refund"}, None),
        ("query_metadata, text with order_by", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "text": "refund", "order_by": "date"}, None),
        ("query_metadata, a field that is no text field", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "text": "refund", "text_fields": ["title"]}, None),
        ("query_metadata, weights not one per field", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "text": "refund", "text_fields": ["body"], "text_field_weights": [1, 2]}, None),
        ("query_metadata, empty text", "/v1/vectors/query_metadata", {"index_name": "t1", "filters": {}, "text": ""}, None),
        ("query_metadata, text_fields without text", "/v1/vectors/query_metadata",
         {"index_name": "t1", "filters": {}, "text_fields": ["body"]},
         "400 instead of ignoring it: a text option without text changes nothing, so it is refused"),
        ("hybrid query", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "text": "overdue refund"}, None),
        ("hybrid query, every knob", "/v1/vectors/query",
         {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "text": "overdue refund", "alpha": 0.3, "rrf_k": 10,
          "window_mult": 2, "require_all_terms": False, "text_fields": ["body"], "text_field_weights": [2], "include": ["metadata"]}, None),
        ("hybrid batch", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[:2], "top_k": 10, "text": "overdue"}, None),
        ("alpha without text", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[0], "alpha": 0.3}, None),
        ("alpha out of range", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[0], "text": "x", "alpha": 1.5}, None),
        ("window_mult 0", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[0], "text": "x", "window_mult": 0}, None),
        ("rrf_k 0", "/v1/vectors/query", {"index_name": "t1", "query_vectors": V[0], "text": "x", "rrf_k": 0},
         "200 instead of 400: the core's fusion takes rrf_k >= 0 (1 / rank at 0); CyborgDB wants > 0"),
        ("$contains filter on a vector query", "/v1/vectors/query",
         {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "filters": {"title": {"$contains": "INV"}}}, None),
        ("$nor filter", "/v1/vectors/query",
         {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "filters": {"$nor": [{"n": 1}]}}, None),
        ("$not over $or instead", "/v1/vectors/query",
         {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "filters": {"$not": {"$or": [{"n": 1}]}}}, None),
        ("filter on an unindexed field, vector query", "/v1/vectors/query",
         {"index_name": "t1", "query_vectors": V[0], "top_k": 10, "filters": {"raw": {"$gte": 2}}}, None),
        ("create without text fields", "/v1/indexes/create", {"index_name": "t2", "dimension": 4}, None),
        ("upsert there", "/v1/vectors/upsert", {"index_name": "t2", "items": TEXT_ITEMS}, None),
        ("hybrid query without a text field", "/v1/vectors/query", {"index_name": "t2", "query_vectors": V[0], "text": "overdue"}, None),
        ("query_metadata text without a text field", "/v1/vectors/query_metadata", {"index_name": "t2", "text": "overdue"}, None),
        ("describe without text fields", "/v1/indexes/describe", {"index_name": "t2"}, None),
        ("create float16", "/v1/indexes/create", {"index_name": "t3", "dimension": 4, "storage_precision": "float16"}, None),
        ("create int8", "/v1/indexes/create", {"index_name": "t4", "dimension": 4, "storage_precision": "int8"},
         "200 instead of 422: int8 is a ciphervec tier (CyborgDB's enum lacks it)"),
        ("create float64", "/v1/indexes/create", {"index_name": "t5", "dimension": 4, "storage_precision": "float64"},
         "400 instead of 422: the core names the tiers (both are the SDK's ValidationError)"),
        ("BM25 parameters without a text field", "/v1/indexes/create", {"index_name": "t6", "dimension": 4, "bm25_k1": 1.0}, None),
        ("text_fields [contents]", "/v1/indexes/create", {"index_name": "t7", "dimension": 4, "text_fields": ["contents"]}, None),
        ("schema: pattern without filterable", "/v1/indexes/create",
         {"index_name": "t8", "dimension": 4, "metadata_schema": {"a": {"pattern": True, "filterable": False}}},
         "400 instead of 422: the core reads the schema (both are the SDK's ValidationError)"),
        ("schema and text_fields agree", "/v1/indexes/create",
         {"index_name": "t9", "dimension": 4, "metadata_schema": {"a": {"full_text": True}}, "text_fields": ["a"]}, None),
        ("schema and text_fields disagree", "/v1/indexes/create",
         {"index_name": "t10", "dimension": 4, "metadata_schema": {"a": {"full_text": False}}, "text_fields": ["a"]}, None),
        ("features without a dimension", "/v1/indexes/create",
         {"index_name": "t11", "metadata_schema": {"a": {"pattern": True}}, "text_fields": ["b"]}, None),
        ("describe them before the first upsert", "/v1/indexes/describe", {"index_name": "t11"}, None),
        ("schema: an unknown setting", "/v1/indexes/create",
         {"index_name": "t12", "dimension": 4, "metadata_schema": {"a": {"bogus": True}}},
         "400 instead of 422: the core reads the schema (both are the SDK's ValidationError)"),
    ]
]


def shape(body):
    """What is compared of an answer beyond its status: the keys of an object, the ids of
    results (as sets), and whether an error carries a detail."""
    if not isinstance(body, dict):
        return type(body).__name__
    if "results" in body and isinstance(body["results"], list):
        rows = body["results"]
        if rows and isinstance(rows[0], list):
            return ("batch", [shape({"results": r}) for r in rows])
        rows = [r for r in rows if isinstance(r, dict)]
        # Whether hits carry a score (text and hybrid) is part of the answer.
        return ("results", sorted(r.get("id") for r in rows), any("score" in r for r in rows))
    if "metadata_schema" in body:
        # describe: what both report of the index (analyzer names differ by design).
        bm25 = body.get("bm25") and {k: body["bm25"][k] for k in ("k1", "b")}
        return ("describe", body.get("dimension"), body.get("metric"), body.get("is_trained"),
                body.get("metadata_schema"), bm25)
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
                # An ordered listing is compared in order.
                if same and a[0] == 200 and isinstance(body, dict) and body.get("order_by") is not None:
                    same = a[1].get("ids") == b[1].get("ids")
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
