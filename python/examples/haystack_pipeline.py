"""A Haystack pipeline (embedder -> retriever) over an encrypted ciphervec document store.

    pip install 'ciphervec[haystack]'
    python python/examples/haystack_pipeline.py

The key reaches the store through a Haystack Secret (here an environment variable holding
it as base64), so the pipeline's YAML names the variable, never the key. The embedder is a
stand-in component (a bag of words, no model download); use any Haystack text embedder.
"""

import base64
import os
import re
import tempfile

import numpy as np
from haystack import Document, Pipeline, component
from haystack.utils import Secret

import ciphervec as cv
from ciphervec.haystack import CiphervecBM25Retriever, CiphervecDocumentStore, CiphervecEmbeddingRetriever

VOCAB = ["capital", "france", "paris", "river", "egypt", "nile", "planet", "red", "mars"]


def embed(text):
    words = re.findall(r"\w+", text.lower())
    v = np.array([words.count(w) for w in VOCAB], dtype=np.float64) + 0.01
    return (v / np.linalg.norm(v)).tolist()


@component
class WordEmbedder:
    """A stand-in text embedder: word counts over VOCAB, unit length."""

    @component.output_types(embedding=list[float])
    def run(self, text: str):
        return {"embedding": embed(text)}


# In production the variable is set by your deployment (from a key service or a secret store).
os.environ.setdefault("CIPHERVEC_INDEX_KEY", base64.b64encode(cv.generate_key()).decode())
with tempfile.TemporaryDirectory() as path:
    store = CiphervecDocumentStore(
        path=path, dimension=len(VOCAB), index_key=Secret.from_env_var("CIPHERVEC_INDEX_KEY")
    )
    facts = ["Paris is the capital of France.", "The Nile is the river of Egypt.", "Mars is the red planet."]
    store.write_documents([Document(content=t, embedding=embed(t)) for t in facts])
    store.write_documents([Document(content="Mars rover notes, not embedded yet")])  # kept, text-searchable

    pipeline = Pipeline()
    pipeline.add_component("embedder", WordEmbedder())
    pipeline.add_component("retriever", CiphervecEmbeddingRetriever(document_store=store, top_k=1))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    answer = pipeline.run({"embedder": {"text": "Which planet is red?"}})["retriever"]["documents"][0]
    print(f"{answer.score:.3f} {answer.content}")
    assert "CIPHERVEC_INDEX_KEY" in pipeline.dumps() and os.environ["CIPHERVEC_INDEX_KEY"] not in pipeline.dumps()

    words = CiphervecBM25Retriever(document_store=store, top_k=5).run(query="mars")["documents"]
    print([d.content for d in words])  # BM25 finds the document without an embedding too
    store.close()
