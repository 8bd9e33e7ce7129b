"""A LlamaIndex VectorStoreIndex over an encrypted ciphervec index on disk.

    pip install 'ciphervec[llama-index]'
    python python/examples/llama_index_store.py

The embedding model here is a stand-in (a bag of words over a few words, so the example
needs no model download); use any LlamaIndex embedding (HuggingFaceEmbedding, OpenAI...).
"""

import re
import tempfile

import numpy as np
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

import ciphervec as cv
from ciphervec.llama_index import METADATA_SCHEMA, CiphervecVectorStore

VOCAB = ["capital", "france", "paris", "river", "egypt", "nile", "planet", "red", "mars"]


class WordEmbedding(BaseEmbedding):
    """A stand-in embedding model: word counts over VOCAB, unit length."""

    def _embed(self, text):
        words = re.findall(r"\w+", text.lower())
        v = np.array([words.count(w) for w in VOCAB], dtype=np.float32) + 0.01
        return (v / np.linalg.norm(v)).tolist()

    def _get_query_embedding(self, query):
        return self._embed(query)

    def _get_text_embedding(self, text):
        return self._embed(text)

    async def _aget_query_embedding(self, query):
        return self._embed(query)


key = cv.generate_key()  # in production: from your key service (see docs/KEY_MANAGEMENT.md)
with tempfile.TemporaryDirectory() as path:
    index = cv.Client(path).create_index(
        "facts", key, dimension=len(VOCAB), metric="cosine", full_text=True,
        metadata_schema=METADATA_SCHEMA,  # lets listings use contains/any/all/text match
    )
    store = CiphervecVectorStore(index=index)
    docs = [
        Document(text="Paris is the capital of France.", doc_id="paris", metadata={"topic": "geo"}),
        Document(text="The Nile is the river of Egypt.", doc_id="nile", metadata={"topic": "geo"}),
        Document(text="Mars is the red planet.", doc_id="mars", metadata={"topic": "space"}),
    ]
    vsi = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=WordEmbedding(),
    )
    hit = vsi.as_retriever(similarity_top_k=1).retrieve("What is the capital of France?")[0]
    print(f"{hit.score:.3f} {hit.node.get_content()}")
    geo = MetadataFilters(filters=[MetadataFilter(key="topic", value="space", operator=FilterOperator.NE)])
    hits = vsi.as_retriever(similarity_top_k=3, filters=geo).retrieve("red planet")
    assert all(h.node.metadata["topic"] == "geo" for h in hits)
    vsi.delete_ref_doc("nile")  # deletes the document's nodes from the encrypted index
    print(len(index), "nodes left")
