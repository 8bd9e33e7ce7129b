//! Byte layouts of everything ciphervec stores, with checked decoding that never panics.
//!
//! `docs/FORMAT.md` is the byte-level specification of the same layouts; the offsets there and
//! the constants here must agree. All integers are little-endian.
//!
//! This layer knows bytes and layouts only: it seals nothing and derives nothing. The facade
//! (`index`) joins these layouts with the ciphertexts of `crypto`, handing `crypto` the
//! [`FORMAT_VERSION`] and a [`RecordKind`] as plain values to bind into associated data.

pub(crate) mod access;
pub(crate) mod codec;
pub(crate) mod manifest;
pub(crate) mod padding;
pub(crate) mod reader;
pub(crate) mod segment;
pub(crate) mod vectors;

/// The on-disk format version this version writes, into every clear header, and binds into
/// every ciphertext's associated data. Version 8 (2026-12-07, unreleased during wave 3) adds
/// the history chain (every commit names the one it extends) and the key fields of segment
/// headers; version 7 is the format of 0.1.0.
pub(crate) const FORMAT_VERSION: u16 = 8;
/// The oldest format version this version still reads (and upgrades when it writes):
/// `tests/data/format-v*` holds a fixture of each.
pub(crate) const OLDEST_FORMAT: u16 = 7;

/// Refuses a format version outside [`OLDEST_FORMAT`]..=[`FORMAT_VERSION`] with
/// [`Error::UnsupportedFormat`](crate::error::Error::UnsupportedFormat).
pub(crate) fn check_version(version: u16) -> crate::error::Result<()> {
    if (OLDEST_FORMAT..=FORMAT_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(crate::error::Error::UnsupportedFormat {
            found: u32::from(version),
            supported: u32::from(FORMAT_VERSION),
        })
    }
}

/// Length of a commit id: what a commit's history chain link is (see
/// `manifest::History`).
pub(crate) const COMMIT_ID_LEN: usize = 16;
/// A commit id: 16 bytes of SHA3-256 over the commit it names and its parent's id.
pub(crate) type CommitId = [u8; COMMIT_ID_LEN];

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
    /// The ids of older commits of the history chain (format 8), written by a rewrite.
    History = 12,
    /// A user's grant in the manifest's access section (format 8).
    Grant = 13,
    /// The roster of the access section: user names, scopes and grant keys (format 8).
    Roster = 14,
    /// The index key holder's secrets in the access section (format 8).
    OwnerSecrets = 15,
    /// A rewrite's copy of the access section it commits, so that a roll-forward of the
    /// rewrite installs it too (format 8).
    Access = 16,
}

impl RecordKind {
    /// The kind a segment directory entry names, if `v` is one a directory may list
    /// (centroids, list blocks, fields, tombstones, codebooks, history, access).
    pub(crate) fn listed_in_segment(v: u8) -> Option<RecordKind> {
        match v {
            3 => Some(RecordKind::Centroids),
            4 => Some(RecordKind::ListBlock),
            5 => Some(RecordKind::Fields),
            6 => Some(RecordKind::Tombstones),
            7 => Some(RecordKind::Codebook),
            12 => Some(RecordKind::History),
            16 => Some(RecordKind::Access),
            _ => None,
        }
    }
}
