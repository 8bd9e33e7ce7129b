//! The one error type of the crate.
//!
//! Messages never contain key bytes, vectors, ids, contents or metadata: a variant may carry
//! sizes, counts and names of operators or arguments, nothing read from the caller's data.

use std::fmt;

/// Everything that can go wrong in ciphervec.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The key material is not a valid 256-bit key (wrong length, bad base64 or hex).
    InvalidKey,
    /// The key does not open this index (the key-check value does not match).
    WrongKey,
    /// No index of that name exists.
    IndexNotFound,
    /// An index of that name already exists.
    IndexExists,
    /// A vector has the wrong number of dimensions.
    DimensionMismatch {
        /// The dimension of the index.
        expected: usize,
        /// The dimension of the vector that was given.
        found: usize,
    },
    /// A vector contains NaN or infinity, is empty, has a norm so large (2^62, about 4.6e18,
    /// or more) that its distances would overflow, or is a zero vector under cosine (a norm
    /// that is zero in `f32` counts as zero).
    InvalidVector,
    /// A filter that does not parse.
    InvalidFilter {
        /// What is wrong, naming the operator or path (never a metadata value).
        reason: String,
    },
    /// Any other bad argument (empty id, oversized field, `top_k == 0`, ...).
    InvalidArgument {
        /// Which argument and why.
        reason: String,
    },
    /// Another writer holds the index.
    Locked,
    /// A write on a handle opened with `Database::open_index_read_only`.
    ReadOnly,
    /// Stored bytes failed authentication or decoding.
    Corrupted {
        /// Which object failed (a file kind, never its contents).
        what: String,
    },
    /// The per-key use cap was reached and no fresh key could be derived.
    KeyExhausted,
    /// A key management service (KMS) could not produce or unwrap a key.
    KeyService {
        /// Why: unreachable, refused (wrong encryption context, no permission, unknown key) or
        /// an unexpected response.
        kind: KeyServiceFailure,
        /// The service's own words (never key material).
        message: String,
    },
    /// The index on storage is older than an `Anchor` taken earlier: a
    /// rollback (a restored `MANIFEST`, folder or backup) that the segments could not prove.
    RolledBack,
    /// The storage could not be reached after bounded retries (object stores); nothing was
    /// changed.
    Unavailable,
    /// An earlier commit on this handle failed and its rollback could not be written either,
    /// so the handle no longer knows what is committed: it refuses writes until the index is
    /// reopened (reopening reads the committed state from storage).
    Poisoned,
    /// The stored index is in an on-disk format this version does not read: newer than it
    /// (written by a later version of ciphervec), or older than the oldest it still reads.
    UnsupportedFormat {
        /// The format version found in storage.
        found: u32,
        /// The newest format version this build reads (and the one it writes).
        supported: u32,
    },
    /// The handle's user grant does not allow the operation (a read-only grant asked to
    /// write, a user without `Admin` asked to manage grants); nothing was done.
    PermissionDenied,
    /// An operating-system error.
    Io(std::io::Error),
}

/// Why a key management service failed (see [`Error::KeyService`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyServiceFailure {
    /// The service could not be reached (connection refused, DNS, timeout).
    Unreachable,
    /// The service answered and refused: wrong encryption context or wrapped key, missing
    /// permission (`kms:Decrypt`, a Vault policy), unknown or disabled key.
    Refused,
    /// The service answered something that is not a valid 256-bit key or wrapped key.
    BadResponse,
}

/// `std::result::Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid_argument(reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> Error {
        Error::Corrupted { what: what.into() }
    }

    /// The one of `all` whose name (`name`) is `text`, in any case: the parser of every
    /// closed vocabulary (metrics, index types). Otherwise
    /// [`InvalidArgument`](Error::InvalidArgument) listing the names: "a metric is one of
    /// euclidean, ... or inner_product".
    pub(crate) fn by_name<T: Copy, const N: usize>(
        kind: &str,
        all: [T; N],
        name: fn(T) -> &'static str,
        text: &str,
    ) -> Result<T> {
        all.into_iter()
            .find(|&t| name(t).eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let names = all.map(name);
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.join(""),
                };
                Error::invalid_argument(format!("{kind} is one of {list}"))
            })
    }

    #[cfg_attr(
        not(any(
            feature = "aws-kms",
            feature = "vault",
            feature = "gcp-kms",
            feature = "azure-kv"
        )),
        allow(dead_code)
    )]
    pub(crate) fn key_service(kind: KeyServiceFailure, message: impl Into<String>) -> Error {
        Error::KeyService {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_filter(reason: impl Into<String>) -> Error {
        Error::InvalidFilter {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey => f.write_str("invalid key: expected 32 bytes (base64, hex or raw)"),
            Error::WrongKey => f.write_str("wrong key: this key does not open the index"),
            Error::IndexNotFound => f.write_str("no index of that name"),
            Error::IndexExists => f.write_str("an index of that name already exists"),
            Error::DimensionMismatch { expected, found } => {
                write!(f, "dimension mismatch: expected {expected}, found {found}")
            }
            Error::InvalidVector => {
                f.write_str("invalid vector: empty, non-finite, too large, or zero under cosine")
            }
            Error::InvalidFilter { reason } => write!(f, "invalid filter: {reason}"),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::Locked => f.write_str("the index is locked by another writer"),
            Error::ReadOnly => f.write_str("the index was opened read-only"),
            Error::Corrupted { what } => write!(f, "corrupted storage: {what}"),
            Error::KeyExhausted => f.write_str("encryption key use limit reached"),
            Error::KeyService { kind, message } => {
                let what = match kind {
                    KeyServiceFailure::Unreachable => "unreachable",
                    KeyServiceFailure::Refused => "refused",
                    KeyServiceFailure::BadResponse => "bad response",
                };
                write!(f, "key service {what}: {message}")
            }
            Error::RolledBack => {
                f.write_str("the index is older than its anchor: storage was rolled back")
            }
            Error::Unavailable => f.write_str("storage unavailable after retries"),
            Error::Poisoned => f.write_str(
                "an earlier commit failed and could not be rolled back: reopen the index",
            ),
            Error::UnsupportedFormat { found, supported } => write!(
                f,
                "unsupported on-disk format {found} (this version reads up to {supported})"
            ),
            Error::PermissionDenied => {
                f.write_str("permission denied: the user's grant does not allow this")
            }
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    /// An I/O error; one that says storage could not be reached (after the store's bounded
    /// retries: connection refused or reset, timeout, not connected) is
    /// [`Error::Unavailable`], and one of kind `ResourceBusy` (a writer lease or manifest
    /// taken over by another writer) is [`Error::Locked`].
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotConnected
            | K::TimedOut
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted => Error::Unavailable,
            // Another writer holds the store's writer lease, or took it over.
            K::ResourceBusy => Error::Locked,
            _ => Error::Io(e),
        }
    }
}
