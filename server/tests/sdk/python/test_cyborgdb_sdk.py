"""CyborgDB's own Python SDK (cyborgdb==0.18.0, unchanged) against `ciphervec serve`.

Every answer is checked against an oracle: brute force over the same vectors with numpy, a
metadata-filter evaluator, or what was written.
"""

import base64
import json
import uuid
import urllib.error
import urllib.request

import numpy as np
import pytest

import cyborgdb
from cyborgdb import (
    AuthenticationError,
    ConflictError,
    CyborgDBError,
    NotFoundError,
    ValidationError,
)

DIM = 16
N = 400


def _name(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _raw(serve, path, body=None, key=None, method=None):
    """A raw HTTP call, as a cURL user makes it: (status, parsed body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(serve.url + path, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    if key is not False:
        req.add_header("X-API-Key", key or serve.api_key)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def client(serve):
    return cyborgdb.Client(serve.url, serve.api_key)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20261207)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N)]
    metadata = [{"n": i, "group": ["red", "green", "blue"][i % 3], "even": i % 2 == 0} for i in range(N)]
    contents = [f"contents of document {i}" for i in range(N)]
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    return ids, vectors, metadata, contents, queries


@pytest.fixture(scope="module")
def filled(client, data):
    """An index filled half through JSON upsert (dicts) and half through binary upsert."""
    ids, vectors, metadata, contents, _ = data
    key = cyborgdb.Client.generate_key()
    index = client.create_index(_name("filled"), key, dimension=DIM)
    half = N // 2
    index.upsert([
        {"id": ids[i], "vector": vectors[i], "metadata": metadata[i], "contents": contents[i]}
        for i in range(half)
    ])
    index.upsert_binary(ids[half:], vectors[half:], metadata=metadata[half:], contents=contents[half:])
    yield index, key
    index.delete_index()


def brute_force(vectors, ids, q, k, keep=None):
    d = np.sqrt(((vectors - q) ** 2).sum(axis=1))
    order = [i for i in np.argsort(d, kind="stable") if keep is None or keep(i)]
    return [(ids[i], float(d[i])) for i in order[:k]]


def assert_hits(hits, expected):
    assert len(hits) == len(expected)
    got_d = [h["distance"] for h in hits]
    want_d = [d for _, d in expected]
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    # Ids must agree wherever distances are not tied.
    for h, (i, d) in zip(hits, expected):
        if sum(abs(d - w) < 1e-5 for w in want_d) == 1:
            assert h["id"] == i


def matches(meta, flt):
    for field, cond in flt.items():
        if field == "$or":
            if not any(matches(meta, f) for f in cond):
                return False
            continue
        value = meta.get(field)
        if not isinstance(cond, dict):
            cond = {"$eq": cond}
        for op, arg in cond.items():
            ok = {
                "$eq": lambda: value == arg,
                "$ne": lambda: value != arg,
                "$gt": lambda: value is not None and value > arg,
                "$gte": lambda: value is not None and value >= arg,
                "$lt": lambda: value is not None and value < arg,
                "$lte": lambda: value is not None and value <= arg,
                "$in": lambda: value in arg,
                "$nin": lambda: value not in arg,
            }[op]()
            if not ok:
                return False
    return True


# --- lifecycle -------------------------------------------------------------------------


def test_health_and_list(client, filled):
    health = client.get_health()
    assert health["status"] == "healthy"
    assert filled[0].index_name in client.list_indexes()


def test_create_with_hex_key_over_curl_then_load_with_the_sdk(serve, client, data):
    ids, vectors, *_ = data
    key = cyborgdb.Client.generate_key()
    name = _name("curl")
    # The documented call: no dimension, the key as 64 hex digits.
    status, body = _raw(serve, "/v1/indexes/create", {"index_name": name, "index_key": key.hex()})
    assert status == 200, body
    index = client.load_index(name, key)
    assert index.dimension == 0
    index.upsert(ids[:10], vectors[:10])
    assert index.dimension == DIM
    assert sorted(index.list_ids()) == sorted(ids[:10])
    index.delete_index()
    assert name not in client.list_indexes()


def test_describe_properties(client):
    key = cyborgdb.Client.generate_key()
    index = client.create_index(_name("desc"), key, dimension=DIM, metric="cosine")
    try:
        assert index.dimension == DIM
        assert index.metric == "cosine"
        assert index.is_trained() is False
        assert index.n_lists == 1
        assert index.metadata_schema == {}
        assert index.bm25 is None
    finally:
        index.delete_index()


def test_train_and_is_training(client, data):
    ids, vectors, _, _, queries = data
    key = cyborgdb.Client.generate_key()
    index = client.create_index(_name("train"), key, dimension=DIM)
    try:
        index.upsert(ids, vectors)
        assert index.is_training() is False
        index.train(n_lists=8, max_iters=10)
        assert index.is_trained() is True
        assert index.n_lists == 8
        assert index.is_training() is False
        # Every list probed: a trained IVF index answers exactly.
        for q in queries:
            assert_hits(index.query(query_vectors=q, top_k=10, n_probes=8),
                        brute_force(vectors, ids, q, 10))
    finally:
        index.delete_index()


# --- upsert and query ------------------------------------------------------------------


def test_single_batch_and_binary_queries_match_brute_force(filled, data):
    index, _ = filled
    ids, vectors, _, _, queries = data
    # A flat list: one query (JSON path).
    assert_hits(index.query(query_vectors=queries[0].tolist(), top_k=10),
                brute_force(vectors, ids, queries[0], 10))
    # A list of lists: a batch (JSON path).
    batch = index.query(query_vectors=[q.tolist() for q in queries], top_k=5)
    assert len(batch) == len(queries)
    for q, hits in zip(queries, batch):
        assert_hits(hits, brute_force(vectors, ids, q, 5))
    # numpy arrays go through query_binary: 1-D is one query, 2-D a batch.
    assert_hits(index.query(query_vectors=queries[1], top_k=7), brute_force(vectors, ids, queries[1], 7))
    batch = index.query(query_vectors=queries, top_k=7)
    for q, hits in zip(queries, batch):
        assert_hits(hits, brute_force(vectors, ids, q, 7))
    # A vector finds itself first.
    assert index.query(query_vectors=vectors[123], top_k=1)[0]["id"] == ids[123]


def test_filters_and_include(filled, data):
    index, _ = filled
    ids, vectors, metadata, _, queries = data
    for flt in [
        {"group": "red"},
        {"n": {"$lt": 50}},
        {"n": {"$gte": 100, "$lt": 180}, "even": True},
        {"group": {"$in": ["green", "blue"]}, "n": {"$gt": 300}},
        {"$or": [{"group": "red"}, {"n": {"$lte": 3}}]},
    ]:
        hits = index.query(query_vectors=queries[2], top_k=N, filters=flt, include=["metadata", "distance"])
        expected = brute_force(vectors, ids, queries[2], N, keep=lambda i: matches(metadata[i], flt))
        assert_hits(hits, expected)
        for h in hits:
            assert matches(h["metadata"], flt)
    # The binary path filters the same.
    flt = {"n": {"$lt": 50}}
    got = {h["id"] for h in index.query(query_vectors=queries[3], top_k=N, filters=flt)}
    assert got == {ids[i] for i in range(50)}


def test_get_returns_what_was_written(filled, data):
    index, _ = filled
    ids, vectors, metadata, contents, _ = data
    asked = [ids[250], "no-such-id", ids[3]]
    got = index.get(asked)
    assert [g["id"] for g in got] == [ids[250], ids[3]]
    for g, i in zip(got, [250, 3]):
        np.testing.assert_array_equal(np.asarray(g["vector"], dtype=np.float32), vectors[i])
        assert g["metadata"] == metadata[i]
        # Contents come back as base64 of the stored bytes (API.md, Wave 3).
        assert base64.b64decode(g["contents"]).decode() == contents[i]
    only = index.get([ids[5]], include=["metadata"])[0]
    assert only == {"id": ids[5], "metadata": metadata[5]}


def test_delete_and_list_ids(client, data):
    ids, vectors, *_ = data
    index = client.create_index(_name("del"), cyborgdb.Client.generate_key(), dimension=DIM)
    try:
        index.upsert(ids[:50], vectors[:50])
        index.delete(ids[:10])
        assert sorted(index.list_ids()) == sorted(ids[10:50])
        hit = index.query(query_vectors=vectors[0], top_k=1)[0]
        assert hit["id"] != ids[0]
    finally:
        index.delete_index()


def test_num_vectors_over_raw_http(serve, filled):
    index, key = filled
    status, body = _raw(serve, "/v1/vectors/num_vectors", {"index_name": index.index_name, "index_key": key.hex()})
    assert status == 200 and body["result"] == N


def test_hybrid_text_query_on_contents(client, data):
    ids, vectors, _, _, queries = data
    index = client.create_index(_name("hybrid"), cyborgdb.Client.generate_key(), dimension=DIM,
                                text_fields=["contents"])
    try:
        words = ["apple", "banana", "cherry", "grape"]
        index.upsert([
            {"id": ids[i], "vector": vectors[i], "contents": f"{words[i % 4]} number {i}"}
            for i in range(100)
        ])
        hits = index.query(query_vectors=queries[0], text="cherry", top_k=10)
        assert hits and all("score" in h and "distance" not in h for h in hits)
        # Pure text leg (alpha 0): every hit holds the word.
        text_hits = index.query(query_vectors=queries[0], text="cherry", alpha=0.0, top_k=25)
        assert {h["id"] for h in text_hits} == {ids[i] for i in range(100) if i % 4 == 2}
        # Pure vector leg (alpha 1): the vector ranking.
        vector_ids = [h["id"] for h in index.query(query_vectors=queries[0], top_k=10)]
        fused = [h["id"] for h in index.query(query_vectors=queries[0], text="cherry", alpha=1.0, top_k=10)]
        assert fused == vector_ids
    finally:
        index.delete_index()


BODY_WORDS = ["apple", "banana", "cherry", "grape", "melon"]


@pytest.fixture(scope="module")
def texts(client, data):
    """An index with a pattern field `title`, an unindexed field `raw`, a metadata text
    field `body` (two words) and the contents as a text field (one other word)."""
    ids, vectors, metadata, _, _ = data
    key = cyborgdb.Client.generate_key()
    index = client.create_index(
        _name("texts"), key, dimension=DIM,
        metadata_schema={"title": {"pattern": True}, "raw": {"filterable": False}},
        text_fields=["body", "contents"], bm25_k1=1.1, bm25_b=0.6)
    meta = [
        {**metadata[i], "title": (f"INV-{i}" if i % 2 == 0 else f"memo-{i}"), "raw": i,
         "body": f"{BODY_WORDS[i % 5]} {BODY_WORDS[(i // 5) % 5]}"}
        for i in range(100)
    ]
    contents = [f"note {['kiwi', 'lemon', 'mango'][i % 3]}" for i in range(100)]
    index.upsert([
        {"id": ids[i], "vector": vectors[i], "metadata": meta[i], "contents": contents[i]}
        for i in range(100)
    ])
    yield index, meta, contents
    index.delete_index()


def _body_has(meta, word):
    return word in meta["body"].split()


def test_describe_reports_the_schema_and_bm25(texts):
    index, _, _ = texts
    schema = index.metadata_schema
    assert schema["title"] == {"filterable": True, "pattern": True, "full_text": False}
    assert schema["raw"] == {"filterable": False, "pattern": False, "full_text": False}
    assert schema["body"] == {"filterable": False, "pattern": False, "full_text": True}
    assert schema["contents"]["full_text"] is True
    bm25 = index.bm25
    assert bm25["k1"] == pytest.approx(1.1) and bm25["b"] == pytest.approx(0.6)


def test_query_metadata_with_and_without_text(texts, data):
    index, meta, contents = texts
    ids = data[0][:100]
    rows = index.query_metadata(filters={"group": "red"})
    assert {r["id"] for r in rows} == {ids[i] for i in range(100) if meta[i]["group"] == "red"}
    assert all(set(r) == {"id"} for r in rows)
    assert len(index.query_metadata()) == 100
    ordered = index.query_metadata(filters={"n": {"$lt": 20}}, order_by="n", ascending=False, top_k=5)
    assert [r["id"] for r in ordered] == [ids[i] for i in (19, 18, 17, 16, 15)]
    # The MongoDB-style form: its sign wins.
    ordered = index.query_metadata(order_by={"n": -1}, top_k=3)
    assert [r["id"] for r in ordered] == [ids[i] for i in (99, 98, 97)]
    # $regex and $contains on a pattern field.
    rows = index.query_metadata(filters={"title": {"$regex": "^INV-1\\d$"}})
    assert {r["id"] for r in rows} == {ids[i] for i in range(10, 20, 2)}
    rows = index.query_metadata(filters={"title": {"$contains": "mo-3"}})
    assert {r["id"] for r in rows} == {ids[i] for i in range(100) if "mo-3" in meta[i]["title"]}
    # Text: the items holding the word, best first, with scores.
    scored = index.query_metadata(text="cherry", text_fields=["body"])
    assert {r["id"] for r in scored} == {ids[i] for i in range(100) if _body_has(meta[i], "cherry")}
    scores = [r["score"] for r in scored]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    both = index.query_metadata(text="apple banana", require_all_terms=True)
    assert {r["id"] for r in both} == {
        ids[i] for i in range(100) if _body_has(meta[i], "apple") and _body_has(meta[i], "banana")}
    # A weight of 0 leaves a field out: only the contents are searched then.
    rows = index.query_metadata(text="lemon apple", text_fields=["body", "contents"],
                                text_field_weights=[0.0, 1.0])
    assert {r["id"] for r in rows} == {ids[i] for i in range(100) if contents[i].endswith("lemon")}
    # A filter narrows the text hits.
    rows = index.query_metadata(text="apple", filters={"group": "blue"})
    assert {r["id"] for r in rows} == {
        ids[i] for i in range(100) if _body_has(meta[i], "apple") and meta[i]["group"] == "blue"}


def test_query_metadata_refusals_are_validation_errors(texts, client):
    index, _, _ = texts
    for kwargs in [
        {"filters": {"raw": 3}},                        # not filterable in the schema
        {"filters": {"group": {"$regex": "^r"}}},       # no pattern dictionary
        {"text": "apple", "order_by": "n"},            # as CyborgDB's service
        {"text": "apple", "text_fields": ["title"]},    # not a text field
        {"text": "apple", "text_fields": ["body"], "text_field_weights": [1.0, 2.0]},
        {"text_fields": ["body"]},                      # a text option without text
    ]:
        with pytest.raises(ValidationError):
            index.query_metadata(**kwargs)
    plain = client.create_index(_name("plain"), cyborgdb.Client.generate_key(), dimension=DIM)
    try:
        plain.upsert([{"id": "a", "vector": np.ones(DIM, dtype=np.float32), "contents": "apple"}])
        with pytest.raises(ValidationError):
            plain.query_metadata(text="apple")
        with pytest.raises(ValidationError):
            plain.query(query_vectors=np.ones(DIM, dtype=np.float32), text="apple")
    finally:
        plain.delete_index()


def test_hybrid_knobs_over_metadata_text_fields(texts, data):
    index, meta, contents = texts
    ids, vectors, _, _, queries = data
    ids, vectors = ids[:100], vectors[:100]
    # Pure text leg over the metadata text field only.
    hits = index.query(query_vectors=queries[0], text="melon", text_fields=["body"], alpha=0.0, top_k=100)
    assert {h["id"] for h in hits} == {ids[i] for i in range(100) if _body_has(meta[i], "melon")}
    hits = index.query(query_vectors=queries[0], text="grape apple", require_all_terms=True,
                       alpha=0.0, top_k=100)
    assert {h["id"] for h in hits} == {
        ids[i] for i in range(100) if _body_has(meta[i], "grape") and _body_has(meta[i], "apple")}
    hits = index.query(query_vectors=queries[0], text="mango melon", text_fields=["body", "contents"],
                       text_field_weights=[0.0, 2.0], alpha=0.0, top_k=100)
    assert {h["id"] for h in hits} == {ids[i] for i in range(100) if contents[i].endswith("mango")}
    # Fused: every knob accepted; alpha 1 is the vector ranking (brute force); a batch and
    # the binary path answer per row.
    fused = index.query(query_vectors=queries[1], text="cherry", alpha=1.0, rrf_k=10, window_mult=4, top_k=10)
    assert [h["id"] for h in fused] == [i for i, _ in brute_force(vectors, ids, queries[1], 10)]
    rows = index.query(query_vectors=queries[:3], text="cherry kiwi", alpha=0.4, top_k=5)
    assert len(rows) == 3 and all(len(r) == 5 and all("score" in h for h in r) for r in rows)
    for bad in [{"alpha": 1.5}, {"window_mult": 0}]:
        with pytest.raises(ValidationError):
            index.query(query_vectors=queries[0], text="cherry", **bad)
    with pytest.raises(ValidationError):
        index.query(query_vectors=queries[0], alpha=0.5)


def test_regex_and_contains_filter_vector_queries(texts, data):
    index, meta, _ = texts
    ids, vectors, _, _, queries = data
    ids, vectors = ids[:100], vectors[:100]
    for flt, keep in [
        ({"title": {"$regex": "^memo-[1-3]"}}, lambda m: m["title"].startswith(("memo-1", "memo-2", "memo-3"))),
        # `group` has no pattern dictionary: a vector query still evaluates it on each candidate.
        ({"group": {"$contains": "ee"}}, lambda m: "ee" in m["group"]),
    ]:
        hits = index.query(query_vectors=queries[2], top_k=100, filters=flt, include=["distance"])
        assert_hits(hits, brute_force(vectors, ids, queries[2], 100, keep=lambda i: keep(meta[i])))


def test_storage_precisions(serve, client, data):
    ids, vectors, *_ = data
    for tier, tolerance in [("float32", 0.0), ("float16", 2.0 ** -11 * 4)]:
        index = client.create_index(_name(tier), cyborgdb.Client.generate_key(), dimension=DIM,
                                    storage_precision=tier)
        try:
            index.upsert(ids[:20], vectors[:20])
            got = np.asarray(index.get([ids[4]], include=["vector"])[0]["vector"], dtype=np.float32)
            worst = float(np.abs(got - vectors[4]).max())
            assert worst <= tolerance * max(1.0, float(np.abs(vectors[4]).max()))
            if tolerance:
                assert worst > 0
            # The stored vector is what queries measure against: itself at distance 0.
            hit = index.query(query_vectors=got, top_k=1, include=["distance"])[0]
            assert hit["id"] == ids[4] and hit["distance"] == pytest.approx(0.0, abs=1e-5)
        finally:
            index.delete_index()
    # int8 is ciphervec's own tier (the SDK's model lists CyborgDB's): over raw HTTP.
    name = _name("int8")
    key = cyborgdb.Client.generate_key()
    status, body = _raw(serve, "/v1/indexes/create",
                        {"index_name": name, "index_key": key.hex(), "dimension": DIM, "storage_precision": "int8"})
    assert status == 200, body
    status, body = _raw(serve, "/v1/indexes/describe", {"index_name": name, "index_key": key.hex()})
    assert body["storage_precision"] == "int8"
    client.load_index(name, key).delete_index()
    for tier in ["tq8", "tq4"]:
        with pytest.raises(ValidationError) as e:
            client.create_index(_name("tq"), cyborgdb.Client.generate_key(), dimension=DIM, storage_precision=tier)
        assert "TurboQuant" in str(e.value)


def test_users_read_and_write(serve, client, data):
    ids, vectors, *_ = data
    index = client.create_index(_name("users"), cyborgdb.Client.generate_key(), dimension=DIM)
    try:
        index.upsert(ids[:20], vectors[:20])
        reader = index.create_user(["read"])
        writer = index.create_user(["read", "write"])
        as_reader = cyborgdb.Client(serve.url, reader["api_key"]).load_index(index.index_name)
        assert as_reader.query(query_vectors=vectors[0], top_k=1)[0]["id"] == ids[0]
        with pytest.raises(AuthenticationError):
            as_reader.upsert(ids[20:21], vectors[20:21])
        as_writer = cyborgdb.Client(serve.url, writer["api_key"]).load_index(index.index_name)
        as_writer.upsert(ids[20:21], vectors[20:21])
        assert ids[20] in index.list_ids()
        listed = {u["user_id"]: u["permissions"] for u in index.list_users()}
        assert listed == {reader["user_id"]: ["read"], writer["user_id"]: ["read", "write"]}
        with pytest.raises(ValidationError):
            index.create_user(["write"])
        with pytest.raises(AuthenticationError) as e:
            as_writer.create_user(["read"])
        assert e.value.status_code == 403
        index.delete_user(reader["user_id"])
        with pytest.raises(AuthenticationError):
            cyborgdb.Client(serve.url, reader["api_key"]).load_index(index.index_name)
        with pytest.raises(AuthenticationError):
            as_reader.query(query_vectors=vectors[0], top_k=1)
        assert as_writer.query(query_vectors=vectors[20], top_k=1)[0]["id"] == ids[20]
        assert [u["user_id"] for u in index.list_users()] == [writer["user_id"]]
    finally:
        index.delete_index()


# --- errors ----------------------------------------------------------------------------


def test_every_error_class_the_sdk_maps(serve, client, filled, data):
    index, key = filled
    ids, vectors, *_ = data
    # A wrong API key; no API key.
    with pytest.raises(AuthenticationError) as e:
        cyborgdb.Client(serve.url, "not-the-service-key-000").list_indexes()
    assert e.value.status_code == 401
    # A wrong index key.
    with pytest.raises(AuthenticationError) as e:
        client.load_index(index.index_name, cyborgdb.Client.generate_key())
    assert e.value.status_code == 401
    # No such index.
    with pytest.raises(NotFoundError):
        client.load_index(_name("missing"), key)
    # An existing name.
    with pytest.raises(ConflictError):
        client.create_index(index.index_name, key, dimension=DIM)
    # Bad input: a wrong dimension, a bad filter, an unknown include field, a precision tier
    # ciphervec lacks, an embedding model.
    with pytest.raises(ValidationError):
        index.upsert([{"id": "x", "vector": [1.0, 2.0]}])
    with pytest.raises(ValidationError):
        index.query(query_vectors=vectors[0], filters={"n": {"$bogus": 1}})
    with pytest.raises(ValidationError) as e:
        index.get([ids[0]], include=["bogus"])
    assert "bogus" in e.value.detail
    with pytest.raises(ValidationError):
        client.create_index(_name("tq"), cyborgdb.Client.generate_key(), dimension=DIM, storage_precision="tq8")
    with pytest.raises(ValidationError):
        client.create_index(_name("emb"), cyborgdb.Client.generate_key(), embedding_model="all-MiniLM-L6-v2")
    with pytest.raises(ValidationError) as e:
        index.query(query_vectors=vectors[0], top_k=5000, rerank_mult=4)
    assert "10000" in str(e.value) and "rerank_mult" in str(e.value)


def test_the_server_log_holds_no_key_or_data(serve, filled, data):
    index, key = filled
    ids, _, metadata, contents, _ = data
    logs = serve.logs()
    assert "request" in logs
    for secret in [key.hex(), base64.b64encode(key).decode(), serve.api_key, ids[7], contents[7],
                   index.index_name]:
        assert secret not in logs
