"""Type stubs of the native module (the classes `ciphervec` re-exports)."""

from os import PathLike
from typing import Any, Iterable, Literal, Mapping, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

_Key = Union[bytes, bytearray]
_Field = Literal["distance", "metadata", "contents", "vector"]
_Include = Union[_Field, Sequence[_Field]]  # one field name, or several
_Vectors = Union[npt.ArrayLike, "np.ndarray[Any, np.dtype[np.float32]]"]
Hit = dict[str, Any]

INDEX_TYPES: tuple[str, ...]  # every index_type name the library reads, in its order
METRICS: tuple[str, ...]  # every metric name the library reads, in its order

class Client:
    def __init__(
        self, path: Union[str, PathLike[str], None] = None, *, cache_budget: int | None = None
    ) -> None: ...
    def create_index(
        self,
        name: str,
        key: _Key,
        *,
        dimension: int,
        index_type: Literal["ivf_flat", "ivf_sq8", "ivf_pq"] = "ivf_flat",
        metric: Literal["euclidean", "squared_euclidean", "cosine", "inner_product"] = "euclidean",
        n_lists: int | None = None,
        n_probes: int | None = None,
        pq_m: int | None = None,
        full_text: bool = False,
        refine_bits: Literal[6, 8] | None = None,
        metadata_schema: Mapping[str, Mapping[str, bool]] | str | None = None,
        text_fields: Sequence[str] | None = None,
        bm25_k1: float | None = None,
        bm25_b: float | None = None,
        storage_precision: Literal["float32", "float16", "int8"] = "float32",
        auto_train: bool = True,
    ) -> Index: ...
    def load_index(
        self, name: str, key: _Key, *, user: str | None = None, read_only: bool = False
    ) -> Index: ...
    def list_indexes(self) -> list[str]: ...
    def delete_index(self, name: str, key: _Key) -> None: ...
    def rotate_index_key(self, name: str, old: _Key, new: _Key) -> None: ...
    def rotate_keys(self, name: str, old: _Key, new: _Key) -> None: ...

class Index:
    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def n_lists(self) -> int: ...
    @property
    def metric(self) -> Literal["euclidean", "squared_euclidean", "cosine", "inner_product"]: ...
    @property
    def index_type(self) -> Literal["ivf_flat", "ivf_sq8", "ivf_pq"]: ...
    @property
    def full_text(self) -> bool: ...
    @property
    def storage_precision(self) -> Literal["float32", "float16", "int8"]: ...
    @property
    def metadata_schema(self) -> dict[str, dict[str, bool]]: ...
    @overload
    def upsert(self, items: Iterable[Mapping[str, Any]]) -> None: ...
    @overload
    def upsert(self, items: Sequence[str], vectors: _Vectors) -> None: ...
    def train(self, n_lists: int | None = None, max_iters: int | None = None) -> None: ...
    def query(
        self,
        vectors: _Vectors | None = None,
        top_k: int = 10,
        n_probes: int | None = None,
        filters: Mapping[str, Any] | str | None = None,
        include: _Include = ("distance",),
        rerank: int | None = None,
        text: str | None = None,
        text_fields: Sequence[str] | None = None,
        text_field_weights: Sequence[float] | Mapping[str, float] | None = None,
        require_all_terms: bool | None = None,
        alpha: float | None = None,
        rrf_k: float | None = None,
        window_mult: int | None = None,
    ) -> list[Hit] | list[list[Hit]]: ...
    def query_metadata(
        self,
        filters: Mapping[str, Any] | str | None = None,
        top_k: int | None = None,
        order_by: str | None = None,
        ascending: bool = True,
        text: str | None = None,
        text_fields: Sequence[str] | None = None,
        text_field_weights: Sequence[float] | Mapping[str, float] | None = None,
        require_all_terms: bool | None = None,
    ) -> list[dict[str, Any]]: ...
    def query_text(
        self,
        words: str,
        top_k: int = 10,
        filters: Mapping[str, Any] | str | None = None,
        include: _Include = ("distance",),
    ) -> list[Hit]: ...
    def query_ids(
        self,
        vectors: _Vectors,
        top_k: int = 10,
        n_probes: int | None = None,
        filters: Mapping[str, Any] | str | None = None,
        rerank: int | None = None,
    ) -> "np.ndarray[Any, np.dtype[np.int64]] | list[list[str]]": ...
    def get(self, ids: Sequence[str], include: _Include = ("metadata", "contents")) -> list[Hit]: ...
    def delete(self, ids: Sequence[str]) -> int: ...
    def list_ids(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def is_trained(self) -> bool: ...
    def is_training(self) -> bool: ...
    def training_status(self) -> dict[str, Any]: ...
    def enable_full_text(self) -> None: ...
    def compact(self) -> None: ...
    def rotate_data_key(self) -> None: ...
    def grant(self, user: str, user_key: _Key, access: str = "read") -> None: ...
    def revoke(self, user: str) -> None: ...
    def users(self) -> list[tuple[str, str]]: ...
    def verify(self) -> dict[str, int]: ...
    def backup_to(self, path: Union[str, PathLike[str]]) -> None: ...
    def anchor(self) -> str: ...
    def check_anchor(self, anchor: str) -> None: ...
    def refresh(self) -> bool: ...

class GcpKms:
    def __init__(
        self,
        key_name: str,
        *,
        endpoint: str | None = None,
        access_token: str | None = None,
        credentials_file: Union[str, PathLike[str], None] = None,
        credentials_json: str | None = None,
        metadata_server: Union[bool, str, None] = None,
        timeout: float = 10.0,
        max_retries: int = 3,
    ) -> None: ...
    def generate_key(self, index_name: str) -> tuple[bytes, str]:
        """A fresh 32-byte key for the index and its wrapped form (text to store)."""
    def unwrap_key(self, wrapped: str, index_name: str) -> bytes:
        """The key of ``wrapped``; KeyServiceError for another index's or an altered one."""

class AzureKeyVault:
    def __init__(
        self,
        key_id: str,
        *,
        access_token: str | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        authority_host: str | None = None,
        managed_identity: bool = False,
        imds_endpoint: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
    ) -> None: ...
    def generate_key(self, index_name: str) -> tuple[bytes, str]:
        """A fresh 32-byte key for the index and its wrapped form (text to store)."""
    def unwrap_key(self, wrapped: str, index_name: str) -> bytes:
        """The key of ``wrapped``; KeyServiceError for another index's or an altered one."""

class AwsKms:
    def __init__(
        self,
        key_id: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        timeout: float = 10.0,
    ) -> None: ...
    def generate_key(self, index_name: str) -> tuple[bytes, str]:
        """A fresh 32-byte key for the index and its wrapped form (text to store)."""
    def unwrap_key(self, wrapped: str, index_name: str) -> bytes:
        """The key of ``wrapped``; KeyServiceError for another index's or an altered one."""

class VaultTransit:
    def __init__(
        self,
        address: str,
        token: str,
        key_name: str = "ciphervec",
        *,
        mount: str = "transit",
        timeout: float = 10.0,
    ) -> None: ...
    def generate_key(self, index_name: str) -> tuple[bytes, str]:
        """A fresh 32-byte key for the index and its wrapped form (text to store)."""
    def unwrap_key(self, wrapped: str, index_name: str) -> bytes:
        """The key of ``wrapped``; KeyServiceError for another index's or an altered one."""
