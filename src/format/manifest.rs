//! The manifest file: a clear header, an encrypted body, and a MAC over both.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "CVECMAN1"
//! 8       2     format version
//! 10      2     reserved, zero
//! 12      32    salt
//! 44      16    index id
//! 60      32    key-check value
//! 92      64    wrapped data key (generation 4, nonce 12, key 32, tag 16)
//! 156     32    header checksum: SHA3-256 of bytes [0, 156) (unkeyed)
//! 188     4     body length B
//! 192     B     sealed body (AES-256-GCM under the manifest key)
//! 192+B   32    HMAC-SHA3-256 under the manifest-MAC key of bytes [0, 192+B)
//! ```
//! The checksum tells a damaged header from a wrong key: a flipped byte in the salt, id,
//! key-check value or wrapped key is `Corrupted` before any key is tried. It proves nothing
//! against a deliberate change (anyone can recompute it); the MAC and the AEAD do that.

use serde::{Deserialize, Serialize};

use super::reader::Reader;
use super::{FORMAT_VERSION, INDEX_ID_LEN, KEY_CHECK_LEN, SALT_LEN, WRAPPED_KEY_LEN};
use crate::error::{Error, Result};

/// File name of the manifest.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// Magic bytes at offset 0.
pub(crate) const MAGIC: &[u8; 8] = b"CVECMAN1";
/// Length of the clear header, up to and including the body length.
pub(crate) const HEADER_LEN: usize = CHECKED_LEN + CHECKSUM_LEN + 4;
/// Length of the clear fields the header checksum covers.
const CHECKED_LEN: usize = 8 + 2 + 2 + SALT_LEN + INDEX_ID_LEN + KEY_CHECK_LEN + WRAPPED_KEY_LEN;
/// Length of the header checksum.
const CHECKSUM_LEN: usize = 32;
/// The largest manifest file read: checked before anything is copied, so that a hostile
/// (say, 4 GiB sparse) `MANIFEST` costs nothing. About a million live segments fit.
pub(crate) const MAX_FILE_LEN: usize = 64 << 20;
/// Length of the trailing MAC.
pub(crate) const MAC_LEN: usize = 32;

/// The clear header: what the storage may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManifestHeader {
    /// The per-index random salt of the key schedule.
    pub salt: [u8; SALT_LEN],
    /// The per-index random id.
    pub index_id: [u8; INDEX_ID_LEN],
    /// Key-check value of the index key.
    pub key_check: [u8; KEY_CHECK_LEN],
    /// The data key wrapped by the index key.
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}

/// The index type, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StoredIndexType {
    /// Full-precision vectors in inverted lists.
    IvfFlat,
    /// SQ8 codes plus full vectors.
    IvfSq8,
    /// 4-bit PQ codes (this many subquantizers) plus full vectors.
    IvfPq(u32),
    /// The same with 8-bit refine codes (`IndexConfig::refine_bits`; appended, so every
    /// earlier manifest reads as before, and a reader that predates it refuses it as
    /// corrupted).
    IvfPqRefine8(u32),
}

/// The distance metric, as stored (the variant order is the encoding: append only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StoredMetric {
    /// Euclidean.
    Euclidean,
    /// Squared Euclidean.
    SquaredEuclidean,
    /// Cosine.
    Cosine,
    /// Inner product.
    InnerProduct,
}

/// The configuration, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    /// Index type.
    pub index_type: StoredIndexType,
    /// Vector dimension.
    pub dimension: u32,
    /// Metric.
    pub metric: StoredMetric,
    /// Configured number of lists (0 = automatic).
    pub n_lists: u32,
    /// Configured default probes (0 = automatic).
    pub n_probes: u32,
    /// Whether contents are indexed for full-text search (format 6).
    pub full_text: bool,
}

/// One live segment, as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentRef {
    /// Sequence number (also the file name).
    pub seq: u64,
    /// File length in bytes.
    pub len: u64,
    /// SHA3-256 of the whole file.
    pub digest: [u8; 32],
}

/// The encrypted body of the manifest: the committed state of the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestBody {
    /// Grows by one at every commit.
    pub epoch: u64,
    /// Configuration.
    pub config: StoredConfig,
    /// Sequence number the next segment gets.
    pub next_segment: u64,
    /// Key generation the next writer starts at.
    pub key_generation: u32,
    /// Live segments, in ascending sequence order (later ones win).
    pub segments: Vec<SegmentRef>,
    /// Training state: present once trained.
    pub trained: Option<TrainedRef>,
    /// Epoch of list labels and query tokens: moves at every training and compaction, so
    /// that nothing derived from them links two epochs.
    pub list_epoch: u64,
    /// The index's name, bound under the key so that an index's files cannot be served
    /// under another name (two indexes sharing a key, their folders swapped).
    pub name: String,
}

/// Where the trained centroids (and codebook) are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrainedRef {
    /// Segment holding the centroids record.
    pub centroids_segment: u64,
    /// Number of lists.
    pub n_lists: u32,
    /// Whether the centroids segment also holds a codebook record (quantized types).
    pub codebook: bool,
}

/// Encodes header + body length + sealed body: the bytes the MAC covers.
pub(crate) fn encode_unsigned(header: &ManifestHeader, sealed_body: &[u8]) -> Result<Vec<u8>> {
    let body_len = u32::try_from(sealed_body.len())
        .map_err(|_| Error::invalid_argument("manifest too large"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed_body.len() + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&header.salt);
    out.extend_from_slice(&header.index_id);
    out.extend_from_slice(&header.key_check);
    out.extend_from_slice(&header.wrapped_key);
    let checksum = checksum(&out);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(sealed_body);
    Ok(out)
}

/// A manifest file split into its parts (nothing verified yet).
pub(crate) struct ManifestParts<'a> {
    /// The clear header.
    pub header: ManifestHeader,
    /// The sealed body.
    pub sealed_body: &'a [u8],
    /// The bytes the MAC covers.
    pub signed: &'a [u8],
    /// The MAC.
    pub mac: &'a [u8],
}

/// Splits a manifest file, checking magic, version and lengths.
pub(crate) fn decode(file: &[u8]) -> Result<ManifestParts<'_>> {
    let mut r = Reader::new(file, "manifest");
    if r.bytes(8)? != MAGIC {
        return Err(r.corrupted());
    }
    let version = r.u16()?;
    if version != FORMAT_VERSION {
        return Err(Error::corrupted(format!(
            "manifest format version {version}"
        )));
    }
    if r.u16()? != 0 {
        return Err(r.corrupted());
    }
    let salt = r.array()?;
    let index_id = r.array()?;
    let key_check = r.array()?;
    let wrapped_key = r.array()?;
    let stored: [u8; CHECKSUM_LEN] = r.array()?;
    if stored != checksum(&file[..CHECKED_LEN]) {
        return Err(Error::corrupted("manifest header checksum"));
    }
    let body_len = r.u32()? as usize;
    let sealed_body = r.bytes(body_len)?;
    let signed_len = r.position();
    let mac = r.bytes(MAC_LEN)?;
    r.finish()?;
    Ok(ManifestParts {
        header: ManifestHeader {
            salt,
            index_id,
            key_check,
            wrapped_key,
        },
        sealed_body,
        signed: &file[..signed_len],
        mac,
    })
}

/// SHA3-256 of the clear header fields.
fn checksum(fields: &[u8]) -> [u8; CHECKSUM_LEN] {
    use sha3::Digest as _;
    sha3::Sha3_256::digest(fields).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncations_fail() {
        let header = ManifestHeader {
            salt: [1; SALT_LEN],
            index_id: [2; INDEX_ID_LEN],
            key_check: [3; KEY_CHECK_LEN],
            wrapped_key: [4; WRAPPED_KEY_LEN],
        };
        let mut file = encode_unsigned(&header, b"body").unwrap();
        assert_eq!(file.len(), HEADER_LEN + 4);
        file.extend_from_slice(&[9; MAC_LEN]);
        let parts = decode(&file).unwrap();
        assert_eq!(parts.header, header);
        assert_eq!(parts.sealed_body, b"body");
        assert_eq!(parts.mac, &[9; MAC_LEN]);
        for cut in 0..file.len() {
            assert!(decode(&file[..cut]).is_err());
        }
        // Every flipped bit of the clear header is caught by the checksum (or the magic).
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = file.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            if bit / 8 < HEADER_LEN - 4 {
                assert!(
                    matches!(decode(&bad), Err(Error::Corrupted { .. })),
                    "bit {bit}"
                );
            }
        }
    }
}
