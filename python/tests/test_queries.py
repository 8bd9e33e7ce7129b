"""Metadata listings, $regex/$contains, the metadata schema, BM25 over named fields and
storage precision through the Python API, against Python oracles (re, sorted, a BM25
written out, numpy's float16)."""

import math
import re
from collections import Counter

import numpy as np
import pytest

import ciphervec as cv

TEAMS = ["billing", "sales", "ops"]
WORDS = ["invoice", "refund", "overdue", "paid", "late", "notice", "credit", "memo"]


def documents(n=300, seed=3):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        d = {"title": f"INV-{rng.integers(1000, 4000)}" if rng.random() < 0.7 else "memo é"}
        if rng.random() < 0.8:
            d["team"] = TEAMS[rng.integers(0, 3)]
        r = rng.random()
        if r < 0.4:
            d["date"] = int(rng.integers(0, 100))
        elif r < 0.6:
            d["date"] = float(rng.integers(0, 100)) + 0.5
        elif r < 0.8:
            d["date"] = f"2026-{int(rng.integers(1, 13)):02d}"
        d["body"] = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), rng.integers(1, 12)))
        d["tags"] = [WORDS[j] for j in rng.integers(0, len(WORDS), rng.integers(0, 4))]
        docs.append(d)
    return docs


def make(docs, **kwargs):
    index = cv.Client().create_index("q", cv.generate_key(), dimension=4, **kwargs)
    rng = np.random.default_rng(1)
    index.upsert(
        [
            {"id": f"d{i:04d}", "vector": rng.standard_normal(4).astype(np.float32), "metadata": d}
            for i, d in enumerate(docs)
        ]
    )
    return index


SCHEMA = {"title": {"pattern": True}, "tags": {"pattern": True}, "raw": {"filterable": False}}


def order_key(value):
    """The documented order: numbers, then strings (by UTF-8 bytes), then anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, b"")
    if isinstance(value, str):
        return (1, 0, value.encode())
    return (2, 0, b"")


def test_listings_filter_and_order_as_sorted_does():
    docs = documents()
    index = make(docs, metadata_schema=SCHEMA, text_fields=["body"])
    ids = [f"d{i:04d}" for i in range(len(docs))]
    billing = [i for i, d in zip(ids, docs) if d.get("team") == "billing"]
    hits = index.query_metadata(filters={"team": "billing"})
    assert [h["id"] for h in hits] == billing and all(set(h) == {"id"} for h in hits)
    for ascending in (True, False):
        present = [(i, d) for i, d in zip(ids, docs) if order_key(d.get("date"))[0] < 2]
        missing = [i for i, d in zip(ids, docs) if order_key(d.get("date"))[0] == 2]
        present.sort(key=lambda p: p[0])
        present.sort(key=lambda p: order_key(p[1]["date"]), reverse=not ascending)
        want = [i for i, _ in present] + sorted(missing)
        got = index.query_metadata(order_by="date", ascending=ascending)
        assert [h["id"] for h in got] == want
        top = index.query_metadata(order_by="date", ascending=ascending, top_k=10)
        assert [h["id"] for h in top] == want[:10]
    # $regex and $contains on pattern fields, as Python's re and `in` say.
    pattern = r"^INV-2\d{3}$"
    want = [i for i, d in zip(ids, docs) if re.search(pattern, d["title"])]
    assert [h["id"] for h in index.query_metadata(filters={"title": {"$regex": pattern}})] == want
    want = [i for i, d in zip(ids, docs) if "refund" in d["tags"]]
    got = index.query_metadata(filters='{"tags": {"$contains": "refund"}}')
    assert [h["id"] for h in got] == want
    # The schema is enforced in listings; vector queries evaluate the same filter.
    with pytest.raises(cv.InvalidFilterError):
        index.query_metadata(filters={"team": {"$regex": "^bill"}})
    with pytest.raises(cv.InvalidFilterError):
        index.query_metadata(filters={"body": "memo"})
    hits = index.query(np.ones(4, np.float32), top_k=1000, filters={"team": {"$regex": "^bill"}})
    assert sorted(h["id"] for h in hits) == billing
    with pytest.raises(cv.InvalidFilterError):
        index.query_metadata(filters={"title": {"$regex": "(unclosed"}})
    with pytest.raises(cv.InvalidArgumentError):
        index.query_metadata(top_k=0)
    assert index.metadata_schema["title"] == {"filterable": True, "pattern": True, "full_text": False}
    assert index.metadata_schema["body"]["full_text"] is True


def bm25(docs_tokens, query, weights, k1=1.2, b=0.75, require_all=False):
    """Weighted multi-field BM25 written out: per field, over the items holding it."""
    scores, held = Counter(), {}
    q = re.findall(r"\w+", query.lower())
    for field, w in weights.items():
        present = {i: t for i, t in docs_tokens[field].items() if t is not None}
        n = len(present)
        avgdl = sum(len(t) for t in present.values()) / n
        for tok in q:
            df = sum(1 for t in present.values() if tok in t)
            if df == 0 or w == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, t in present.items():
                tf = t.count(tok)
                if tf:
                    scores[i] += w * idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl))
                    held.setdefault(i, set()).add(tok)
    out = [(i, s) for i, s in scores.items() if not require_all or held[i] == set(q)]
    return sorted(out, key=lambda p: (-p[1], p[0]))


def test_text_over_named_fields_with_weights_and_and():
    docs = documents(400, seed=9)
    rng = np.random.default_rng(2)
    for d in docs:
        if rng.random() < 0.5:
            d["subject"] = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 3))
    index = make(docs, text_fields=["body", "subject"], bm25_k1=1.5, bm25_b=0.5)
    ids = [f"d{i:04d}" for i in range(len(docs))]
    tokens = {
        f: {i: (d[f].lower().split() if f in d else None) for i, d in zip(ids, docs)}
        for f in ("body", "subject")
    }
    for query, weights, require_all in [
        ("refund overdue", {"body": 1.0, "subject": 1.0}, False),
        ("refund overdue", {"body": 2.0, "subject": 0.5}, True),
        ("memo memo credit", {"subject": 1.0}, False),
    ]:
        want = bm25(tokens, query, weights, 1.5, 0.5, require_all)
        got = index.query_metadata(
            text=query, text_field_weights=weights, require_all_terms=require_all
        )
        assert len(got) == len(want)
        for h, (i, s) in zip(got, want):
            assert abs(h["score"] - s) <= 1e-4 * max(s, 1e-3)
        hits = index.query(
            text=query,
            text_fields=sorted(weights),
            text_field_weights=[weights[f] for f in sorted(weights)],
            require_all_terms=require_all,
            top_k=1000,
        )
        assert [round(h["score"], 4) for h in hits] == [round(h["score"], 4) for h in got]
    # Hybrid with the fusion's knobs: alpha 1 is the vector ranking alone.
    q = np.ones(4, np.float32)
    by_vector = [h["id"] for h in index.query(q, top_k=5)]
    assert [h["id"] for h in index.query(q, top_k=5, text="refund", alpha=1.0)] == by_vector
    mixed = index.query(q, top_k=5, text="refund", alpha=0.3, rrf_k=10, window_mult=4)
    assert len(mixed) == 5 and all("score" in h for h in mixed)
    with pytest.raises(cv.InvalidArgumentError):
        index.query(q, text="refund", window_mult=0)
    with pytest.raises(cv.InvalidArgumentError):
        index.query(text="refund", text_fields=["nope"])
    with pytest.raises(cv.InvalidArgumentError):
        index.query()


@pytest.mark.parametrize("precision", ["float32", "float16", "int8"])
def test_storage_precision_rounds_what_is_stored(precision):
    index = cv.Client().create_index(
        "p", cv.generate_key(), dimension=8, index_type="ivf_sq8", storage_precision=precision
    )
    assert index.storage_precision == precision
    rng = np.random.default_rng(4)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    index.upsert([str(i) for i in range(50)], base)
    got = np.array([r["vector"] for r in index.get([str(i) for i in range(50)], include="vector")])
    if precision == "float32":
        assert np.array_equal(got, base)
    elif precision == "float16":
        assert np.array_equal(got, base.astype(np.float16).astype(np.float32))
    else:
        scale = np.abs(base).max(1, keepdims=True) / 127
        assert np.all(np.abs(got - base) <= scale * 0.5001)
        assert not np.array_equal(got, base)
    with pytest.raises(cv.InvalidArgumentError):
        cv.Client().create_index("x", cv.generate_key(), dimension=8, storage_precision="float8")
