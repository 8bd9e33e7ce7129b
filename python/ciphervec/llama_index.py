"""A LlamaIndex vector store over an encrypted ciphervec index.

Each node is an item: its id, its embedding as the vector, its text as the contents (BM25
searches it) and, as metadata, the node's metadata under ``metadata``, its ``ref_doc_id``
and the rest of the node as JSON (for ``get_nodes`` and query results), all encrypted at
rest. ``MetadataFilters`` translate into ciphervec filters on ``metadata.<key>``: every
``FilterOperator`` and ``FilterCondition`` LlamaIndex defines (see
:func:`ciphervec._filters.from_llama_index`); one that cannot be mapped raises, it is never
ignored. Nodes without an embedding are kept, found by filters and text, never by vector
queries. Needs ``llama-index-core`` (``pip install 'ciphervec[llama-index]'``).

Create the index with :data:`METADATA_SCHEMA` so that listings (``get_nodes``,
``delete_nodes`` with filters) can use ``contains``, ``any``, ``all`` and the text-match
operators, and with ``full_text=True`` for the ``TEXT_SEARCH`` and ``HYBRID`` query modes:

>>> import ciphervec as cv
>>> from llama_index.core.schema import TextNode
>>> from llama_index.core.vector_stores.types import VectorStoreQuery
>>> from ciphervec.llama_index import METADATA_SCHEMA, CiphervecVectorStore
>>> index = cv.Client().create_index("nodes", cv.generate_key(), dimension=2,
...     full_text=True, metadata_schema=METADATA_SCHEMA)
>>> store = CiphervecVectorStore(index=index)
>>> store.add([TextNode(id_="a", text="red apple", embedding=[1.0, 0.0])])
['a']
>>> store.query(VectorStoreQuery(query_embedding=[1.0, 0.1], similarity_top_k=1)).ids
['a']
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, List, Optional, Sequence

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "ciphervec.llama_index needs llama-index-core: pip install 'ciphervec[llama-index]'",
        name=missing.name,
    ) from missing

import numpy as np

from . import Index
from ._filters import all_of, from_llama_index
from ._vectorless import FLAG, HAS_VECTOR, vector_and_flag

__all__ = ["CiphervecVectorStore", "METADATA_SCHEMA"]

# The node's metadata gets a pattern dictionary (for `contains`, `any`, `all`, text match in
# listings); the node's JSON is stored, never indexed.
METADATA_SCHEMA = {"metadata": {"pattern": True}, "node": {"filterable": False}}
_INCLUDE = ("metadata", "contents")


class CiphervecVectorStore(BasePydanticVectorStore):
    """A LlamaIndex ``BasePydanticVectorStore`` on a ciphervec :class:`~ciphervec.Index`
    (``stores_text``: nodes come back whole, no docstore needed)."""

    stores_text: bool = True
    flat_metadata: bool = False

    _index: Index = PrivateAttr()

    def __init__(self, index: Index, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._index = index

    @classmethod
    def class_name(cls) -> str:
        return "CiphervecVectorStore"

    @property
    def client(self) -> Index:
        """The underlying encrypted index."""
        return self._index

    # Writing.

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upserts the nodes in one commit (an existing id is replaced); returns their ids."""
        items = [self._item(n) for n in nodes]
        if items:
            self._index.upsert(items)
        return [n.node_id for n in nodes]

    def _item(self, node: BaseNode) -> dict:
        stored = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
        node_dict = json.loads(stored["_node_content"])
        user_metadata = node_dict.pop("metadata", {})  # stored once, under "metadata"
        vector, flag = vector_and_flag(node.embedding, self._index.dimension)
        item = {
            "id": node.node_id,
            "vector": vector,
            "metadata": {
                "metadata": user_metadata,
                "node_id": node.node_id,
                "ref_doc_id": node.ref_doc_id,
                "node_type": stored["_node_type"],
                "node": json.dumps(node_dict, ensure_ascii=False),
                FLAG: flag,
            },
        }
        text = node.get_content()
        if text:
            item["contents"] = text
        return item

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document ``ref_doc_id``."""
        self._delete_matching({"ref_doc_id": {"$eq": ref_doc_id}})

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids that match ``filters`` (either may be None: no
        restriction, so both None deletes everything, as SimpleVectorStore does)."""
        if node_ids is not None and not node_ids:
            return
        self._delete_matching(from_llama_index(filters), node_ids)

    def clear(self) -> None:
        """Deletes every node."""
        ids = self._index.list_ids()
        if ids:
            self._index.delete(ids)

    def _delete_matching(self, mapped: Optional[dict], node_ids: Optional[List[str]] = None) -> None:
        ids = self._ids(mapped, node_ids)
        if ids:
            self._index.delete(ids)

    def _ids(self, mapped: Optional[dict], node_ids: Optional[List[str]]) -> List[str]:
        if node_ids is not None:
            if mapped is None:
                return [r["id"] for r in self._index.get(list(node_ids), include=())]
            wanted = set(node_ids)
            return [h["id"] for h in self._index.query_metadata(filters=mapped) if h["id"] in wanted]
        return [h["id"] for h in self._index.query_metadata(filters=mapped)]

    # Reading.

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        """The nodes with these ids (in that order) or, without ids, every node, restricted
        to those matching ``filters``."""
        ids = self._ids(from_llama_index(filters), node_ids)
        if node_ids is not None:
            keep = set(ids)
            ids = [i for i in dict.fromkeys(node_ids) if i in keep]
        return self._nodes(ids)[0]

    def _nodes(self, ids: List[str]) -> tuple[List[BaseNode], List[str]]:
        if not ids:
            return [], []
        nodes, found = [], []
        for record in self._index.get(ids, include=_INCLUDE + ("vector",)):
            nodes.append(self._node(record))
            found.append(record["id"])
        return nodes, found

    @staticmethod
    def _node(record: dict) -> BaseNode:
        m = record["metadata"]
        contents = record.get("contents")
        node = metadata_dict_to_node(
            {"_node_content": m["node"], "_node_type": m.get("node_type")},
            text=contents.decode("utf-8") if contents is not None else "",
        )
        node.metadata = m.get("metadata") or {}
        if m.get(FLAG) == "vector" and record.get("vector") is not None:
            node.embedding = [float(x) for x in record["vector"]]
        return node

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Runs a query: ``DEFAULT`` (the ``similarity_top_k`` nearest to
        ``query_embedding``), ``TEXT_SEARCH`` (BM25 of ``query_str``, nodes without an
        embedding included), ``HYBRID`` (both fused, ``alpha`` 1 = vector only) or ``MMR``
        (``mmr_threshold``; ``mmr_prefetch_factor=4`` candidates per result), each within
        ``filters``, ``doc_ids`` and ``node_ids`` (an empty list: no restriction). Similarities are larger for closer: the
        cosine similarity, minus the distance for other metrics, the BM25 score for text, the
        fused score for hybrid, LlamaIndex's MMR score. Other modes raise ``ValueError``."""
        mode = VectorStoreQueryMode(query.mode)
        restrict = all_of(
            from_llama_index(query.filters),
            # An empty list restricts nothing: VectorStoreIndex passes `node_ids=[]` for a
            # store that keeps the text (its own node table is empty then).
            {"ref_doc_id": {"$in": list(query.doc_ids)}} if query.doc_ids else None,
            {"node_id": {"$in": list(query.node_ids)}} if query.node_ids else None,
        )
        top_k = query.similarity_top_k
        if mode == VectorStoreQueryMode.HYBRID and query.hybrid_top_k:
            top_k = query.hybrid_top_k
        if mode not in (
            VectorStoreQueryMode.DEFAULT,
            VectorStoreQueryMode.TEXT_SEARCH,
            VectorStoreQueryMode.HYBRID,
            VectorStoreQueryMode.MMR,
        ):
            raise ValueError(f"ciphervec does not run the LlamaIndex query mode {mode.value!r}")
        if mode != VectorStoreQueryMode.TEXT_SEARCH and query.query_embedding is None:
            raise ValueError(f"the {mode.value!r} mode needs query_embedding")
        if mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.HYBRID) and not query.query_str:
            raise ValueError(f"the {mode.value!r} mode needs query_str")
        if top_k <= 0 or len(self._index) == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if mode == VectorStoreQueryMode.MMR:
            return self._mmr(query, restrict, top_k, int(kwargs.get("mmr_prefetch_factor", 4)))
        hits = self._search(mode, query, restrict, top_k)
        nodes, ids = self._nodes([h["id"] for h in hits])
        score = {h["id"]: self._similarity(mode, h) for h in hits}
        return VectorStoreQueryResult(nodes=nodes, similarities=[score[i] for i in ids], ids=ids)

    def _mmr(
        self, query: VectorStoreQuery, restrict: Optional[dict], top_k: int, prefetch: int
    ) -> VectorStoreQueryResult:
        """Maximal marginal relevance, as LlamaIndex computes it (its own
        ``get_top_k_mmr_embeddings``, ``mmr_threshold`` 1 = relevance only), over the
        ``top_k * mmr_prefetch_factor`` nearest candidates (their vectors decrypted)."""
        hits = self._index.query(
            np.asarray(query.query_embedding, dtype=np.float32),
            top_k=max(top_k, top_k * max(prefetch, 1)),
            filters=all_of(restrict, HAS_VECTOR),
            include=("vector",),
        )
        if not hits:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        similarities, ids = get_top_k_mmr_embeddings(
            list(query.query_embedding),
            [list(map(float, h["vector"])) for h in hits],
            similarity_top_k=top_k,
            embedding_ids=[h["id"] for h in hits],
            mmr_threshold=query.mmr_threshold,
        )
        nodes, found = self._nodes(list(ids))
        score = dict(zip(ids, similarities))
        return VectorStoreQueryResult(nodes=nodes, similarities=[score[i] for i in found], ids=found)

    def _search(
        self, mode: VectorStoreQueryMode, query: VectorStoreQuery, restrict: Optional[dict], top_k: int
    ) -> list[dict]:
        """The hits of the mode, best first (text: with the BM25 score; hybrid: fused)."""
        if mode == VectorStoreQueryMode.TEXT_SEARCH:
            hits = self._index.query_text(query.query_str, top_k=top_k, filters=restrict)
        else:
            hits = self._index.query(
                np.asarray(query.query_embedding, dtype=np.float32),
                top_k=top_k,
                filters=all_of(restrict, HAS_VECTOR),
                text=query.query_str if mode == VectorStoreQueryMode.HYBRID else None,
                alpha=query.alpha if mode == VectorStoreQueryMode.HYBRID else None,
            )
        return hits

    def _similarity(self, mode: VectorStoreQueryMode, hit: dict) -> float:
        if mode != VectorStoreQueryMode.DEFAULT:
            return float(hit["score"])
        distance = float(hit["distance"])
        return 1.0 - distance if self._index.metric == "cosine" else -distance

    # Async twins (the index releases the GIL: they run on a worker thread).

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)
