//! Whole segments: reading a live one against the manifest's length and digest, its head
//! and sealed directory (`segment_index`), its commit signature, and prefetching records
//! from a remote store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto;
use crate::crypto::aead::{Binding, Sealer};
use crate::crypto::schedule::{AccessKeys, Keys};
use crate::crypto::sign::Signed;
use crate::engine::binding::binding;
use crate::error::{Error, Result};
use crate::format::manifest::SegmentRef;
use crate::format::segment::{self, Footer, HeaderKeys, Layout, RecordRef};
use crate::format::{RecordKind, padding};
use crate::storage::{Blob, IndexFiles};

use super::{in_file, read_error};

/// Reads the live segment `seg` names (in format `layout`) and checks its length and footer
/// digest against the manifest's (callers name the file in errors, see [`in_file`]).
pub(crate) fn read_segment(
    store: &dyn IndexFiles,
    seg: &SegmentRef,
    layout: Layout,
) -> Result<Blob> {
    let blob = store
        .open_segment(&segment::file_name(seg.seq), seg.len)
        .map_err(read_error)?;
    if blob.len() == seg.len && blob_digest(&blob, layout)? == seg.digest {
        return Ok(blob);
    }
    // A read cache may hold chunks of an object of the same name that never committed (a
    // failed writer's segment that a roll-forward read): read it afresh once.
    blob.forget_cached();
    if blob.len() == seg.len && blob_digest(&blob, layout)? == seg.digest {
        return Ok(blob);
    }
    Err(Error::corrupted(
        "length or digest differs from the manifest's",
    ))
}

/// Fetches the records at `places` (segment, offset, length) into a remote store's read
/// cache, each segment's adjacent ones in one request and the segments in parallel;
/// nothing to do for local files.
pub(crate) fn prefetch(
    blobs: &HashMap<u64, Arc<Blob>>,
    places: impl Iterator<Item = (u64, u64, u64)>,
) -> Result<()> {
    use rayon::prelude::*;
    if blobs.values().all(|b| b.local().is_some()) {
        return Ok(());
    }
    let mut ranges: HashMap<u64, Vec<std::ops::Range<u64>>> = HashMap::new();
    for (seq, offset, len) in places {
        ranges
            .entry(seq)
            .or_default()
            .push(offset..offset.saturating_add(len));
    }
    crate::engine::parallel::install(|| {
        ranges.into_par_iter().try_for_each(|(seq, ranges)| {
            let Some(blob) = blobs.get(&seq) else {
                return Ok(());
            };
            let ranges: Vec<_> = ranges.into_iter().filter(|r| r.end <= blob.len()).collect();
            blob.prefetch(&ranges)
                .map_err(|e| in_file(&segment::file_name(seq), read_error(e)))
        })
    })
}

/// What the manifest commits to of a segment besides its length: the SHA3-256 digest of
/// its sealed footer. The footer names the (sealed, segment-bound) directory and carries a
/// random nonce, so the digest pins this one segment file; every record in it is then
/// checked by its own tag, which binds the segment and the record's offset. Cheap at any
/// size, so an open need not read a segment whole.
pub(crate) fn segment_digest(file: &[u8], layout: Layout) -> [u8; 32] {
    crypto::digest(&file[file.len().saturating_sub(layout.footer_len())..])
}

/// [`segment_digest`] of a stored segment (reading its footer only).
pub(crate) fn blob_digest(blob: &Blob, layout: Layout) -> Result<[u8; 32]> {
    let footer_len = (layout.footer_len() as u64).min(blob.len());
    let footer = blob
        .read(blob.len() - footer_len, footer_len)
        .map_err(read_error)?;
    Ok(segment_digest(&footer, layout))
}

/// Authenticates a record sealed by [`seal_padded`] and removes its padding; any failure is
/// `Corrupted` naming `what`.
pub(crate) fn open_padded(
    sealer: &Sealer,
    sealed: &[u8],
    binding: &Binding,
    what: &str,
) -> Result<Vec<u8>> {
    let mut plain = sealer
        .open(sealed, binding)
        .map_err(|_| Error::corrupted(what))?;
    let len = padding::unpad(&plain, what)?.len();
    plain.truncate(len);
    Ok(plain)
}

/// The layout of a segment of format `version`, and what its clear header shows of its keys
/// (format 8): its first bytes checked (magic, version, zeros, a length on the ladder).
pub(crate) fn segment_head(blob: &Blob, version: u16) -> Result<(Layout, Option<HeaderKeys>)> {
    let layout = Layout::of(version)?;
    let len = blob.len();
    let head_len = (layout.header_len as u64).min(len);
    let keys = segment::check_head(&blob.read(0, head_len).map_err(read_error)?, len, layout)?;
    Ok((layout, keys))
}

/// The binding of segment `seq`'s footer: in format 8 it also binds the keys the clear
/// header shows (by their digest, in the list field), so that a changed header byte fails
/// the footer as any other changed byte does.
pub(super) fn footer_binding(version: u16, seq: u64, shows: Option<&HeaderKeys>) -> Binding {
    let shown = shows.map_or([0; 32], |k| {
        let mut bytes = Vec::with_capacity(k.key_check.len() + k.wrapped_key.len());
        bytes.extend_from_slice(&k.key_check);
        bytes.extend_from_slice(&k.wrapped_key);
        crypto::digest(&bytes)
    });
    binding(version, RecordKind::Footer, seq, shown, [0; 32])
}

/// The footer (directory place and commit note) and record directory of segment `seq`: its
/// clear bytes checked (in the format of `keys`), its footer and directory authenticated and
/// decoded. Needs no manifest: this is how an open finds out what a segment no manifest
/// names would have committed.
pub(crate) fn segment_index(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
) -> Result<(Footer, Vec<RecordRef>)> {
    let (footer, records) = segment_index_unsigned(keys, blob, seq)?;
    if let Some(access) = &keys.access {
        verify_segment(access, blob, &footer)?;
    }
    Ok((footer, records))
}

/// As [`segment_index`], without checking the signature (roll-forward tells an unauthentic
/// segment, which a crash may leave, from an authentic one whose signature fails, which is
/// a forgery).
pub(crate) fn segment_index_unsigned(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
) -> Result<(Footer, Vec<RecordRef>)> {
    let (layout, shows) = segment_head(blob, keys.format)?;
    let len = blob.len();
    let footer_len = layout.footer_len() as u64;
    let sealed = blob
        .read(len - footer_len, footer_len)
        .map_err(read_error)?;
    let plain = keys
        .payload
        .open(&sealed, &footer_binding(keys.format, seq, shows.as_ref()))
        .map_err(|_| Error::corrupted("segment footer"))?;
    let footer = Footer::decode(&plain, layout)?;
    let span = segment::directory_span(len, &footer, layout)?;
    let span = blob
        .read(span.start, span.end - span.start)
        .map_err(read_error)?;
    let sealed = segment::directory_in_span(&span, &footer)?;
    let binding = binding(keys.format, RecordKind::Directory, seq, [0; 32], [0; 32]);
    let plain = open_padded(&keys.payload, sealed, &binding, "segment directory")?;
    let records = segment::decode_directory(&plain, footer.directory_offset, layout)?;
    Ok((footer, records))
}

/// Checks the signature of a segment of an index with access control: over its footer's
/// note and the digest of every byte before the footer (so no record can be changed by a
/// holder of the data key alone).
///
/// # Errors
/// [`Error::Corrupted`] if the signature is missing or does not verify.
pub(crate) fn verify_segment(access: &AccessKeys, blob: &Blob, footer: &Footer) -> Result<()> {
    let Some(signature) = &footer.signature else {
        return Err(Error::corrupted("segment signature"));
    };
    let before = blob
        .read(0, blob.len() - Layout::CURRENT.footer_len() as u64)
        .map_err(read_error)?;
    if !access.verifier.verify(
        Signed::Segment,
        &[&footer.signed_bytes(), &before],
        signature,
    ) {
        return Err(Error::corrupted("segment signature"));
    }
    Ok(())
}

/// The record directory of segment `seq` (see [`segment_index`]).
pub(crate) fn segment_records(keys: &Keys, blob: &Blob, seq: u64) -> Result<Vec<RecordRef>> {
    segment_index(keys, blob, seq).map(|(_, records)| records)
}
