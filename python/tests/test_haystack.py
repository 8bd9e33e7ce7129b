"""CiphervecDocumentStore beyond Haystack's suite: random filters against Haystack's own
InMemoryDocumentStore as the oracle, documents without an embedding, serialization that
never holds the key, the retrievers, and a Pipeline answering questions."""

import base64
import inspect
import json
import os
import re

import numpy as np
import pytest
from frameworks import require

require("haystack", "haystack-ai")

from haystack import Document, Pipeline, component  # noqa: E402
from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402
from haystack.errors import FilterError  # noqa: E402
from haystack.utils import Secret  # noqa: E402

import ciphervec as cv  # noqa: E402
from ciphervec.haystack import (  # noqa: E402
    CiphervecBM25Retriever,
    CiphervecDocumentStore,
    CiphervecEmbeddingRetriever,
)

DIM = 6
KEY_VAR = "CV_HAYSTACK_KEY"


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv(KEY_VAR, base64.b64encode(cv.generate_key()).decode())
    return Secret.from_env_var(KEY_VAR)


def random_docs(n=150, seed=1):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        meta = {}
        if rng.random() < 0.8:
            meta["n"] = int(rng.integers(-5, 5))
        if rng.random() < 0.7:
            meta["kind"] = ["a", "b", "c"][rng.integers(0, 3)]
        if rng.random() < 0.6:
            meta["date"] = f"19{rng.integers(50, 99)}-0{rng.integers(1, 9)}-1{rng.integers(0, 9)}T00:00:00"
        if rng.random() < 0.1:
            meta["n"] = None
        embedding = rng.standard_normal(DIM).tolist() if i % 5 else None
        docs.append(Document(id=f"d{i:03d}", content=f"doc {i}", meta=meta, embedding=embedding))
    return docs


def random_haystack_filter(rng, depth=0):
    if depth < 2 and rng.random() < 0.35:
        op = ["AND", "OR", "NOT"][rng.integers(0, 3)]
        return {"operator": op, "conditions": [random_haystack_filter(rng, depth + 1)
                                               for _ in range(rng.integers(1, 4))]}
    op = ["==", "!=", ">", ">=", "<", "<=", "in", "not in"][rng.integers(0, 8)]
    field = ["meta.n", "meta.kind", "meta.date", "id"][rng.integers(0, 4)]
    if op in ("in", "not in"):
        pool = {"meta.n": list(range(-5, 5)), "meta.kind": ["a", "b", "c", "z"],
                "meta.date": ["1960-01-10T00:00:00"], "id": ["d001", "d002", "d050"]}[field]
        value = [pool[j] for j in rng.integers(0, len(pool), rng.integers(1, 4))]
        value = [int(v) if isinstance(v, np.integer) else v for v in value]
    elif op in ("==", "!="):
        value = {"meta.n": int(rng.integers(-5, 5)), "meta.kind": "b", "meta.date": None,
                 "id": "d010"}[field] if rng.random() < 0.85 else None
    else:
        field = ["meta.n", "meta.date"][rng.integers(0, 2)]
        value = int(rng.integers(-5, 5)) if field == "meta.n" else f"19{rng.integers(50, 99)}-05-15T00:00:00"
    return {"field": field, "operator": op, "value": value}


def test_random_filters_select_what_haystacks_in_memory_store_selects(secret):
    docs = random_docs()
    store = CiphervecDocumentStore(dimension=DIM, index_key=secret)
    reference = InMemoryDocumentStore()
    store.write_documents(docs)
    reference.write_documents(docs)
    rng = np.random.default_rng(4)
    selective = 0
    for _ in range(300):
        f = random_haystack_filter(rng)
        if "conditions" not in f:
            f = {"operator": "AND", "conditions": [f]}
        want = sorted(d.id for d in reference.filter_documents(f))
        assert [d.id for d in store.filter_documents(f)] == want, f  # ids sort as written
        assert store.count_documents_by_filter(f) == len(want)
        selective += 0 < len(want) < len(docs)
    assert selective > 150


def test_malformed_and_unsupported_filters_raise_filter_error(secret):
    store = CiphervecDocumentStore(dimension=DIM, index_key=secret)
    store.write_documents(random_docs(10))
    for bad in (
        {"field": "meta.n", "operator": "~", "value": 1},
        {"field": "content", "operator": "==", "value": "x"},
        {"operator": "XOR", "conditions": [{"field": "meta.n", "operator": "==", "value": 1}]},
        {"field": "meta.n", "operator": ">", "value": "not a date"},
        {"field": "meta.n", "operator": "in", "value": "ab"},
        {"operator": "AND", "conditions": []},
    ):
        with pytest.raises(FilterError):
            store.filter_documents(bad)
        with pytest.raises(FilterError):
            store.delete_by_filter(bad)
    assert store.count_documents() == 10


def test_documents_without_or_with_zero_embeddings_are_kept_but_never_ranked(secret):
    store = CiphervecDocumentStore(dimension=DIM, index_key=secret)
    docs = [
        Document(id="v1", content="alpha river", embedding=[1.0, 0, 0, 0, 0, 0]),
        Document(id="v2", content="beta stone", embedding=[0, 1.0, 0, 0, 0, 0]),
        Document(id="none", content="alpha without vector", meta={"k": 1}),
        Document(id="zero", content="alpha zero vector", embedding=[0.0] * DIM, meta={"k": 1}),
    ]
    store.write_documents(docs)
    assert store.count_documents() == 4
    kept = {d.id: d for d in store.filter_documents({"field": "meta.k", "operator": "==", "value": 1})}
    assert kept["none"].embedding is None and kept["zero"].embedding == [0.0] * DIM
    # The placeholder vector is [1, 0, ...]: a query right on it still never returns them.
    hits = store.embedding_retrieval([1.0, 0, 0, 0, 0, 0], top_k=10)
    assert [d.id for d in hits] == ["v1", "v2"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6) and hits[1].score == pytest.approx(0.0, abs=1e-6)
    assert all(d.embedding is None for d in hits)
    found = store.bm25_retrieval("alpha", top_k=10)
    assert sorted(d.id for d in found) == ["none", "v1", "zero"] and all(d.score > 0 for d in found)
    with pytest.raises(ValueError, match="embedding of 3 values"):
        store.write_documents([Document(id="short", embedding=[1.0, 2.0, 3.0])])
    assert store.count_documents() == 4


def test_to_dict_holds_the_variable_name_never_the_key(secret, tmp_path):
    store = CiphervecDocumentStore(path=str(tmp_path), index_name="kb", dimension=DIM, index_key=secret)
    store.write_documents([Document(id="a", content="kept on disk", embedding=[1.0] * DIM)])
    data = store.to_dict()
    text = json.dumps(data)
    key_b64 = os.environ[KEY_VAR]
    assert key_b64 not in text and base64.b64decode(key_b64).hex() not in text
    assert data["init_parameters"]["index_key"] == {"type": "env_var", "env_vars": [KEY_VAR], "strict": True}
    store.close()  # one writer per index: the reopened store takes its lock
    reopened = CiphervecDocumentStore.from_dict(json.loads(text))
    assert [d.content for d in reopened.filter_documents()] == ["kept on disk"]
    with pytest.raises(ValueError, match="token"):
        CiphervecDocumentStore(dimension=DIM, index_key=Secret.from_token(key_b64)).to_dict()
    # The retriever serializes its store the same way.
    retriever = CiphervecEmbeddingRetriever(document_store=reopened, top_k=3)
    serialized = json.dumps(retriever.to_dict())
    reopened.close()
    again = CiphervecEmbeddingRetriever.from_dict(json.loads(serialized))
    assert again.top_k == 3 and again.document_store.index_name == "kb"
    again.document_store.close()
    # Hex keys work too; a wrong key is WrongKeyError; the message never quotes the value.
    hex_key = Secret.from_token(base64.b64decode(key_b64).hex())
    by_hex = CiphervecDocumentStore(path=str(tmp_path), index_name="kb", dimension=DIM, index_key=hex_key)
    assert by_hex.count_documents() == 1
    by_hex.close()
    wrong = Secret.from_token(base64.b64encode(cv.generate_key()).decode())
    with pytest.raises(cv.WrongKeyError):
        CiphervecDocumentStore(path=str(tmp_path), index_name="kb", dimension=DIM, index_key=wrong)
    with pytest.raises(ValueError) as e:
        CiphervecDocumentStore(dimension=DIM, index_key=Secret.from_token("c2hvcnQ="))
    assert "c2hvcnQ" not in str(e.value)
    blob = b"".join(open(os.path.join(r, f), "rb").read() for r, _, fs in os.walk(tmp_path) for f in fs)
    assert b"kept on disk" not in blob


VOCAB = ["capital", "france", "paris", "river", "egypt", "nile", "mountain", "nepal",
         "everest", "planet", "red", "mars", "largest", "ocean", "pacific", "city"]


def embed(text):
    words = re.findall(r"\w+", text.lower())
    v = np.array([words.count(w) for w in VOCAB], dtype=np.float64) + 0.01
    return (v / np.linalg.norm(v)).tolist()


FACTS = {
    "paris": "Paris is the capital city of France.",
    "nile": "The Nile is the river of Egypt.",
    "everest": "Everest is the mountain of Nepal.",
    "mars": "Mars is the red planet.",
    "pacific": "The Pacific is the largest ocean.",
}
QUESTIONS = {
    "What is the capital of France?": "paris",
    "Which river flows through Egypt?": "nile",
    "What is the highest mountain in Nepal?": "everest",
    "Which planet is red?": "mars",
    "What is the largest ocean?": "pacific",
}


@component
class WordEmbedder:
    """An embedder stub: a bag of words over a fixed vocabulary."""

    @component.output_types(embedding=list[float])
    def run(self, text: str):
        return {"embedding": embed(text)}


def test_a_pipeline_answers_questions_and_the_bm25_retriever_finds_words(secret, tmp_path):
    store = CiphervecDocumentStore(path=str(tmp_path), dimension=len(VOCAB), index_key=secret)
    store.write_documents([Document(id=k, content=t, embedding=embed(t)) for k, t in FACTS.items()])
    store.write_documents([Document(id="note", content="Mars rover notes", meta={"kind": "note"})])
    pipeline = Pipeline()
    pipeline.add_component("embedder", WordEmbedder())
    pipeline.add_component("retriever", CiphervecEmbeddingRetriever(document_store=store, top_k=1))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    for question, answer in QUESTIONS.items():
        [doc] = pipeline.run({"embedder": {"text": question}})["retriever"]["documents"]
        assert doc.id == answer and doc.content == FACTS[answer]
    # The pipeline serializes (key as its variable name) and loads again, on the same files.
    dumped = pipeline.dumps()
    assert os.environ[KEY_VAR] not in dumped
    store.close()
    # Haystack 3 loads classes only from modules it is told to trust.
    trust = {"allowed_modules": [__name__, "ciphervec"]}
    loaded = Pipeline.loads(dumped, **(trust if "allowed_modules" in inspect.signature(Pipeline.loads).parameters else {}))
    [doc] = loaded.run({"embedder": {"text": "Which planet is red?"}})["retriever"]["documents"]
    assert doc.id == "mars"
    store = loaded.get_component("retriever").document_store
    bm25 = CiphervecBM25Retriever(document_store=store, top_k=5)
    ids = [d.id for d in bm25.run(query="mars")["documents"]]
    assert sorted(ids) == ["mars", "note"]  # the note has no embedding: found by text
    only = bm25.run(query="mars", filters={"field": "meta.kind", "operator": "==", "value": "note"})
    assert [d.id for d in only["documents"]] == ["note"]


def test_the_example_runs(capsys, monkeypatch):
    import pathlib
    import runpy

    monkeypatch.delenv("CIPHERVEC_INDEX_KEY", raising=False)
    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "haystack_pipeline.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "Mars is the red planet." in out and "Mars rover notes, not embedded yet" in out
