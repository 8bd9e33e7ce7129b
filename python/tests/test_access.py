"""Access control from Python: grants with each scope, a read grant's writes refused with
PermissionDeniedError and nothing stored changed, a write grant's writes seen by a reader's
refresh, revocation (the revoked key opens nothing), and no user name in the folder's bytes.
Oracle: numpy brute force and the folder's bytes."""

import os

import numpy as np
import pytest

import ciphervec as cv

DIM = 8


def data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


def brute_ids(base, ids, q, k):
    d = np.sqrt(((base.astype(np.float64) - q) ** 2).sum(1))
    return [ids[i] for i in np.argsort(d, kind="stable")[:k]]


def folder_bytes(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.join(root, f)] = fh.read()
    return out


def test_scopes_refusals_refresh_revocation_and_no_names_stored(tmp_path):
    owner_key, analyst_key, ingest_key = cv.generate_key(), cv.generate_key(), cv.generate_key()
    base = data(200, 1)
    ids = [f"v{i}" for i in range(len(base))]
    client = cv.Client(str(tmp_path))
    index = client.create_index("docs", owner_key, dimension=DIM, auto_train=False)
    index.upsert(ids, base)
    index.grant("analyst-zq81", analyst_key)  # read by default
    index.grant("ingest-zq82", ingest_key, access="write")
    assert index.users() == [("analyst-zq81", "read"), ("ingest-zq82", "write")]
    with pytest.raises(cv.InvalidArgumentError):
        index.grant("x", analyst_key, access="owner")
    del index

    readers = cv.Client(str(tmp_path))
    reader = readers.load_index("docs", analyst_key, user="analyst-zq81")
    q = base[3] + 0.01
    hits = reader.query(q, top_k=5)
    assert [h["id"] for h in hits] == brute_ids(base, ids, q, 5)
    assert [r["id"] for r in reader.get(["v7", "v9"])] == ["v7", "v9"]

    before = folder_bytes(tmp_path)
    for write in (
        lambda: reader.upsert([{"id": "x", "vector": [0.0] * DIM}]),
        lambda: reader.delete(["v1"]),
        lambda: reader.train(),
        lambda: reader.compact(),
        lambda: reader.rotate_data_key(),
        lambda: reader.grant("y", cv.generate_key()),
        lambda: reader.revoke("ingest-zq82"),
        lambda: reader.users(),
    ):
        with pytest.raises(cv.PermissionDeniedError):
            write()
    assert folder_bytes(tmp_path) == before

    writer = cv.Client(str(tmp_path)).load_index("docs", ingest_key, user="ingest-zq82")
    extra = data(30, 2)
    extra_ids = [f"w{i}" for i in range(len(extra))]
    writer.upsert(extra_ids, extra)
    assert writer.delete(["v0", "v1"]) == 2
    with pytest.raises(cv.PermissionDeniedError):
        writer.grant("z", cv.generate_key())
    del writer

    assert reader.refresh() is True
    keep = [i for i, name in enumerate(ids) if name not in ("v0", "v1")]
    all_base = np.concatenate([base[keep], extra])
    all_ids = [ids[i] for i in keep] + extra_ids
    q = extra[4] + 0.01
    assert [h["id"] for h in reader.query(q, top_k=7)] == brute_ids(all_base, all_ids, q, 7)
    assert len(reader) == len(all_ids)

    owner = cv.Client(str(tmp_path)).load_index("docs", owner_key)
    owner.revoke("analyst-zq81")
    assert owner.users() == [("ingest-zq82", "write")]
    del owner
    with pytest.raises(cv.WrongKeyError):
        cv.Client(str(tmp_path)).load_index("docs", analyst_key, user="analyst-zq81")
    with pytest.raises(cv.WrongKeyError):
        reader.refresh()

    for path, blob in folder_bytes(tmp_path).items():
        for needle in (b"analyst-zq81", b"ingest-zq82", analyst_key, ingest_key):
            assert needle not in blob, path
