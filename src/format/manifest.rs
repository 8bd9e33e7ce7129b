//! The manifest file: a clear header, an encrypted body, and a MAC over both.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "CVECMAN1"
//! 8       2     format version
//! 10      2     flags (format 8): 1 = an access section and a signature follow the body
//! 12      32    salt
//! 44      16    index id
//! 60      32    key-check value
//! 92      64    wrapped data key (generation 4, nonce 12, key 32, tag 16)
//! 156     32    header checksum: SHA3-256 of bytes [0, 156) (unkeyed)
//! 188     4     body length B
//! 192     B     sealed body (AES-256-GCM under the manifest key)
//! (flag 1: 192+B 4 access section length A, then A bytes: `access::AccessSection`)
//! E       32    HMAC-SHA3-256 under the manifest-MAC key of bytes [0, E)
//! (flag 1: E+32 64 Ed25519 signature of bytes [0, E+32) under the index's signing key)
//! ```
//! The checksum tells a damaged header from a wrong key: a flipped byte in the salt, id,
//! key-check value or wrapped key is `Corrupted` before any key is tried. It proves nothing
//! against a deliberate change (anyone can recompute it); the MAC and the AEAD do that.

use serde::{Deserialize, Serialize};

use super::access::AccessSection;
use super::reader::Reader;
use super::vectors::VectorCoding;
use super::{CommitId, INDEX_ID_LEN, KEY_CHECK_LEN, SALT_LEN, WRAPPED_KEY_LEN};
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
/// Length of the signature after the MAC (flag 1).
pub(crate) const SIGNATURE_LEN: usize = 64;
/// Header flag: an access section and a signature follow the body.
const FLAG_ACCESS: u16 = 1;

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
    /// Grants and the verifying key (format 8, header flag 1): `None` for an index without
    /// access control.
    pub access: Option<AccessSection>,
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

/// The configuration, as stored (format 8: fields are appended while the format is
/// unreleased; [`StoredConfigV7`] is format 7's, frozen).
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
    /// The metadata schema: every field it names, in path order (format 8).
    pub schema: Vec<StoredField>,
    /// BM25's `k1` and `b`, as the bits of `f32`s (format 8).
    pub bm25: (u32, u32),
    /// How stored vectors are coded (format 8).
    pub vectors: VectorCoding,
    /// Whether the index trains, retrains and splits its lists by itself (format 8; an index
    /// of format 7 reads as `false`: it was made to train only when asked).
    pub auto_train: bool,
}

/// One field of the metadata schema, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredField {
    /// The dotted path.
    pub path: String,
    /// Held by the equality and range indexes.
    pub filterable: bool,
    /// Held by the pattern dictionary.
    pub pattern: bool,
    /// Analyzed for BM25.
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

/// The encrypted body of the manifest: the committed state of the index (format 8; format
/// 7's, [`ManifestBodyV7`], is read and converted).
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
    /// The commits this state extends (format 8).
    pub history: History,
    /// Live items when the lists were last trained (explicitly or in the background); 0
    /// when unknown (never trained, trained in format 7, or a training rolled forward at
    /// open: the item count then stands in). Self-maintenance retrains against it (format 8).
    pub trained_at_items: u64,
}

/// The history chain: the id of every commit of the index since its first commit in format
/// 8, each computed over its parent's id, its epoch and what it wrote (the sealed footer of
/// its segment, or the manifest header of a manifest-only commit). The newest entry is the
/// state's own id, its *head*. Anchors name a commit by epoch and id; a reader checks that a
/// newer state's history holds the commit it serves; roll-forward applies only segments
/// whose note names the head as parent. So a history that forks (an older manifest put
/// back, then written on) differs from the original at the fork's first epoch, whatever
/// the epochs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct History {
    /// (epoch, commit id) of the commits since the newest rewrite, epochs ascending (they
    /// may skip: a failed commit's epoch is never used again); the last is the head.
    pub recent: Vec<(u64, CommitId)>,
    /// The live segment (the first: a rewrite's) whose history record lists the commits
    /// before `recent`, if any.
    pub archived: Option<u64>,
    /// Segment numbers a writer found taken when it wrote (a stalled writer's segment whose
    /// manifest never landed, or anything else in its way): this history went on past them,
    /// so they are never part of it. Opens neither apply nor delete them (newest
    /// [`MAX_ABANDONED`] kept).
    pub abandoned: Vec<u64>,
}

/// How many abandoned segment numbers a history keeps.
pub(crate) const MAX_ABANDONED: usize = 64;

impl History {
    /// The id of the newest commit: zeros before the first commit in format 8.
    pub(crate) fn head(&self) -> CommitId {
        self.recent
            .last()
            .map_or([0; super::COMMIT_ID_LEN], |(_, id)| *id)
    }

    /// The id this history records for `epoch` among the recent commits: `Some(None)` when
    /// the epoch lies within them but was never committed (a failed commit's), `None` when it
    /// is older than them (look in the archived record).
    pub(crate) fn recent_id(&self, epoch: u64) -> Option<Option<CommitId>> {
        let first = self.recent.first()?.0;
        if epoch < first {
            return None;
        }
        Some(
            self.recent
                .binary_search_by_key(&epoch, |(e, _)| *e)
                .ok()
                .map(|i| self.recent[i].1),
        )
    }
}

/// The configuration as format 7 stored it (frozen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredConfigV7 {
    index_type: StoredIndexType,
    dimension: u32,
    metric: StoredMetric,
    n_lists: u32,
    n_probes: u32,
    full_text: bool,
}

/// BM25's `(k1, b)` as bits, as format 7 (which did not store them) applied them: 1.2 and
/// 0.75.
const V7_BM25: (u32, u32) = (0x3f99_999a, 0x3f40_0000);

/// The manifest body as format 7 stored it (frozen): read from indexes written by 0.1.0,
/// written only when a backup copies such an index as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestBodyV7 {
    epoch: u64,
    config: StoredConfigV7,
    next_segment: u64,
    key_generation: u32,
    segments: Vec<SegmentRef>,
    trained: Option<TrainedRef>,
    list_epoch: u64,
    name: String,
}

impl From<ManifestBodyV7> for ManifestBody {
    fn from(v7: ManifestBodyV7) -> ManifestBody {
        let c = v7.config;
        ManifestBody {
            epoch: v7.epoch,
            config: StoredConfig {
                index_type: c.index_type,
                dimension: c.dimension,
                metric: c.metric,
                n_lists: c.n_lists,
                n_probes: c.n_probes,
                full_text: c.full_text,
                schema: Vec::new(),
                bm25: V7_BM25,
                vectors: VectorCoding::F32,
                auto_train: false,
            },
            next_segment: v7.next_segment,
            key_generation: v7.key_generation,
            segments: v7.segments,
            trained: v7.trained,
            list_epoch: v7.list_epoch,
            name: v7.name,
            history: History::default(),
            trained_at_items: 0,
        }
    }
}

impl From<&ManifestBody> for ManifestBodyV7 {
    /// A body read from format 7, as format 7 writes it (what format 8 added is empty there).
    fn from(b: &ManifestBody) -> ManifestBodyV7 {
        let c = &b.config;
        ManifestBodyV7 {
            epoch: b.epoch,
            config: StoredConfigV7 {
                index_type: c.index_type,
                dimension: c.dimension,
                metric: c.metric,
                n_lists: c.n_lists,
                n_probes: c.n_probes,
                full_text: c.full_text,
            },
            next_segment: b.next_segment,
            key_generation: b.key_generation,
            segments: b.segments.clone(),
            trained: b.trained.clone(),
            list_epoch: b.list_epoch,
            name: b.name.clone(),
        }
    }
}

/// Decodes a manifest body's plaintext of format `version`.
pub(crate) fn decode_body(version: u16, plain: &[u8]) -> Result<ManifestBody> {
    match version {
        7 => super::codec::decode::<ManifestBodyV7>(plain, "MANIFEST body").map(Into::into),
        _ => super::codec::decode(plain, "MANIFEST body"),
    }
}

/// Encodes a manifest body in format `version`.
pub(crate) fn encode_body(version: u16, body: &ManifestBody) -> Result<Vec<u8>> {
    match version {
        7 => super::codec::encode(&ManifestBodyV7::from(body)),
        _ => super::codec::encode(body),
    }
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

/// Encodes header (in format `version`) + body length + sealed body: the bytes the MAC
/// covers.
pub(crate) fn encode_unsigned(
    version: u16,
    header: &ManifestHeader,
    sealed_body: &[u8],
) -> Result<Vec<u8>> {
    let body_len = u32::try_from(sealed_body.len())
        .map_err(|_| Error::invalid_argument("manifest too large"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed_body.len() + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    let flags = if header.access.is_some() {
        FLAG_ACCESS
    } else {
        0
    };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&header.salt);
    out.extend_from_slice(&header.index_id);
    out.extend_from_slice(&header.key_check);
    out.extend_from_slice(&header.wrapped_key);
    let checksum = checksum(&out);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(sealed_body);
    if let Some(access) = &header.access {
        let bytes = access.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Length of what an access section adds to a manifest file (its length field, its bytes,
/// the signature), for the padding of the body.
pub(crate) fn access_overhead(header: &ManifestHeader) -> usize {
    header
        .access
        .as_ref()
        .map_or(0, |a| 4 + a.encode().len() + SIGNATURE_LEN)
}

/// A manifest file split into its parts (nothing verified yet).
pub(crate) struct ManifestParts<'a> {
    /// The format version (one this version reads).
    pub version: u16,
    /// The clear header.
    pub header: ManifestHeader,
    /// The sealed body.
    pub sealed_body: &'a [u8],
    /// The bytes the MAC covers.
    pub signed: &'a [u8],
    /// The MAC.
    pub mac: &'a [u8],
    /// The bytes the signature covers (through the MAC) and the signature (flag 1).
    pub signature: Option<(&'a [u8], [u8; SIGNATURE_LEN])>,
}

/// Splits a manifest file, checking magic, version and lengths.
///
/// Every format keeps magic, version and header checksum where format 7 has them, so a
/// version this one does not read, under a checksum that holds, is
/// [`Error::UnsupportedFormat`] (a newer ciphervec wrote it), while a damaged version field
/// fails the checksum and is [`Error::Corrupted`].
pub(crate) fn decode(file: &[u8]) -> Result<ManifestParts<'_>> {
    let mut r = Reader::new(file, "manifest");
    if r.bytes(8)? != MAGIC {
        return Err(r.corrupted());
    }
    let version = r.u16()?;
    if let Err(unsupported) = super::check_version(version) {
        let intact = file
            .get(..CHECKED_LEN + CHECKSUM_LEN)
            .is_some_and(|h| h[CHECKED_LEN..] == checksum(&h[..CHECKED_LEN]));
        return Err(if intact {
            unsupported
        } else {
            Error::corrupted("manifest header checksum")
        });
    }
    let flags = r.u16()?;
    if flags & !FLAG_ACCESS != 0 || (version < 8 && flags != 0) {
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
    let access = if flags & FLAG_ACCESS != 0 {
        let len = r.u32()? as usize;
        Some(AccessSection::decode(r.bytes(len)?)?)
    } else {
        None
    };
    let signed_len = r.position();
    let mac = r.bytes(MAC_LEN)?;
    let signature = if access.is_some() {
        let covered = r.position();
        Some((&file[..covered], r.array()?))
    } else {
        None
    };
    r.finish()?;
    Ok(ManifestParts {
        version,
        header: ManifestHeader {
            salt,
            index_id,
            key_check,
            wrapped_key,
            access,
        },
        sealed_body,
        signed: &file[..signed_len],
        mac,
        signature,
    })
}

/// The format version a manifest's clear header states, read without a key and without
/// checking anything past the magic (what the storage shows anyone: `ciphervec info`).
pub(crate) fn stated_version(file: &[u8]) -> Result<u16> {
    let mut r = Reader::new(file, "manifest");
    if r.bytes(8)? != MAGIC {
        return Err(r.corrupted());
    }
    r.u16()
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
            access: None,
        };
        let mut file = encode_unsigned(super::super::FORMAT_VERSION, &header, b"body").unwrap();
        assert_eq!(file.len(), HEADER_LEN + 4);
        file.extend_from_slice(&[9; MAC_LEN]);
        let parts = decode(&file).unwrap();
        assert_eq!(parts.header, header);
        assert_eq!(parts.sealed_body, b"body");
        assert_eq!(parts.mac, &[9; MAC_LEN]);
        for cut in 0..file.len() {
            assert!(decode(&file[..cut]).is_err());
        }
        // A version this one does not read, under an intact checksum: a newer writer's.
        let newer = encode_unsigned(99, &header, b"body").unwrap();
        assert!(matches!(
            decode(&newer),
            Err(Error::UnsupportedFormat {
                found: 99,
                supported
            }) if supported == u32::from(super::super::FORMAT_VERSION)
        ));
        assert_eq!(stated_version(&file).unwrap(), super::super::FORMAT_VERSION);
        assert!(stated_version(&file[..9]).is_err());
        assert!(stated_version(b"CVECMANX\x07\x00").is_err());
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
