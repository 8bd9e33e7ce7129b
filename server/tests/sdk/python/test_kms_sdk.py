"""CyborgDB's Python SDK (cyborgdb==0.18.0) creating a KMS-backed index with `kms_name`
against `ciphervec serve --kms-registry`, with the key service a real OpenBao (Vault transit)
started by scripts/kms_servers.sh. scripts/test_kms.sh runs this with the servers' settings
exported and CIPHERVEC_REQUIRE_KMS=1, so that a missing server fails it; in the plain SDK
suite (scripts/test_server.sh) it reports itself skipped.

Oracle: brute force over the same vectors with numpy; the server restarted (nothing cached)
must answer the same through the envelope it stored.
"""

import json
import os
import pathlib
import tempfile
import uuid

import numpy as np
import pytest

import cyborgdb
from cyborgdb import CyborgDBError, ValidationError

from conftest import Serve, _binary

DIM = 8
N = 120


def _vault():
    names = ("CIPHERVEC_TEST_VAULT_ADDR", "CIPHERVEC_TEST_VAULT_KEY", "CIPHERVEC_TEST_VAULT_TOKEN")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        reason = f"needs the local KMS servers (scripts/test_kms.sh): {', '.join(missing)} unset"
        if os.environ.get("CIPHERVEC_REQUIRE_KMS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {
        "vault": {
            "provider": "vault",
            "endpoint": os.environ["CIPHERVEC_TEST_VAULT_ADDR"],
            "key": os.environ["CIPHERVEC_TEST_VAULT_KEY"],
            "token_env": "CIPHERVEC_TEST_VAULT_TOKEN",
        }
    }


def _brute(vectors, ids, q, k):
    d = np.sqrt(((vectors - q) ** 2).sum(axis=1))
    order = np.argsort(d, kind="stable")[:k]
    return [ids[i] for i in order], [float(d[i]) for i in order]


def test_kms_name_round_trip_and_restart_through_the_sdk():
    registry = _vault()
    work = tempfile.TemporaryDirectory(prefix="cv-kms-sdk-")
    path = pathlib.Path(work.name) / "registry.json"
    path.write_text(json.dumps(registry))
    db = pathlib.Path(work.name) / "db"
    args = ("--kms-registry", str(path))
    rng = np.random.default_rng(46)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = [f"v{i}" for i in range(N)]
    q = rng.standard_normal(DIM).astype(np.float32)
    want_ids, want_d = _brute(vectors, ids, q, 5)
    name = f"kms_{uuid.uuid4().hex[:8]}"

    serve = Serve(_binary(), extra_args=args, db_dir=db)
    try:
        client = cyborgdb.Client(serve.url, serve.api_key)
        # Both a key and kms_name: 400 (ValidationError), as CyborgDB answers.
        with pytest.raises(ValidationError):
            client.create_index(name, cyborgdb.Client.generate_key(), kms_name="vault", dimension=DIM)
        with pytest.raises(ValidationError):
            client.create_index(name, kms_name="no-such-entry", dimension=DIM)
        index = client.create_index(name, kms_name="vault", dimension=DIM)
        index.upsert([{"id": ids[i], "vector": vectors[i]} for i in range(N)])
        hits = index.query(query_vectors=q, top_k=5)
        assert [h["id"] for h in hits] == want_ids
        np.testing.assert_allclose([h["distance"] for h in hits], want_d, rtol=1e-4, atol=1e-5)
        token = os.environ["CIPHERVEC_TEST_VAULT_TOKEN"]
        assert token not in serve.logs()
    finally:
        serve.stop()

    # A new process: the key comes from the envelope through Vault; the SDK sends no key.
    serve = Serve(_binary(), extra_args=args, db_dir=db)
    try:
        client = cyborgdb.Client(serve.url, serve.api_key)
        index = client.load_index(name)
        got = index.get(["v3"], include=["vector"])[0]["vector"]
        np.testing.assert_allclose(np.asarray(got, dtype=np.float32), vectors[3], rtol=1e-6)
        hits = index.query(query_vectors=q, top_k=5)
        assert [h["id"] for h in hits] == want_ids
        index.delete_index()
        assert name not in client.list_indexes()
        with pytest.raises(CyborgDBError):
            client.load_index(name)
    finally:
        serve.stop()
        work.cleanup()
