"""ciphervec from Python in one page: create an encrypted index on disk, upsert a numpy
batch, query (vector, filtered, hybrid), reopen with the key, and see that the folder holds
no plaintext.

    python python/examples/quickstart.py
"""

import os
import tempfile

import numpy as np

import ciphervec as cv

rng = np.random.default_rng(7)
dim, n = 64, 5_000
vectors = rng.standard_normal((n, dim), dtype=np.float32)
ids = [f"doc-{i}" for i in range(n)]

with tempfile.TemporaryDirectory() as folder:
    key = cv.generate_key()  # keep it safe: without it nothing can be read back
    client = cv.Client(folder)
    index = client.create_index("docs", key, dimension=dim, full_text=True)

    # A numpy batch is read in place; dict items carry contents and metadata.
    index.upsert(ids, vectors)
    index.upsert(
        [
            {"id": "note-1", "vector": vectors[0] + 0.01, "contents": "invoice INV-2291 overdue",
             "metadata": {"team": "billing", "year": 2026}},
            {"id": "note-2", "vector": vectors[1] + 0.01, "contents": "design review notes",
             "metadata": {"team": "eng", "year": 2025}},
        ]
    )
    index.train()
    print(f"{len(index)} items, trained: {index.is_trained()}")

    hits = index.query(vectors[0], top_k=3)
    print("nearest to doc-0:", [(h["id"], round(h["distance"], 3)) for h in hits])
    hits = index.query(vectors[0], top_k=1, filters={"team": "billing"}, include=["metadata"])
    print("filtered:", hits)
    print("text:", [h["id"] for h in index.query_text("INV-2291 invoice", top_k=1)])
    print("hybrid:", [h["id"] for h in index.query(vectors[5], top_k=3, text="invoice")])
    batch = index.query(vectors[:4], top_k=1)  # 2-D: one list of hits per row
    print("batch:", [hits[0]["id"] for hits in batch])

    anchor = index.anchor()
    del index
    reopened = client.load_index("docs", key)
    reopened.check_anchor(anchor)  # raises RolledBackError if the folder was rolled back
    print("reopened:", len(reopened), "items;", reopened.get(["note-1"])[0]["contents"])
    try:
        client.load_index("docs", cv.generate_key())
    except cv.WrongKeyError:
        print("another key: WrongKeyError")

    on_disk = b"".join(
        open(os.path.join(root, f), "rb").read()
        for root, _, files in os.walk(folder) for f in files
    )
    print("plaintext on disk:", any(w in on_disk for w in (b"invoice", b"billing", b"doc-1")))
