"""ciphervec: a local-first encrypted vector index.

Everything an index writes is AES-256-GCM ciphertext under a key you hold; search (IVF with
flat, SQ8 or PQ codes, metadata filters, BM25 and hybrid) runs in-process at native speed,
with the GIL released.

>>> import numpy as np, ciphervec as cv
>>> key = cv.generate_key()
>>> index = cv.Client().create_index("docs", key, dimension=4)
>>> index.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32))
>>> index.query(np.array([1, 0, 0, 0], dtype=np.float32), top_k=1)[0]["id"]
'a'

In production the key comes from a key management service, as an envelope: the service
generates it once and returns it with its wrapped form (text to keep in your configuration),
and unwraps that at every start, for that index only::

    kms = cv.GcpKms("projects/p/locations/l/keyRings/r/cryptoKeys/k")  # or AzureKeyVault,
    key, wrapped = kms.generate_key("docs")                            # AwsKms, VaultTransit
    client.create_index("docs", key, dimension=384)
    index = client.load_index("docs", kms.unwrap_key(wrapped, "docs"))
"""

import secrets as _secrets

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._native import AwsKms, AzureKeyVault, Client, GcpKms, Index, VaultTransit

__all__ = [
    "Client",
    "Index",
    "generate_key",
    "GcpKms",
    "AzureKeyVault",
    "AwsKms",
    "VaultTransit",
    *_error_names,
]
__version__ = "0.1.0"


def generate_key() -> bytes:
    """A fresh random 256-bit index key (32 bytes from the OS's CSPRNG). Store it safely:
    without it the index cannot be opened."""
    return _secrets.token_bytes(32)
