"""CiphervecVectorStore beyond the standard suite: from_texts on disk, filters with dotted
paths, relevance scores, hybrid search, ids order, and no plaintext on disk."""

import os
import subprocess
import sys

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

import ciphervec as cv
from ciphervec.langchain import CiphervecVectorStore

TEXTS = ["the red fox jumps", "a green pear", "invoice INV7781 is overdue", "blue sky over the sea"]
METAS = [{"team": {"name": "zoo"}, "n": 1}, {"team": {"name": "farm"}, "n": 2},
         {"team": {"name": "billing"}, "n": 3}, {"team": {"name": "zoo"}, "n": 4}]


def test_from_texts_on_disk_reopens_and_holds_no_plaintext(tmp_path):
    key = cv.generate_key()
    emb = DeterministicFakeEmbedding(size=16)
    store = CiphervecVectorStore.from_texts(
        TEXTS, emb, METAS, ids=["a", "b", "c", "d"], path=str(tmp_path), index_key=key
    )
    assert store.similarity_search(TEXTS[2], k=1)[0].id == "c"
    del store
    index = cv.Client(str(tmp_path)).load_index("langchain", key)
    reopened = CiphervecVectorStore(index, emb)
    assert [d.id for d in reopened.get_by_ids(["d", "x", "a"])] == ["d", "a"]
    assert reopened.get_by_ids(["b"]) == [Document(id="b", page_content=TEXTS[1], metadata=METAS[1])]
    blob = b"".join(open(os.path.join(r, f), "rb").read() for r, _, fs in os.walk(tmp_path) for f in fs)
    for needle in (b"invoice", b"billing", b"team", b"fox"):
        assert needle not in blob


def test_filters_scores_and_hybrid():
    emb = DeterministicFakeEmbedding(size=16)
    store = CiphervecVectorStore.from_texts(
        TEXTS, emb, METAS, index_key=cv.generate_key(), full_text=True, metric="cosine"
    )
    hits = store.similarity_search(TEXTS[0], k=4, filter={"team.name": "zoo"})
    assert all(d.metadata["team"]["name"] == "zoo" for d in hits) and len(hits) == 2
    scored = store.similarity_search_with_relevance_scores(TEXTS[1], k=2)
    assert scored[0][0].page_content == TEXTS[1]
    assert scored[0][1] == pytest.approx(1.0, abs=1e-5) and 0 <= scored[1][1] <= 1
    # A rare token: hybrid search finds it even from an unrelated vector query.
    hybrid = store.similarity_search("INV7781", k=2, hybrid=True)
    assert hybrid[0].page_content == TEXTS[2]
    by_vector = store.similarity_search_by_vector(emb.embed_query(TEXTS[3]), k=1)
    assert by_vector[0].page_content == TEXTS[3]
    assert store.delete() is True and store.similarity_search("anything", k=1) == []


class _Fixed(DeterministicFakeEmbedding):
    """Embeds the texts of a table to their vectors (anything else to the first one)."""

    table: dict = {}

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        return list(self.table.get(text, next(iter(self.table.values()))))


def test_max_marginal_relevance_trades_a_duplicate_for_diversity():
    emb = _Fixed(size=3)
    emb.table = {
        "query": [1.0, 0.0, 0.0],
        "near": [0.95, 0.31, 0.0],
        "near again": [0.95, 0.31, 0.0],  # the same vector: adds nothing new
        "aside": [0.7, -0.3, 0.65],
        "far": [-1.0, 0.0, 0.0],
    }
    docs = ["near", "near again", "aside", "far"]
    store = CiphervecVectorStore.from_texts(
        docs, emb, [{"doc": d} for d in docs], index_key=cv.generate_key(), metric="cosine"
    )
    # Relevance only: the two nearest, whatever their likeness.
    plain = [d.page_content for d in store.max_marginal_relevance_search("query", k=2, lambda_mult=1.0)]
    assert sorted(plain) == ["near", "near again"]
    # Diversity counts (the default lambda_mult 0.5: the second pick scores 0.064 for
    # "aside", -0.025 for the duplicate and for "far"): the duplicate gives way.
    mixed = [d.page_content for d in store.max_marginal_relevance_search("query", k=2, fetch_k=4)]
    assert mixed[0] in ("near", "near again") and mixed[1] == "aside"
    # Filters apply to the candidates; k beyond them, or an empty store, is no error.
    only = store.max_marginal_relevance_search("query", k=3, filter={"doc": {"$in": ["far", "aside"]}})
    assert sorted(d.page_content for d in only) == ["aside", "far"]
    assert store.max_marginal_relevance_search("query", k=0) == []
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2})
    assert [d.page_content for d in retriever.invoke("query")][1] == "aside"
    store.delete()
    assert store.max_marginal_relevance_search("query") == []


def test_without_langchain_core_the_import_says_what_to_install():
    # Run where langchain_core cannot be imported (None in sys.modules blocks it).
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import ciphervec.langchain\n"
        "except ModuleNotFoundError as e:\n"
        "    print(e.name, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("langchain_core"), out
    assert "pip install 'ciphervec[langchain]'" in out, out
