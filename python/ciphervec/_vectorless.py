"""Items without a vector, as the framework stores keep them.

An index holds one vector per item; a document a framework writes without an embedding (or
with an all-zero one, which cosine cannot rank) still has to be kept and found by filters
and text. Such an item holds a placeholder vector and the metadata field ``embedding`` set
to ``"none"`` or ``"zero"``; a real vector is marked ``"vector"``, and every vector query of
the stores adds :data:`HAS_VECTOR` to its filter, so placeholders never rank.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = ["HAS_VECTOR", "FLAG", "vector_and_flag"]

FLAG = "embedding"
HAS_VECTOR: dict = {FLAG: "vector"}


def vector_and_flag(embedding: Optional[Any], dimension: int) -> tuple[np.ndarray, str]:
    """The vector to store for ``embedding`` and its flag: ``"vector"``, or a placeholder
    (valid for every metric) with ``"none"`` or ``"zero"``. A wrong length is a ValueError."""
    if embedding is not None:
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != (dimension,):
            raise ValueError(f"an embedding of {vector.size} values, the index holds {dimension}")
        if vector.any():
            return vector, "vector"
    placeholder = np.zeros(dimension, dtype=np.float32)
    placeholder[0] = 1.0
    return placeholder, "none" if embedding is None else "zero"
