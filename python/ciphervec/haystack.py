"""A Haystack 2.x document store over an encrypted ciphervec index, and its retrievers.

Documents are items of one index: the content is the item's contents (BM25 searches it),
the embedding its vector, and ``meta``, ``id``, the blob and the sparse embedding its
metadata, all encrypted at rest. The index key comes from a Haystack
:class:`~haystack.utils.Secret` (its value the 32-byte key as base64 or 64 hex digits),
so ``to_dict`` writes only how to obtain it (an environment variable's name), never the key.

Documents without an embedding (and with an all-zero one, which no metric can rank) are
kept: they hold a placeholder vector and a flag in their metadata that every vector query
excludes, so filters, listings and BM25 find them and vector search never does. Needs
``haystack-ai`` 2.x or 3.x (``pip install 'ciphervec[haystack]'``).

>>> import os, base64, ciphervec as cv
>>> from haystack import Document
>>> from haystack.utils import Secret
>>> from ciphervec.haystack import CiphervecDocumentStore
>>> os.environ["CV_KEY"] = base64.b64encode(cv.generate_key()).decode()
>>> store = CiphervecDocumentStore(dimension=3, index_key=Secret.from_env_var("CV_KEY"))
>>> store.write_documents([Document(content="red apple", embedding=[1.0, 0.0, 0.0])])
1
>>> store.embedding_retrieval([1.0, 0.1, 0.0], top_k=1)[0].content
'red apple'
"""

# No `from __future__ import annotations`: Haystack 2.x reads the components' run()
# annotations as objects.
import asyncio
import base64
import binascii
import functools
import threading
from typing import Any, Optional

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.dataclasses import ByteStream, SparseEmbedding
    from haystack.document_stores.errors import DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy, FilterPolicy, apply_filter_policy
    from haystack.errors import FilterError
    from haystack.utils import Secret, deserialize_secrets_inplace
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "ciphervec.haystack needs haystack-ai 2.x or 3.x: pip install 'ciphervec[haystack]'",
        name=missing.name,
    ) from missing

import numpy as np

from . import Client, Index, InvalidFilterError
from ._filters import UnmappableFilter, all_of, from_haystack
from ._vectorless import FLAG, HAS_VECTOR, vector_and_flag

__all__ = ["CiphervecDocumentStore", "CiphervecEmbeddingRetriever", "CiphervecBM25Retriever"]

# The metadata layout of a document (see the module's docstring): the user's meta under
# "meta" (with a pattern dictionary, so `$regex`/`$contains` work in listings), bookkeeping
# beside it, bulky fields stored but not indexed.
_SCHEMA = {
    "meta": {"pattern": True},
    "blob": {"filterable": False},
    "sparse": {"filterable": False},
}
_INCLUDE = ("metadata", "contents", "vector")


def _key_bytes(secret: Secret) -> bytearray:
    """The 32-byte key a Secret resolves to (base64, or 64 hex digits), in a bytearray the
    caller wipes after use (ciphervec wipes its own copy); the error never quotes the
    value."""
    value = secret.resolve_value()
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        raise ValueError("the index_key Secret resolved to nothing")
    text = value.strip()
    key = None
    if len(text) == 64:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise ValueError("the index_key Secret is not a 32-byte key as base64 or 64 hex digits")
    return bytearray(key)


def _wipe(key: bytearray) -> None:
    key[:] = bytes(len(key))


def _filter(filters: Optional[dict]) -> Optional[dict]:
    try:
        return from_haystack(filters)
    except UnmappableFilter as e:
        raise FilterError(str(e)) from None


class CiphervecDocumentStore:
    """A Haystack ``DocumentStore`` on a ciphervec index (in memory when ``path`` is None,
    else in the database directory or URL ``path``), opened or created with ``dimension``.

    ``metric`` and ``index_type`` apply when the index is created; ``full_text`` (on by
    default) indexes the contents for :class:`CiphervecBM25Retriever`. ``write_documents``'
    default policy (``DuplicatePolicy.NONE``) behaves as ``FAIL``. Filters use Haystack's
    syntax on ``meta.<field>`` and ``id`` (see :func:`ciphervec._filters.from_haystack`).
    """

    def __init__(
        self,
        path: Optional[str] = None,
        index_name: str = "haystack",
        dimension: int = 768,
        index_key: Secret = Secret.from_env_var("CIPHERVEC_INDEX_KEY"),
        metric: str = "cosine",
        index_type: str = "ivf_flat",
        full_text: bool = True,
    ) -> None:
        if not isinstance(index_key, Secret):
            raise ValueError("index_key is a haystack.utils.Secret (e.g. Secret.from_env_var)")
        if not isinstance(dimension, int) or dimension <= 0:
            raise ValueError("dimension is a positive integer")
        self.path = path
        self.index_name = index_name
        self.dimension = dimension
        self.index_key = index_key
        self.metric = metric
        self.index_type = index_type
        self.full_text = full_text
        self._client = Client(path) if path is not None else Client()
        self._index = self._open_or_create()
        self._next_seq = self._last_seq() + 1
        # Writers (the async twins run on threads) take sequence numbers one at a time.
        self._write_lock = threading.Lock()

    def _open_or_create(self) -> Index:
        key = _key_bytes(self.index_key)
        try:
            return self._open_or_create_with(key)
        finally:
            _wipe(key)

    def _open_or_create_with(self, key: bytearray) -> Index:
        if self.index_name in self._client.list_indexes():
            index = self._client.load_index(self.index_name, key)
            if index.dimension != self.dimension:
                raise ValueError(
                    f"the index {self.index_name!r} has dimension {index.dimension}, "
                    f"not {self.dimension}"
                )
            return index
        return self._client.create_index(
            self.index_name,
            key,
            dimension=self.dimension,
            metric=self.metric,
            index_type=self.index_type,
            full_text=self.full_text,
            metadata_schema=_SCHEMA,
        )

    def _last_seq(self) -> int:
        last = self._index.query_metadata(order_by="seq", ascending=False, top_k=1)
        if not last:
            return -1
        record = self._index.get([last[0]["id"]], include="metadata")
        return int(record[0]["metadata"].get("seq", -1)) if record else -1

    @property
    def index(self) -> Index:
        """The underlying encrypted index."""
        return self._index

    def close(self) -> None:
        """Lets go of the index (its writer lock is released once no other handle holds it;
        a pipeline's components may keep the store itself alive longer). The store is
        unusable afterwards."""
        self._index = None  # type: ignore[assignment]
        self._client = None  # type: ignore[assignment]

    # Serialization.

    def to_dict(self) -> dict[str, Any]:
        """The store's settings; the key only as its Secret's description (an environment
        variable's name: a token Secret refuses to serialize, as everywhere in Haystack)."""
        return default_to_dict(
            self,
            path=self.path,
            index_name=self.index_name,
            dimension=self.dimension,
            index_key=self.index_key.to_dict(),
            metric=self.metric,
            index_type=self.index_type,
            full_text=self.full_text,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CiphervecDocumentStore":
        """The store ``to_dict`` described (the key read again from its Secret)."""
        deserialize_secrets_inplace(data["init_parameters"], keys=["index_key"])
        return default_from_dict(cls, data)

    # Reading.

    def count_documents(self) -> int:
        """The number of documents stored."""
        return len(self._index)

    def filter_documents(self, filters: Optional[dict[str, Any]] = None) -> list[Document]:
        """The documents matching Haystack ``filters`` (all with none), in the order they were
        first written. A malformed or unsupported filter raises ``FilterError``."""
        return self._documents(self._matching_ids(filters))

    def _matching_ids(self, filters: Optional[dict[str, Any]]) -> list[str]:
        mapped = _filter(filters)
        try:
            hits = self._index.query_metadata(filters=mapped, order_by="seq")
        except InvalidFilterError as e:
            raise FilterError(str(e)) from None
        return [h["id"] for h in hits]

    def _documents(
        self, ids: list[str], scores: Optional[list[float]] = None, with_embedding: bool = True
    ) -> list[Document]:
        if not ids:
            return []
        by_id = dict(zip(ids, scores)) if scores is not None else {}
        return [
            self._document(r, by_id.get(r["id"]), with_embedding)
            for r in self._index.get(ids, include=_INCLUDE)
        ]

    def _document(self, record: dict, score: Optional[float], with_embedding: bool) -> Document:
        m = record.get("metadata") or {}
        contents = record.get("contents")
        kind = m.get(FLAG) if with_embedding else None
        if kind == "vector":
            embedding = [float(x) for x in record["vector"]]
        elif kind == "zero":
            embedding = [0.0] * self.dimension
        else:
            embedding = None
        blob = m.get("blob")
        sparse = m.get("sparse")
        return Document(
            id=record["id"],
            content=contents.decode("utf-8") if contents is not None else None,
            blob=ByteStream(
                data=base64.b64decode(blob["data"]),
                meta=blob.get("meta") or {},
                mime_type=blob.get("mime_type"),
            )
            if blob
            else None,
            meta=m.get("meta") or {},
            embedding=embedding,
            sparse_embedding=SparseEmbedding.from_dict(sparse) if sparse else None,
            score=score,
        )

    # Writing.

    def write_documents(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """Writes ``documents`` in one commit; returns how many were written. ``NONE`` and
        ``FAIL`` raise ``DuplicateDocumentError`` (writing nothing) when an id is already
        stored or repeats in the batch; ``SKIP`` keeps the stored (or first) one;
        ``OVERWRITE`` replaces it, keeping its place in the listing order."""
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise ValueError("write_documents takes a list of haystack Documents")
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL
        if not documents:
            return 0
        with self._write_lock:
            return self._write(documents, policy)

    def _write(self, documents: list[Document], policy: DuplicatePolicy) -> int:
        ids = [d.id for d in documents]
        stored = {
            r["id"]: r["metadata"].get("seq")
            for r in self._index.get(list(dict.fromkeys(ids)), include="metadata")
        }
        batch: dict[str, Document] = {}
        for doc in documents:
            if doc.id in stored or doc.id in batch:
                if policy == DuplicatePolicy.FAIL:
                    raise DuplicateDocumentError(f"ID '{doc.id}' already exists in the document store")
                if policy == DuplicatePolicy.SKIP:
                    continue
            batch[doc.id] = doc  # OVERWRITE: the last one written wins
        items = []
        for doc in batch.values():
            seq = stored.get(doc.id)
            if seq is None:
                seq, self._next_seq = self._next_seq, self._next_seq + 1
            items.append(self._item(doc, seq))
        if items:
            self._index.upsert(items)
        return len(items) if policy == DuplicatePolicy.SKIP else len(documents)

    def _item(self, doc: Document, seq: int) -> dict:
        metadata: dict[str, Any] = {"id": doc.id, "seq": seq, "meta": dict(doc.meta or {})}
        try:
            vector, metadata[FLAG] = vector_and_flag(doc.embedding, self.dimension)
        except ValueError as e:
            raise ValueError(f"document {doc.id!r}: {e}") from None
        if doc.blob is not None:
            metadata["blob"] = {
                "data": base64.b64encode(doc.blob.data).decode("ascii"),
                "mime_type": doc.blob.mime_type,
                "meta": doc.blob.meta,
            }
        if doc.sparse_embedding is not None:
            metadata["sparse"] = doc.sparse_embedding.to_dict()
        item = {"id": doc.id, "vector": vector, "metadata": metadata}
        if doc.content is not None:
            item["contents"] = doc.content
        return item

    def delete_documents(self, document_ids: list[str]) -> None:
        """Deletes the documents with these ids (unknown ids are ignored)."""
        if document_ids:
            self._index.delete(list(document_ids))

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """Deletes every document (``recreate_index=True`` also drops and recreates the
        index, with the same settings)."""
        if recreate_index:
            with self._write_lock:
                key = _key_bytes(self.index_key)
                try:
                    self._client.delete_index(self.index_name, key)
                finally:
                    _wipe(key)
                self._index = self._open_or_create()
                self._next_seq = 0
            return
        ids = self._index.list_ids()
        if ids:
            self._index.delete(ids)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Deletes the documents matching ``filters``; returns how many."""
        ids = self._matching_ids(filters)
        return self._index.delete(ids) if ids else 0

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merges ``meta`` into the meta of every document matching ``filters`` (in one
        commit); returns how many."""
        ids = self._matching_ids(filters)
        if not ids:
            return 0
        records = self._index.get(ids, include=_INCLUDE)
        items = []
        for r in records:
            item = {"id": r["id"], "vector": r["vector"], "metadata": r["metadata"]}
            item["metadata"]["meta"] = {**(item["metadata"].get("meta") or {}), **meta}
            if r.get("contents") is not None:
                item["contents"] = r["contents"]
            items.append(item)
        self._index.upsert(items)
        return len(items)

    # Counting and describing metadata (scans of the matching documents' meta).

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """The number of documents matching ``filters``."""
        return len(self._matching_ids(filters))

    def _metas(self, filters: Optional[dict[str, Any]]) -> list[dict]:
        ids = self._matching_ids(filters)
        if not ids:
            return []
        return [r["metadata"].get("meta") or {} for r in self._index.get(ids, include="metadata")]

    def count_unique_metadata_by_filter(
        self, filters: dict[str, Any], metadata_fields: list[str]
    ) -> dict[str, int]:
        """For each field (``meta.`` prefix optional), how many distinct non-null values the
        documents matching ``filters`` hold."""
        metas = self._metas(filters)
        result = {}
        for field in metadata_fields:
            key = field.removeprefix("meta.")
            result[key] = len({_hashable(m[key]) for m in metas if m.get(key) is not None})
        return result

    def get_metadata_fields_info(self) -> dict[str, dict[str, str]]:
        """Each meta field's type as stored: ``boolean``, ``int``, ``float`` or ``keyword``."""
        types: dict[str, str] = {}
        for m in self._metas(None):
            for key, value in m.items():
                if value is None:
                    continue
                if isinstance(value, bool):
                    types[key] = "boolean"
                elif isinstance(value, int):
                    types[key] = "int"
                elif isinstance(value, float):
                    types[key] = "float"
                else:
                    types[key] = "keyword"
        return {k: {"type": v} for k, v in types.items()}

    def get_metadata_field_min_max(self, metadata_field: str) -> dict[str, Any]:
        """The least and greatest value of a field (``None`` for both when it has none, or
        values that do not compare)."""
        key = metadata_field.removeprefix("meta.")
        values = [
            m[key]
            for m in self._metas(None)
            if isinstance(m.get(key), (int, float, str)) and not isinstance(m.get(key), bool)
        ]
        try:
            return {"min": min(values), "max": max(values)} if values else {"min": None, "max": None}
        except TypeError:
            return {"min": None, "max": None}

    def get_metadata_field_unique_values(
        self,
        metadata_field: str,
        search_term: Optional[str] = None,
        from_: int = 0,
        size: int = 10,
        filters: Optional[dict[str, Any]] = None,
    ) -> tuple[list[Any], int]:
        """A page of a field's distinct values (of the documents matching ``filters``, holding
        ``search_term`` in any case), sorted by their text, and how many there are."""
        key = metadata_field.removeprefix("meta.")
        unique: dict[tuple, Any] = {}
        for m in self._metas(filters):
            value = m.get(key)
            if value is not None:
                unique.setdefault((type(value).__name__, _hashable(value)), value)
        if search_term:
            term = search_term.lower()
            unique = {k: v for k, v in unique.items() if term in str(v).lower()}
        ordered = sorted(unique, key=lambda k: (str(unique[k]), k[0]))
        return [unique[k] for k in ordered[from_ : from_ + size]], len(ordered)

    # Retrieval.

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        filters: Optional[dict[str, Any]] = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        """The ``top_k`` documents nearest the query embedding (documents without an
        embedding never appear), best first, ``score`` larger for closer (cosine: the
        similarity; other metrics: minus the distance)."""
        mapped = all_of(_filter(filters), HAS_VECTOR)
        if top_k <= 0 or len(self._index) == 0:
            return []
        hits = self._index.query(
            np.asarray(query_embedding, dtype=np.float32), top_k=top_k, filters=mapped
        )
        return self._documents(
            [h["id"] for h in hits],
            [self._score(float(h["distance"])) for h in hits],
            with_embedding=return_embedding,
        )

    def _score(self, distance: float) -> float:
        return 1.0 - distance if self.metric == "cosine" else -distance

    def bm25_retrieval(
        self, query: str, filters: Optional[dict[str, Any]] = None, top_k: int = 10
    ) -> list[Document]:
        """The ``top_k`` documents whose content best matches ``query`` by BM25 (with or
        without an embedding), ``score`` the BM25 score. Needs ``full_text``."""
        if not query:
            raise ValueError("the query is a non-empty string")
        if top_k <= 0 or len(self._index) == 0:
            return []
        hits = self._index.query_text(query, top_k=top_k, filters=_filter(filters))
        return self._documents(
            [h["id"] for h in hits], [float(h["score"]) for h in hits], with_embedding=False
        )

    # Async twins (the index releases the GIL: they run on a worker thread).

    async def count_documents_async(self) -> int:
        """As :meth:`count_documents`."""
        return await asyncio.to_thread(self.count_documents)

    async def filter_documents_async(self, filters: Optional[dict[str, Any]] = None) -> list[Document]:
        """As :meth:`filter_documents`."""
        return await asyncio.to_thread(self.filter_documents, filters)

    async def write_documents_async(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """As :meth:`write_documents`."""
        return await asyncio.to_thread(self.write_documents, documents, policy)

    async def delete_documents_async(self, document_ids: list[str]) -> None:
        """As :meth:`delete_documents`."""
        await asyncio.to_thread(self.delete_documents, document_ids)

    async def delete_all_documents_async(self, recreate_index: bool = False) -> None:
        """As :meth:`delete_all_documents`."""
        await asyncio.to_thread(self.delete_all_documents, recreate_index)

    async def delete_by_filter_async(self, filters: dict[str, Any]) -> int:
        """As :meth:`delete_by_filter`."""
        return await asyncio.to_thread(self.delete_by_filter, filters)

    async def update_by_filter_async(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """As :meth:`update_by_filter`."""
        return await asyncio.to_thread(self.update_by_filter, filters, meta)

    async def count_documents_by_filter_async(self, filters: dict[str, Any]) -> int:
        """As :meth:`count_documents_by_filter`."""
        return await asyncio.to_thread(self.count_documents_by_filter, filters)

    async def count_unique_metadata_by_filter_async(
        self, filters: dict[str, Any], metadata_fields: list[str]
    ) -> dict[str, int]:
        """As :meth:`count_unique_metadata_by_filter`."""
        return await asyncio.to_thread(self.count_unique_metadata_by_filter, filters, metadata_fields)

    async def get_metadata_fields_info_async(self) -> dict[str, dict[str, str]]:
        """As :meth:`get_metadata_fields_info`."""
        return await asyncio.to_thread(self.get_metadata_fields_info)

    async def get_metadata_field_min_max_async(self, metadata_field: str) -> dict[str, Any]:
        """As :meth:`get_metadata_field_min_max`."""
        return await asyncio.to_thread(self.get_metadata_field_min_max, metadata_field)

    async def get_metadata_field_unique_values_async(
        self,
        metadata_field: str,
        search_term: Optional[str] = None,
        from_: int = 0,
        size: int = 10,
        filters: Optional[dict[str, Any]] = None,
    ) -> tuple[list[Any], int]:
        """As :meth:`get_metadata_field_unique_values`."""
        return await asyncio.to_thread(
            self.get_metadata_field_unique_values, metadata_field, search_term, from_, size, filters
        )

    async def embedding_retrieval_async(self, *args: Any, **kwargs: Any) -> list[Document]:
        """As :meth:`embedding_retrieval`."""
        return await asyncio.to_thread(functools.partial(self.embedding_retrieval, *args, **kwargs))

    async def bm25_retrieval_async(self, *args: Any, **kwargs: Any) -> list[Document]:
        """As :meth:`bm25_retrieval`."""
        return await asyncio.to_thread(functools.partial(self.bm25_retrieval, *args, **kwargs))


def _hashable(value: Any) -> Any:
    """A value usable in a set, distinct for values of distinct JSON types (1, 1.0, True)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", tuple(_hashable(v) for v in value))
    return (type(value).__name__, value)


# Retrievers.


class _Retriever:
    """What both retrievers share: the store, default filters and top_k, the filter policy,
    serialization."""

    def __init__(
        self,
        document_store: CiphervecDocumentStore,
        filters: Optional[dict[str, Any]] = None,
        top_k: int = 10,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, CiphervecDocumentStore):
            raise ValueError("document_store is a CiphervecDocumentStore")
        if top_k <= 0:
            raise ValueError(f"top_k is positive, not {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.filter_policy = (
            filter_policy if isinstance(filter_policy, FilterPolicy) else FilterPolicy.from_str(filter_policy)
        )

    def _args(self, filters: Optional[dict[str, Any]], top_k: Optional[int]) -> tuple:
        return apply_filter_policy(self.filter_policy, self.filters, filters), top_k or self.top_k

    def to_dict(self) -> dict[str, Any]:
        """The retriever's settings with its store's (the key as its Secret's description)."""
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # noqa: ANN206 - the subclass
        """The retriever ``to_dict`` described."""
        params = data["init_parameters"]
        params["document_store"] = CiphervecDocumentStore.from_dict(params["document_store"])
        if "filter_policy" in params:
            params["filter_policy"] = FilterPolicy.from_str(params["filter_policy"])
        return default_from_dict(cls, data)


@component
class CiphervecEmbeddingRetriever(_Retriever):
    """Retrieves the documents nearest a query embedding from a
    :class:`CiphervecDocumentStore` (a Haystack component: ``query_embedding`` in,
    ``documents`` out)."""

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: Optional[dict[str, Any]] = None,
        top_k: Optional[int] = None,
    ) -> dict[str, list[Document]]:
        """The ``top_k`` nearest documents matching the filters (by the filter policy)."""
        filters, top_k = self._args(filters, top_k)
        return {"documents": self.document_store.embedding_retrieval(query_embedding, filters, top_k)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query_embedding: list[float],
        filters: Optional[dict[str, Any]] = None,
        top_k: Optional[int] = None,
    ) -> dict[str, list[Document]]:
        """As :meth:`run`."""
        filters, top_k = self._args(filters, top_k)
        docs = await self.document_store.embedding_retrieval_async(query_embedding, filters, top_k)
        return {"documents": docs}


@component
class CiphervecBM25Retriever(_Retriever):
    """Retrieves the documents whose content best matches a query by BM25 (a store with
    ``full_text``; documents without an embedding included)."""

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: Optional[dict[str, Any]] = None, top_k: Optional[int] = None
    ) -> dict[str, list[Document]]:
        """The ``top_k`` best BM25 matches of ``query`` among the filtered documents."""
        filters, top_k = self._args(filters, top_k)
        return {"documents": self.document_store.bm25_retrieval(query, filters, top_k)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: Optional[dict[str, Any]] = None, top_k: Optional[int] = None
    ) -> dict[str, list[Document]]:
        """As :meth:`run`."""
        filters, top_k = self._args(filters, top_k)
        return {"documents": await self.document_store.bm25_retrieval_async(query, filters, top_k)}
