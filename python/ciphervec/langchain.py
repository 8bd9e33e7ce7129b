"""A LangChain vector store over an encrypted ciphervec index.

Texts are stored as the items' contents and metadata as their metadata, both encrypted at
rest; `filter` is ciphervec's MongoDB-style filter (dotted paths reach nested fields).
Nothing is pickled. Needs ``langchain-core`` 1.x (``pip install ciphervec[langchain]``).

>>> from langchain_core.embeddings import DeterministicFakeEmbedding
>>> import ciphervec as cv
>>> from ciphervec.langchain import CiphervecVectorStore
>>> store = CiphervecVectorStore.from_texts(
...     ["red apple", "green pear"], DeterministicFakeEmbedding(size=8),
...     index_key=cv.generate_key())
>>> store.similarity_search("red apple", k=1)[0].page_content
'red apple'
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "ciphervec.langchain needs langchain-core 1.x: pip install 'ciphervec[langchain]'",
        name=missing.name,
    ) from missing

from . import Client, Index

__all__ = ["CiphervecVectorStore"]

_FIELDS = ("metadata", "contents")


class CiphervecVectorStore(VectorStore):
    """A LangChain ``VectorStore`` backed by a ciphervec :class:`~ciphervec.Index`.

    ``hybrid=True`` (on an index created with ``full_text=True``) makes every similarity
    search hybrid: the query text's BM25 ranking is fused with the vector ranking. The
    search methods also take ``hybrid=`` per call.
    """

    def __init__(self, index: Index, embedding: Embeddings, *, hybrid: bool = False) -> None:
        self._index = index
        self._embedding = embedding
        self._hybrid = hybrid

    @property
    def index(self) -> Index:
        """The underlying encrypted index."""
        return self._index

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # Writing.

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embeds and upserts texts (an existing id is replaced); returns their ids."""
        texts = list(texts)
        if not texts:
            return []
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = list(ids) if ids is not None else [None] * len(texts)
        if len(metadatas) != len(texts) or len(ids) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        ids = [i if i else str(uuid.uuid4()) for i in ids]
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        self._index.upsert(
            [
                {"id": i, "vector": v, "contents": t, "metadata": dict(m or {})}
                for i, v, t, m in zip(ids, vectors, texts, metadatas)
            ]
        )
        return ids

    def delete(self, ids: Optional[list[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes by id (unknown ids are ignored); ``ids=None`` deletes everything."""
        if ids is None:
            ids = self._index.list_ids()
        self._index.delete(list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given (unknown ids skipped)."""
        return [self._document(r) for r in self._index.get(list(ids), include=_FIELDS)]

    # Searching.

    def similarity_search(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents and their distance to the query (smaller is closer)."""
        vector = self._embedding.embed_query(query)
        hybrid = kwargs.pop("hybrid", self._hybrid)
        return self._search(vector, k, filter, text=query if hybrid else None)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self._search(embedding, k, filter)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return self._search(embedding, k, filter)

    def _search(
        self, vector: Any, k: int, filter: Optional[dict], text: Optional[str] = None
    ) -> list[tuple[Document, float]]:
        if len(self._index) == 0:
            return []
        hits = self._index.query(
            np.asarray(vector, dtype=np.float32),
            top_k=k,
            filters=filter,
            include=_FIELDS,
            text=text,
        )
        return [(self._document(h), float(h["distance"])) for h in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents picked for relevance and diversity (maximal marginal relevance)
        among the ``fetch_k`` nearest: ``lambda_mult`` 1 is plain similarity, 0 the most
        diverse."""
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> list[Document]:
        """As :meth:`max_marginal_relevance_search`, from a query vector. The candidates'
        vectors come back from the index (decrypted) for the diversity term."""
        if len(self._index) == 0 or k <= 0:
            return []
        query = np.asarray(embedding, dtype=np.float32)
        hits = self._index.query(
            query, top_k=max(fetch_k, k), filters=filter, include=_FIELDS + ("vector",)
        )
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            query, [h["vector"] for h in hits], lambda_mult=lambda_mult, k=min(k, len(hits))
        )
        return [self._document(hits[i]) for i in chosen]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance to a relevance in [0, 1] (larger is more relevant), by metric. Euclidean
        and inner product assume unit-length embeddings, as most sentence models give."""
        metric = self._index.metric
        if metric == "cosine":
            return lambda d: 1.0 - d / 2.0
        if metric == "inner_product":
            return lambda d: (1.0 - d) / 2.0  # distance is -dot, dot in [-1, 1]
        if metric == "squared_euclidean":
            return lambda d: 1.0 - d / 4.0
        return lambda d: 1.0 - d / 2.0  # euclidean: d in [0, 2]

    @staticmethod
    def _document(record: dict) -> Document:
        contents = record.get("contents")
        text = contents.decode("utf-8", errors="replace") if contents is not None else ""
        return Document(id=record["id"], page_content=text, metadata=record.get("metadata") or {})

    # Construction.

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        path: Optional[str] = None,
        index_key: bytes,
        index_name: str = "langchain",
        **create_kwargs: Any,
    ) -> "CiphervecVectorStore":
        """Creates an index (in memory, or in the database at ``path``) sized to the
        embedding, and adds ``texts``. ``create_kwargs`` go to ``Client.create_index``
        (``index_type``, ``metric``, ``full_text``...); ``hybrid`` to the store."""
        hybrid = bool(create_kwargs.pop("hybrid", False))
        texts = list(texts)
        probe = embedding.embed_query(texts[0] if texts else "dimension")
        if not probe or not all(math.isfinite(x) for x in probe):
            raise ValueError("the embedding returned an empty or non-finite vector")
        client = Client(path) if path is not None else Client()
        index = client.create_index(index_name, index_key, dimension=len(probe), **create_kwargs)
        store = cls(index, embedding, hybrid=hybrid)
        store.add_texts(texts, metadatas, ids=ids)
        return store
