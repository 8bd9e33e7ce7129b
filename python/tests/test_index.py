"""The Python API against oracles: numpy brute force, a Python filter evaluator, the folder's
bytes. Mirrors what tests/api proves for the Rust API."""

import json
import multiprocessing
import os
import threading

import numpy as np
import pytest

import ciphervec as cv
from ciphervec import _native

DIM = 16


def data(n=500, seed=1, dim=DIM):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((8, dim)).astype(np.float32) * 3
    return (centers[rng.integers(0, 8, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def brute_force(base, q, k, metric="euclidean"):
    if metric == "euclidean":
        d = np.sqrt(((base.astype(np.float64) - q) ** 2).sum(1))
    elif metric == "squared_euclidean":
        d = ((base.astype(np.float64) - q) ** 2).sum(1)
    elif metric == "cosine":
        b = base.astype(np.float64)
        d = 1 - b @ q / (np.linalg.norm(b, axis=1) * np.linalg.norm(q))
    elif metric == "inner_product":
        d = -(base.astype(np.float64) @ q)
    else:
        raise AssertionError(f"no reference distance for metric {metric!r}")
    order = np.argsort(d, kind="stable")[:k]
    return [(int(i), float(d[i])) for i in order]


def assert_exact(hits, want):
    assert len(hits) == len(want)
    for h, (i, d) in zip(hits, want):
        assert abs(h["distance"] - d) <= 1e-3 * max(1.0, abs(d))
    assert [h["id"] for h in hits][:3] == [str(i) for i, _ in want][:3]


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "db"


def make(folder=None, n=500, **kwargs):
    key = cv.generate_key()
    client = cv.Client(str(folder)) if folder else cv.Client()
    index = client.create_index("docs", key, dimension=kwargs.pop("dimension", DIM), **kwargs)
    base = data(n)
    index.upsert([str(i) for i in range(n)], base)
    return client, key, index, base


@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine", "inner_product"])
def test_exact_before_training_and_close_after(metric):
    _, _, index, base = make(metric=metric)
    assert not index.is_trained()
    for qi in range(0, 500, 50):
        assert_exact(index.query(base[qi], top_k=5), brute_force(base, base[qi], 5, metric))
    index.train()
    assert index.is_trained()
    # Probing every list is exact again.
    for qi in range(0, 500, 50):
        hits = index.query(base[qi], top_k=5, n_probes=10_000)
        assert_exact(hits, brute_force(base, base[qi], 5, metric))


@pytest.mark.parametrize("index_type", ["ivf_flat", "ivf_sq8", "ivf_pq"])
def test_lifecycle(index_type):
    _, _, index, base = make(index_type=index_type)
    assert (index.name, index.dimension, len(index)) == ("docs", DIM, 500)
    assert index.list_ids() == sorted(str(i) for i in range(500))
    index.train(n_lists=8, max_iters=5)
    assert index.delete(["3", "4", "nope"]) == 2
    assert len(index) == 498
    assert index.get(["3"]) == []
    # get keeps the order given and skips unknown ids.
    assert [r["id"] for r in index.get(["9", "missing", "1", "5"])] == ["9", "1", "5"]
    hits = index.query(base[10], top_k=1, n_probes=10_000)
    assert hits[0]["id"] == "10"
    index.compact()
    index.rotate_data_key()
    report = index.verify()
    assert report["segments"] >= 1 and report["records"] > 1 and report["bytes"] > 0
    assert index.query(base[10], top_k=1, n_probes=10_000)[0]["id"] == "10"


@pytest.mark.parametrize("dimension", [30, 18, 13])
def test_ivf_pq_by_default_fits_any_dimension(dimension):
    # The default subquantizers divide the dimension (d / 4 would not here).
    index = cv.Client().create_index("pq", cv.generate_key(), dimension=dimension,
                                     index_type="ivf_pq")
    base = np.random.default_rng(3).standard_normal((400, dimension)).astype(np.float32)
    index.upsert([str(i) for i in range(400)], base)
    index.train(n_lists=4)
    for qi in (7, 123, 399):
        assert index.query(base[qi], top_k=1, n_probes=10_000)[0]["id"] == str(qi)


def test_refine_bits_give_the_same_answers_with_codes_only(folder):
    # 6-bit (default) and 8-bit refine codes: a codes-only index (cache budget 0), which
    # re-ranks by decrypting vectors in the order of the refine codes' bounds, answers exactly
    # as the same index with its vectors in RAM; probing every list and re-ranking every
    # candidate gives brute force.
    base = data(800)
    key = cv.generate_key()
    client = cv.Client(str(folder))
    for name, bits in (("six", None), ("eight", 8)):
        extra = {} if bits is None else {"refine_bits": bits}
        index = client.create_index(name, key, dimension=DIM, index_type="ivf_pq", **extra)
        index.upsert([str(i) for i in range(800)], base)
        index.train(n_lists=8)
        del index
    codes_only = cv.Client(str(folder), cache_budget=0)
    for name in ("six", "eight"):
        resident = client.load_index(name, key, read_only=True)
        cold = codes_only.load_index(name, key, read_only=True)
        for qi in range(0, 800, 80):
            q = base[qi] + 0.01
            assert cold.query(q, top_k=10) == resident.query(q, top_k=10)
            full = cold.query(q, top_k=10, n_probes=8, rerank=1000)
            assert_exact(full, brute_force(base, q, 10))
    with pytest.raises(cv.InvalidArgumentError):
        client.create_index("bad", key, dimension=DIM, index_type="ivf_pq", refine_bits=7)
    with pytest.raises(cv.InvalidArgumentError):
        client.create_index("bad", key, dimension=DIM, refine_bits=8)
    assert sorted(client.list_indexes()) == ["eight", "six"]


def test_query_1d_gives_a_list_and_2d_a_list_per_row():
    _, _, index, base = make()
    one = index.query(base[0], top_k=3)
    assert isinstance(one, list) and isinstance(one[0], dict)
    many = index.query(base[:4], top_k=3)
    assert len(many) == 4 and all(len(h) == 3 for h in many)
    assert many[0] == one
    ids = index.query_ids(base[:4], top_k=3)
    assert ids.dtype == np.int64 and ids.shape == (4, 3)
    assert [str(i) for i in ids[0]] == [h["id"] for h in one]


def test_items_with_contents_and_metadata_round_trip():
    index = cv.Client().create_index("d", cv.generate_key(), dimension=3)
    index.upsert(
        [
            {"id": "a", "vector": [1, 0, 0], "contents": "text", "metadata": {"k": [1, {"x": None}]}},
            {"id": "b", "vector": np.array([0, 1, 0], dtype=np.float64), "contents": b"\x00\xff"},
            {"id": "c", "vector": (0.0, 0.0, 1.0)},
        ]
    )
    got = {r["id"]: r for r in index.get(["a", "b", "c"], include=["metadata", "contents", "vector"])}
    assert got["a"]["contents"] == b"text" and got["a"]["metadata"] == {"k": [1, {"x": None}]}
    assert got["b"]["contents"] == b"\x00\xff" and got["b"]["metadata"] is None
    assert got["c"]["contents"] is None and got["c"]["vector"] == [0.0, 0.0, 1.0]
    hit = index.query([1, 0, 0], top_k=1, include=["metadata", "contents"])[0]
    assert hit["id"] == "a" and hit["contents"] == b"text" and hit["metadata"]["k"][0] == 1


def matches(meta, flt):
    """A reference evaluator for the filter shapes used below."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(meta, c) for c in cond):
                return False
            continue
        if key == "$or":
            if not any(matches(meta, c) for c in cond):
                return False
            continue
        value = meta
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, arg in ops.items():
            ok = {
                "$eq": lambda v: v == arg,
                "$ne": lambda v: v != arg,
                "$gt": lambda v: v is not None and v > arg,
                "$lte": lambda v: v is not None and v <= arg,
                "$in": lambda v: v in arg,
            }[op](value)
            if not ok:
                return False
    return True


def test_filters_against_an_oracle():
    index = cv.Client().create_index("f", cv.generate_key(), dimension=DIM)
    base = data(600, seed=4)
    metas = [{"n": i % 10, "tag": ["red", "blue", "green"][i % 3], "deep": {"x": i % 4}} for i in range(600)]
    index.upsert(
        [{"id": str(i), "vector": v, "metadata": m} for i, (v, m) in enumerate(zip(base, metas))]
    )
    index.train()
    filters = [
        {"tag": "red"},
        {"n": {"$gt": 6}},
        {"deep.x": 2},
        {"$or": [{"tag": "blue"}, {"n": {"$lte": 1}}]},
        {"$and": [{"tag": {"$in": ["red", "green"]}}, {"deep.x": {"$ne": 0}}]},
    ]
    for flt in filters:
        allowed = [i for i, m in enumerate(metas) if matches(m, flt)]
        sub = base[allowed]
        for qi in (0, 123, 456):
            want = [(allowed[i], d) for i, d in brute_force(sub, base[qi], 5)]
            hits = index.query(base[qi], top_k=5, filters=flt, n_probes=10_000, include=["metadata"])
            assert all(matches(h["metadata"], flt) for h in hits)
            assert_exact(hits, want)
            # The same filter as JSON text (as the command line takes it).
            as_text = index.query(base[qi], top_k=5, filters=json.dumps(flt), n_probes=10_000)
            assert [h["id"] for h in as_text] == [h["id"] for h in hits]
    for bad in ("{not json", '"a string"', "[1]"):
        with pytest.raises(cv.InvalidFilterError):
            index.query(base[0], filters=bad)


def test_reopen_wrong_key_and_no_plaintext_in_the_folder(folder):
    client, key, index, base = make(folder)
    index.upsert([{"id": "secret-id-7", "vector": base[7], "contents": "confidential words",
                   "metadata": {"owner": "metadata-owner"}}])
    del index
    with pytest.raises(cv.WrongKeyError):
        client.load_index("docs", cv.generate_key())
    with pytest.raises(cv.IndexNotFoundError):
        client.load_index("other", key)
    with pytest.raises(cv.IndexExistsError):
        client.create_index("docs", key, dimension=DIM)
    reopened = cv.Client(folder).load_index("docs", key)
    assert len(reopened) == 501
    assert reopened.get(["secret-id-7"])[0]["contents"] == b"confidential words"
    assert cv.Client(folder).list_indexes() == ["docs"]
    blob = b"".join(
        open(os.path.join(r, f), "rb").read() for r, _, fs in os.walk(folder) for f in fs
    )
    for needle in (b"secret-id-7", b"confidential", b"metadata-owner", b"owner", key):
        assert needle not in blob
    for row in base[:50]:
        raw = row.tobytes()
        assert not any(raw[i : i + 16] in blob for i in range(0, len(raw) - 15, 16))


def test_writers_lock_readers_refresh_and_rollback_is_detected(folder, tmp_path):
    client, key, index, base = make(folder)
    with pytest.raises(cv.LockedError):
        cv.Client(folder).load_index("docs", key)
    reader = cv.Client(folder).load_index("docs", key, read_only=True)
    with pytest.raises(cv.ReadOnlyError):
        reader.delete(["1"])
    assert reader.refresh() is False
    backup = tmp_path / "backup"
    index.backup_to(str(backup))
    index.upsert(["new"], base[:1] + 1)
    assert reader.refresh() is True and len(reader) == 501
    anchor = index.anchor()
    index.check_anchor(anchor)
    old = cv.Client(backup).load_index("docs", key)
    with pytest.raises(cv.RolledBackError):
        old.check_anchor(anchor)
    with pytest.raises(cv.InvalidArgumentError):
        index.check_anchor("not an anchor")


def test_corruption_is_detected(folder):
    client, key, index, _ = make(folder)
    del index
    segments = [p for p in (folder / "docs").iterdir() if p.name.startswith("seg-")]
    raw = bytearray(segments[0].read_bytes())
    raw[len(raw) // 2] ^= 0x40
    segments[0].write_bytes(bytes(raw))
    with pytest.raises(cv.CorruptedError):
        client.load_index("docs", key)


def test_key_rotations(folder):
    client, key, index, base = make(folder)
    del index
    key2, key3 = cv.generate_key(), cv.generate_key()
    client.rotate_index_key("docs", key, key2)
    with pytest.raises(cv.WrongKeyError):
        client.load_index("docs", key)
    client.rotate_keys("docs", key2, key3)
    index = client.load_index("docs", key3)
    assert index.query(base[5], top_k=1)[0]["id"] == "5"
    del index
    client.delete_index("docs", key3)
    assert client.list_indexes() == []


def test_bad_input_raises_typed_errors_and_changes_nothing():
    _, _, index, base = make()
    bad = [
        (cv.DimensionMismatchError, lambda: index.query(base[0][:5])),
        (cv.DimensionMismatchError, lambda: index.upsert(["x"], np.zeros((1, 3), np.float32))),
        (cv.InvalidVectorError, lambda: index.upsert(["x"], np.full((1, DIM), np.nan, np.float32))),
        (cv.InvalidFilterError, lambda: index.query(base[0], filters={"$bogus": 1})),
        (cv.InvalidFilterError, lambda: index.query(base[0], filters={"a": float("nan")})),
        (cv.InvalidArgumentError, lambda: index.query(base[0], top_k=0)),
        # Negative counts are ValueErrors like zero ones, not Python's OverflowError.
        (cv.InvalidArgumentError, lambda: index.query(base[0], top_k=-1)),
        (cv.InvalidArgumentError, lambda: index.query(base[0], n_probes=-2)),
        (cv.InvalidArgumentError, lambda: index.query(base[0], rerank=-1)),
        (cv.InvalidArgumentError, lambda: index.query_text("x", top_k=-1)),
        (cv.InvalidArgumentError, lambda: index.query_ids(base[:2], top_k=-1)),
        (cv.InvalidArgumentError, lambda: index.train(n_lists=-1)),
        (cv.InvalidArgumentError, lambda: cv.Client(cache_budget=-1)),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=-3)),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=8, index_type="ivf_pq", pq_m=-2)),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=8, index_type="ivf_pq", refine_bits=-6)),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=8, index_type="ivf_pq", refine_bits=262)),
        (cv.InvalidVectorError, lambda: index.upsert(["x"], np.full((1, DIM), 1e30, np.float32))),
        (cv.InvalidArgumentError, lambda: index.query(base[0], include=["everything"])),
        (cv.InvalidArgumentError, lambda: index.upsert([{"id": "", "vector": base[0]}])),
        (cv.InvalidArgumentError, lambda: index.upsert([{"id": "x", "vector": base[0], "metadata": [1]}])),
        (cv.InvalidArgumentError, lambda: index.upsert(["a", "b"], base[:3])),
        # A misspelt key would drop what it holds; pq_m would be ignored by other types.
        (cv.InvalidArgumentError, lambda: index.upsert([{"id": "x", "vector": base[0], "content": b"lost"}])),
        (cv.InvalidArgumentError, lambda: index.upsert([{"id": "x", "vector": base[0], 7: 1}])),
        # Items are read as the library reads an item's JSON: a wrong type is a ValueError.
        (cv.InvalidArgumentError, lambda: index.upsert([{"id": "x", "vector": base[0], "contents": 5}])),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=8, pq_m=2)),
        (cv.InvalidArgumentError, lambda: index.query(np.zeros((2, 2, DIM), np.float32))),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", b"short", dimension=3)),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=3, metric="manhattan")),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("x", cv.generate_key(), dimension=3, index_type="hnsw")),
        (cv.InvalidArgumentError, lambda: cv.Client().create_index("../x", cv.generate_key(), dimension=3)),
        (cv.InvalidArgumentError, lambda: cv.Client("ftp://host/db")),
        (cv.InvalidArgumentError, lambda: cv.Client("s3://bucket/db")),  # wheel built without s3
        (TypeError, lambda: cv.Client().create_index("x", "0" * 64, dimension=3)),
        (TypeError, lambda: index.upsert(["x"], np.array([["a"] * DIM]))),
        (TypeError, lambda: index.upsert(["x"], np.array([[object()] * DIM]))),
        (TypeError, lambda: index.upsert([1, 2], base[:2])),
        (TypeError, lambda: index.upsert("not items")),
        (TypeError, lambda: index.delete("abc")),
        (TypeError, lambda: index.query(base[0], include=5)),
        (TypeError, lambda: index.query(base[0], top_k=2.5)),
    ]
    for kind, call in bad:
        with pytest.raises(kind):
            call()
    assert issubclass(cv.InvalidFilterError, ValueError) and issubclass(cv.UnavailableError, OSError)
    assert issubclass(cv.WrongKeyError, cv.CiphervecError)
    assert len(index) == 500 and index.query(base[3], top_k=1)[0]["id"] == "3"


def test_type_and_metric_names_are_case_insensitive():
    client = cv.Client()
    index = client.create_index("x", cv.generate_key(), dimension=8, index_type="IVF_PQ", metric="Cosine", pq_m=2)
    assert index.metric == "cosine" and index.index_type == "ivf_pq"


# The names the library reads (`IndexType::ALL`, `Metric::ALL`): the command line's tests walk
# the same lists (cli/tests/cli.rs), so both leaves take exactly these, and a new type or
# metric is tested here as soon as the library names it.
@pytest.mark.parametrize("index_type", _native.INDEX_TYPES)
@pytest.mark.parametrize("metric", _native.METRICS)
def test_every_type_and_metric_name_of_the_library(index_type, metric):
    client = cv.Client()
    index = client.create_index("x", cv.generate_key(), dimension=8, index_type=index_type, metric=metric)
    assert (index.index_type, index.metric) == (index_type, metric)
    base = data(60, dim=8)
    index.upsert([str(i) for i in range(60)], base)
    # Exact before training, as the brute force of the metric says.
    q = base[7] + 0.1
    assert_exact(index.query(q, top_k=5), brute_force(base, q, 5, metric))


@pytest.mark.parametrize("name", ["l2", "ip", "ivf-flat", "ivf_hnsw", "cosine ", ""])
def test_names_the_library_does_not_read_are_refused(name):
    with pytest.raises(cv.InvalidArgumentError):
        cv.Client().create_index("x", cv.generate_key(), dimension=8, metric=name)
    with pytest.raises(cv.InvalidArgumentError):
        cv.Client().create_index("x", cv.generate_key(), dimension=8, index_type=name)


def test_include_takes_one_name_or_several():
    _, _, index, base = make()
    index.upsert([{"id": "m", "vector": base[0], "metadata": {"a": 1}, "contents": b"text"}])
    one = index.query(base[0], top_k=1, include="metadata")
    several = index.query(base[0], top_k=1, include=["metadata"])
    assert one == several and one[0]["metadata"] == {"a": 1} and "contents" not in one[0]
    assert index.get(["m"], include="contents") == [{"id": "m", "contents": b"text"}]
    # The defaults: distance for queries, metadata and contents for get.
    assert set(index.query(base[0], top_k=1)[0]) == {"id", "distance"}
    assert set(index.get(["m"])[0]) == {"id", "metadata", "contents"}


def test_numpy_dtypes_and_layouts_give_the_same_answers():
    _, _, index, base = make()
    q = base[:6]
    want = index.query_ids(q, top_k=4)
    variants = {
        "float64": q.astype(np.float64),
        "fortran": np.asfortranarray(q),
        "strided rows": np.repeat(q, 2, axis=0)[::2],
        "strided columns": np.hstack([q, q])[:, :DIM],
        "list of lists": q.tolist(),
    }
    for name, variant in variants.items():
        assert (index.query_ids(variant, top_k=4) == want).all(), name
    ints = np.rint(q * 10).astype(np.int32)
    assert (index.query_ids(ints, top_k=4) == index.query_ids(ints.astype(np.float32), top_k=4)).all()
    # Upserting a converted batch stores the same vectors as the float32 one.
    other = cv.Client().create_index("o", cv.generate_key(), dimension=DIM)
    other.upsert([str(i) for i in range(500)], np.asfortranarray(base.astype(np.float64)))
    assert (other.query_ids(q, top_k=4) == want).all()


def test_threads_share_one_index():
    _, _, index, base = make()
    want = [index.query(base[i], top_k=3) for i in range(40)]
    errors = []

    def worker(offset):
        try:
            for i in range(offset, 40, 4):
                assert index.query(base[i], top_k=3) == want[i]
            index.upsert([f"t{offset}"], base[:1] + 1000)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(o,)) for o in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(index) == 504


def test_full_text_and_hybrid():
    index = cv.Client().create_index("t", cv.generate_key(), dimension=3, full_text=True)
    index.upsert(
        [
            {"id": "a", "vector": [1, 0, 0], "contents": "the quick brown fox"},
            {"id": "b", "vector": [0, 1, 0], "contents": "invoice INV2291 overdue", "metadata": {"t": 1}},
            {"id": "c", "vector": [0, 0, 1], "contents": "a lazy dog"},
        ]
    )
    hits = index.query_text("inv2291")
    assert [h["id"] for h in hits] == ["b"] and hits[0]["score"] > 0
    assert hits[0]["distance"] == -hits[0]["score"]
    hybrid = index.query([1, 0, 0], top_k=2, text="invoice")
    assert {h["id"] for h in hybrid} == {"a", "b"} and all("score" in h for h in hybrid)
    assert index.query_text("invoice", filters={"t": 2}) == []
    plain = cv.Client().create_index("p", cv.generate_key(), dimension=3)
    plain.upsert([{"id": "a", "vector": [1, 0, 0], "contents": "fox"}])
    with pytest.raises(cv.InvalidArgumentError):
        plain.query_text("fox")
    plain.enable_full_text()
    assert plain.full_text and plain.query_text("fox")[0]["id"] == "a"


def _forked_child(index, folder, key, queries, conn):
    """Runs in a child made by fork: what it may and may not do with inherited handles."""
    out = {"ids": [[h["id"] for h in hits] for hits in index.query(queries, top_k=5)]}
    for name, attempt in [
        ("upsert", lambda: index.upsert(["child"], queries[:1])),
        ("compact", index.compact),
        ("open", lambda: cv.Client(folder).load_index("docs", key)),
        ("delete_index", lambda: cv.Client(folder).delete_index("docs", key)),
    ]:
        try:
            attempt()
            out[name] = "ran"
        except cv.LockedError:
            out[name] = "locked"
    reader = cv.Client(folder, cache_budget=0).load_index("docs", key, read_only=True)
    out["reader_ids"] = [h["id"] for h in reader.query(queries[0], top_k=5)]
    conn.send(out)
    conn.recv()  # the parent wrote meanwhile
    out = {"refreshed": index.refresh(), "len": len(index)}
    out["verify"] = index.verify()["segments"] > 0
    conn.send(out)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_queries_and_refreshes_and_cannot_write(folder):
    # Python's multiprocessing forks on Linux (before 3.14): a child inherits the index
    # handles but not rayon's threads (a batch query there waited forever) nor the writer
    # lock (its writes would race the parent's).
    client, key, index, base = make(folder, index_type="ivf_pq", pq_m=4)
    index.train()
    queries = base[:40]
    expected = [[h["id"] for h in hits] for hits in index.query(queries, top_k=5)]
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(
        target=_forked_child, args=(index, str(folder), key, queries, child_end)
    )
    child.start()
    try:
        assert parent_end.poll(60), "the child did not answer"
        first = parent_end.recv()
        assert first["ids"] == expected
        assert first["reader_ids"] == expected[0]
        for refused in ("upsert", "compact", "open", "delete_index"):
            assert first[refused] == "locked", (refused, first)
        index.upsert([f"new-{i}" for i in range(10)], data(10, seed=9))
        parent_end.send("wrote")
        assert parent_end.poll(60), "the child did not answer"
        second = parent_end.recv()
        assert second == {"refreshed": True, "len": 510, "verify": True}
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert len(index) == 510
    assert index.verify()["segments"] > 0


def test_an_index_trains_itself_in_the_background_and_keeps_recall():
    import time

    key = cv.generate_key()
    client = cv.Client()
    index = client.create_index("auto", key, dimension=8)
    off = client.create_index("manual", key, dimension=8, auto_train=False)
    base = data(12_000, seed=3, dim=8)
    for start in range(0, len(base), 1_000):
        ids = [str(i) for i in range(start, start + 1_000)]
        index.upsert(ids, base[start : start + 1_000])
        off.upsert(ids, base[start : start + 1_000])
    status = index.training_status()
    assert status["auto_train"] and status["items"] == 12_000
    while index.is_training():  # polling, no time bound
        time.sleep(0.01)
    status = index.training_status()
    assert index.is_trained() and status["n_lists"] > 1
    assert status["trained_at_items"] >= 10_000 and not status["training"]
    assert status["background_trainings"] >= 1 and status["last_error"] is None
    # Recall@10 at the defaults against numpy brute force.
    found = 0
    for q in base[:50]:
        want = {str(i) for i, _ in brute_force(base, q, 10)}
        found += len(want & {h["id"] for h in index.query(q, top_k=10)})
    assert found / 500 >= 0.95
    # Turned off: never trained by itself, and says so.
    status = off.training_status()
    assert not off.is_training() and not off.is_trained()
    assert status["trained_at_items"] is None and status["next_training_at_items"] is None
    assert not status["auto_train"]
