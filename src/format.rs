//! Byte layouts of everything ciphervec stores, with checked decoding that never panics.
//!
//! `docs/FORMAT.md` is the byte-level specification of the same layouts; the offsets there and
//! the constants here must agree. All integers are little-endian.
//!
//! This layer knows bytes and layouts only: it seals nothing and derives nothing. The facade
//! (`index`) joins these layouts with the ciphertexts of `crypto`, handing `crypto` the
//! [`FORMAT_VERSION`] and a [`RecordKind`] as plain values to bind into associated data.

pub(crate) mod codec;
pub(crate) mod manifest;
pub(crate) mod padding;
pub(crate) mod reader;
pub(crate) mod segment;

/// The on-disk format version, written into every clear header and bound into every
/// ciphertext's associated data.
pub(crate) const FORMAT_VERSION: u16 = 7;

/// Length of the per-index random salt.
pub(crate) const SALT_LEN: usize = 32;
/// Length of the per-index random id.
pub(crate) const INDEX_ID_LEN: usize = 16;
/// Length of the key-check value.
pub(crate) const KEY_CHECK_LEN: usize = 32;
/// Length of a wrapped data key: generation (4) + nonce (12) + key (32) + tag (16).
pub(crate) const WRAPPED_KEY_LEN: usize = 64;
/// Bytes sealing adds to a plaintext (generation 4, nonce 12, tag 16): fixed-size sealed
/// fields such as a segment footer are laid out with it.
pub(crate) const SEALED_OVERHEAD: usize = 32;

/// What a sealed record holds: bound into its associated data, so that records of one kind
/// cannot be replayed as another, and (for the kinds a segment lists) written into the
/// segment's record directory. The one list of record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// The data key wrapped by the index key.
    WrappedKey = 1,
    /// The body of the manifest.
    Manifest = 2,
    /// Trained centroids.
    Centroids = 3,
    /// The entries (item tokens, ids, codes, and where the vectors are) of one list in one
    /// segment.
    ListBlock = 4,
    /// The id, metadata and contents of one item.
    Fields = 5,
    /// Tokens of deleted items.
    Tombstones = 6,
    /// Trained code parameters of a quantized index.
    Codebook = 7,
    /// The record directory of one segment.
    Directory = 8,
    /// The vector of one item (quantized index types), named by its list block.
    Vector = 9,
    /// The footer of one segment: where its directory is, and its commit note.
    Footer = 10,
    /// The vectors of one list block (`ivf_flat`), named by the block: apart from it so that
    /// an open reads the entries without the vectors.
    BlockVectors = 11,
}

impl RecordKind {
    /// The kind a segment directory entry names, if `v` is one a directory may list
    /// (centroids, list blocks, fields, tombstones, codebooks).
    pub(crate) fn listed_in_segment(v: u8) -> Option<RecordKind> {
        match v {
            3 => Some(RecordKind::Centroids),
            4 => Some(RecordKind::ListBlock),
            5 => Some(RecordKind::Fields),
            6 => Some(RecordKind::Tombstones),
            7 => Some(RecordKind::Codebook),
            _ => None,
        }
    }
}
