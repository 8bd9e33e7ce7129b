//! The record readers: authenticating and decoding one sealed record of a segment (list
//! blocks and their vectors, vector records, fields, tombstones, the training, history and
//! access records).

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::crypto::aead::{self, Binding};
use crate::crypto::schedule::Keys;
use crate::engine::binding::binding;
use crate::engine::state::{BlockRef, FieldsRef, VectorRef};
use crate::error::{Error, Result};
use crate::format::access::AccessSection;
use crate::format::segment::{self, Block, Fields, RecordRef};
use crate::format::vectors::VectorCoding;
use crate::format::{CommitId, RecordKind, padding};
use crate::storage::Blob;

use super::record;
use super::segments::open_padded;

/// The list each list-block address (query token) of list epoch `list_epoch` stands for.
pub(crate) fn list_addresses(keys: &Keys, list_epoch: u64, n_lists: u32) -> HashMap<[u8; 32], u32> {
    (0..n_lists)
        .map(|l| (keys.query_token(list_epoch, l), l))
        .collect()
}

/// Where a list-block entry's fields or vector record lies in segment `segment`.
pub(crate) fn entry_place(segment: u64, (offset, len): (u64, u32)) -> Result<FieldsRef> {
    Ok(FieldsRef {
        segment,
        offset,
        len: NonZeroU32::new(len).ok_or_else(|| Error::corrupted("record length"))?,
    })
}

/// Authenticates and decodes the tombstones record `rec` of segment `seq`.
pub(crate) fn open_tombstones(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<[u8; 32]>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding =
        binding(keys.format, RecordKind::Tombstones, seq, [0; 32], [0; 32]).at(rec.offset);
    segment::decode_tombstones(&open_padded(
        &keys.content,
        &sealed,
        &binding,
        "tombstones",
    )?)
}

/// Authenticates and opens the training record `rec` (centroids or codebook, under the
/// payload key) of segment `seq`.
pub(crate) fn open_training_record(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<u8>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, rec.kind, seq, [0; 32], [0; 32]).at(rec.offset);
    open_padded(&keys.payload, &sealed, &binding, "training record")
}

/// Authenticates and decodes the history record `rec` of segment `seq`.
pub(crate) fn open_history(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<(u64, CommitId)>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, RecordKind::History, seq, [0; 32], [0; 32]).at(rec.offset);
    segment::decode_history(&open_padded(
        &keys.payload,
        &sealed,
        &binding,
        "history record",
    )?)
}

/// The access section a rewrite's segment carries (see [`SegmentBuilder::add_access`]), if
/// its directory lists one.
pub(crate) fn open_access_record(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    records: &[RecordRef],
) -> Result<Option<AccessSection>> {
    let mut found = records.iter().filter(|r| r.kind == RecordKind::Access);
    let (Some(rec), None) = (found.next(), found.next()) else {
        return Ok(None);
    };
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, RecordKind::Access, seq, [0; 32], [0; 32]).at(rec.offset);
    let plain = open_padded(&keys.payload, &sealed, &binding, "access record")?;
    AccessSection::decode(&plain).map(Some)
}

/// Authenticates and decodes one list block of list `list` (list labels of `list_epoch`).
pub(crate) fn open_block(
    keys: &Keys,
    blob: &Blob,
    block: BlockRef,
    list_epoch: u64,
    list: u32,
    dim: usize,
) -> Result<Block> {
    let sealed = record(blob, block.offset, block.len)?;
    let binding = binding(
        keys.format,
        RecordKind::ListBlock,
        block.segment,
        keys.list_label(list_epoch, list),
        [0; 32],
    )
    .at(block.offset);
    let plain = open_padded(&keys.payload, &sealed, &binding, "list block")?;
    segment::decode_block(&plain, dim)
}

/// Authenticates and decodes the vectors of list block `block` (of list `list`, list labels
/// of `list_epoch`), which `decoded` is: `ivf_flat`'s rows, row-major, of `dim` values
/// stored as `coding` says.
pub(crate) fn open_block_vectors(
    keys: &Keys,
    blob: &Blob,
    (block, decoded): (BlockRef, &Block),
    (list_epoch, list): (u64, u32),
    (dim, coding): (usize, VectorCoding),
) -> Result<Vec<f32>> {
    let (offset, len) = decoded
        .vectors_at
        .ok_or_else(|| Error::corrupted("list block layout"))?;
    let sealed = record(blob, offset, len)?;
    let binding = binding(
        keys.format,
        RecordKind::BlockVectors,
        block.segment,
        keys.list_label(list_epoch, list),
        [0; 32],
    )
    .at(offset);
    let corrupted = || Error::corrupted("block vectors");
    let len = aead::plaintext_len(sealed.len()).ok_or_else(corrupted)?;
    if coding != VectorCoding::F32 {
        // Decrypted into bytes (aligned for the half-precision conversion), then widened.
        let mut plain = vec![0u16; len.div_ceil(2)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut plain);
        keys.payload
            .open_into_slice(&sealed, &binding, &mut bytes[..len])
            .map_err(|_| corrupted())?;
        let rows = padding::unpad(&bytes[..len], "block vectors")?;
        return coding.decode_rows(rows, decoded.entries.len(), dim);
    }
    // Decrypted straight into the floats' own memory (little-endian `f32`s from offset 0,
    // then the padding): no byte buffer to convert from, one allocation instead of two.
    let mut floats = vec![0f32; len.div_ceil(4)];
    keys.payload
        .open_into_slice(&sealed, &binding, bytemuck::cast_slice_mut(&mut floats))
        .map_err(|_| corrupted())?;
    segment::decode_block_vectors(floats, len, decoded.entries.len(), dim)
}

/// The length of every sealed vector record of dimension `dim` stored as `coding` says.
pub(crate) fn vector_record_len(dim: usize, coding: VectorCoding) -> usize {
    padding::padme(coding.vector_len(dim) + 1 + aead::OVERHEAD)
}

/// Authenticates and decodes the vector record of the item with `token`.
pub(crate) fn open_vector(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    token: &[u8; 32],
    at: VectorRef,
    (dim, coding): (usize, VectorCoding),
) -> Result<Vec<f32>> {
    let mut out = vec![0.0; dim];
    open_vector_into(
        keys,
        segments,
        (token, at),
        coding,
        &mut out,
        &mut Vec::new(),
    )?;
    Ok(out)
}

/// Authenticates and decodes the vector record at `at` of the item with `token`, stored as
/// `coding` says, into `out` (its length the dimension), with `scratch` as the decryption
/// buffer: the re-rank's hot path, free of allocations.
pub(crate) fn open_vector_into(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    (token, at): (&[u8; 32], VectorRef),
    coding: VectorCoding,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let (sealed, binding) = item_record(keys, segments, RecordKind::Vector, token, at)?;
    keys.payload
        .open_into(&sealed, &binding, scratch)
        .map_err(|_| Error::corrupted("vector record"))?;
    coding.decode_into(padding::unpad(scratch, "vector record")?, out)
}

/// The sealed bytes of an item's own record (fields or vector) at `at`, and the binding they
/// must authenticate under.
fn item_record<'s>(
    keys: &Keys,
    segments: &'s HashMap<u64, Arc<Blob>>,
    kind: RecordKind,
    token: &[u8; 32],
    at: FieldsRef,
) -> Result<(Cow<'s, [u8]>, Binding)> {
    let blob = segments
        .get(&at.segment)
        .ok_or_else(|| Error::corrupted("record segment"))?;
    let sealed = record(blob, at.offset, at.len.get())?;
    Ok((
        sealed,
        binding(keys.format, kind, at.segment, [0; 32], *token).at(at.offset),
    ))
}

/// Decrypts an item's fields record.
pub(crate) fn open_fields(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    token: &[u8; 32],
    at: FieldsRef,
) -> Result<Fields> {
    let (sealed, binding) = item_record(keys, segments, RecordKind::Fields, token, at)?;
    let plain = open_padded(&keys.content, &sealed, &binding, "fields record")?;
    segment::decode_fields(&plain)
}
