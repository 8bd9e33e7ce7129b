"""Exceptions raised by ciphervec. Every one subclasses :class:`CiphervecError`; errors about
the caller's input also subclass :class:`ValueError`, storage failures :class:`OSError`."""

__all__ = [
    "CiphervecError",
    "WrongKeyError",
    "IndexNotFoundError",
    "IndexExistsError",
    "LockedError",
    "ReadOnlyError",
    "CorruptedError",
    "RolledBackError",
    "UnavailableError",
    "UnsupportedFormatError",
    "PermissionDeniedError",
    "KeyServiceError",
    "StorageError",
    "InvalidFilterError",
    "DimensionMismatchError",
    "InvalidVectorError",
    "InvalidArgumentError",
]


class CiphervecError(Exception):
    """Base class of every ciphervec error (also raised for an internal error)."""


class WrongKeyError(CiphervecError):
    """The key does not open this index."""


class IndexNotFoundError(CiphervecError):
    """No index of that name."""


class IndexExistsError(CiphervecError):
    """An index of that name already exists."""


class LockedError(CiphervecError):
    """Another writer holds the index."""


class ReadOnlyError(CiphervecError):
    """A write through a read-only handle."""


class CorruptedError(CiphervecError):
    """Stored bytes failed authentication or do not belong to this index."""


class RolledBackError(CiphervecError):
    """The stored index is older than an anchor taken earlier."""


class UnavailableError(CiphervecError, OSError):
    """Storage unreachable after bounded retries."""


class UnsupportedFormatError(CiphervecError):
    """The stored index is in an on-disk format this version does not read (written by a
    newer version of ciphervec)."""


class PermissionDeniedError(CiphervecError):
    """The user's grant does not allow the operation (a read-only user asked to write)."""


class KeyServiceError(CiphervecError):
    """A key management service (GcpKms, AzureKeyVault, AwsKms, VaultTransit) could not
    produce or unwrap a key: unreachable (after bounded retries), refused (a wrapped key of
    another index or altered, no permission, unknown or disabled key or version, a bad
    credential) or an answer that makes no sense; the message says which, in the service's
    words, and never holds a key or a token."""


class StorageError(CiphervecError, OSError):
    """A local I/O error (the index stays as it was)."""


class InvalidFilterError(CiphervecError, ValueError):
    """A malformed metadata filter."""


class DimensionMismatchError(CiphervecError, ValueError):
    """A vector of the wrong dimension."""


class InvalidVectorError(CiphervecError, ValueError):
    """An empty vector, a non-finite value, a norm of 2**62 or more, or a zero vector under
    cosine."""


class InvalidArgumentError(CiphervecError, ValueError):
    """Any other invalid argument (id, metadata, top_k, option values, key length...)."""
