//! Between the in-memory state and the store: sealing and writing segments and the manifest,
//! and reading, authenticating and decrypting them back, one job per module: the manifest
//! (`manifest`), the segment writer (`writer`), whole segments (`segments`), single records
//! (`records`) and the commit path (`commit`). Callers name everything through this module.

mod commit;
mod manifest;
mod records;
mod segments;
mod writer;

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::segment;
use crate::storage::{Blob, IndexFiles};

pub(crate) use commit::{
    HistoryAt, Wrote, append_note, apply_commit, commit_id, commit_manifest_only, history_at,
    history_to_archive, note_abandoned, replace_note, split_note, stored_segment,
};
pub(crate) use manifest::{
    check_key, keys_like, manifest_as_user, manifest_of, new_header, new_keys_under,
    read_manifest_file, rewrap_index_key, rotate_data_key, rotate_with_plan, stored_body_of,
    write_first_manifest, write_manifest,
};
pub(crate) use records::{
    entry_place, list_addresses, open_access_record, open_block, open_block_vectors, open_fields,
    open_history, open_tombstones, open_training_record, open_vector, open_vector_into,
    vector_record_len,
};
pub(crate) use segments::{
    blob_digest, prefetch, read_segment, segment_digest, segment_head, segment_index,
    segment_index_unsigned, segment_records, verify_segment,
};
pub(crate) use writer::{BlockItem, SegmentBuilder};

/// Maps an I/O error reading a file that must exist.
pub(crate) fn read_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::corrupted("missing file"),
        std::io::ErrorKind::InvalidData => Error::corrupted("not a regular file"),
        std::io::ErrorKind::UnexpectedEof => Error::corrupted("shorter than the manifest says"),
        _ => Error::from(e),
    }
}

/// The sealed bytes of the record at `offset` (`len` bytes) of a segment: a place outside
/// the file is `Corrupted`; a failed fetch from a remote store is its error.
pub(crate) fn record(blob: &Blob, offset: u64, len: u32) -> Result<Cow<'_, [u8]>> {
    blob.read(offset, u64::from(len))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::corrupted("record offset"),
            _ => read_error(e),
        })
}

/// A `Corrupted` error naming `file` (names are not secret: the storage lists them); a
/// missing file is `Corrupted` too. Other errors pass unchanged.
pub(crate) fn in_file(file: &str, e: Error) -> Error {
    match e {
        Error::Corrupted { what } => Error::corrupted(format!("{file}: {what}")),
        Error::IndexNotFound => Error::corrupted(format!("{file}: missing")),
        e => e,
    }
}

/// A freshly written segment for reads: mapped back in, or as the store keeps it (see
/// [`IndexFiles::written_segment`]).
pub(crate) fn map_segment(store: &dyn IndexFiles, seq: u64, bytes: Vec<u8>) -> Arc<Blob> {
    Arc::new(store.written_segment(&segment::file_name(seq), bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::num::NonZeroU32;

    use super::*;
    use crate::crypto::key::IndexKey;
    use crate::crypto::schedule::{DataKey, IndexParams, Keys};
    use crate::engine::state::VectorRef;
    use crate::format::manifest::ManifestHeader;
    use crate::format::segment::CommitNote;
    use crate::format::vectors::VectorCoding;
    use crate::format::{COMMIT_ID_LEN, FORMAT_VERSION};

    fn keys() -> Keys {
        Keys::derive(
            IndexParams::generate().unwrap(),
            &DataKey::generate().unwrap(),
            0,
            FORMAT_VERSION,
        )
    }

    fn header() -> ManifestHeader {
        new_header(&IndexKey::generate()).unwrap().0
    }

    type Segments = HashMap<u64, Arc<Blob>>;

    /// A segment holding the vectors of two items; returns the mapped segments, the records'
    /// places and the vectors.
    fn two_vectors(keys: &Keys, coding: VectorCoding) -> (Segments, [VectorRef; 2], [Vec<f32>; 2]) {
        let vectors = [vec![1.0, -2.5, 3.0], vec![0.5, 0.25, -8.0]];
        let header = header();
        let mut seg = SegmentBuilder::new(keys, &header, 7).unwrap();
        let a = seg.add_vector(&[1; 32], &vectors[0], coding).unwrap();
        let b = seg.add_vector(&[2; 32], &vectors[1], coding).unwrap();
        let note = CommitNote {
            epoch: 1,
            replace_all: false,
            list_epoch: 0,
            trained: None,
            key_generation: keys.next_generation(),
            parent: [0; COMMIT_ID_LEN],
            history: false,
            trained_at: 0,
        };
        let bytes = seg.finish(&note).unwrap();
        let segments = HashMap::from([(7, Arc::new(Blob::Shared(bytes.into())))]);
        (segments, [a, b], vectors)
    }

    #[test]
    fn vector_records_open_only_for_their_item_and_segment() {
        for coding in [VectorCoding::F32, VectorCoding::F16, VectorCoding::I8] {
            vector_records_of(coding);
        }
    }

    fn vector_records_of(coding: VectorCoding) {
        let keys = keys();
        let (segments, [a, b], mut vectors) = two_vectors(&keys, coding);
        for v in &mut vectors {
            assert!(coding.round(v));
        }
        assert_eq!(a.len.get() as usize, vector_record_len(3, coding));
        assert_eq!(
            open_vector(&keys, &segments, &[1; 32], a, (3, coding)).unwrap(),
            vectors[0]
        );
        assert_eq!(
            open_vector(&keys, &segments, &[2; 32], b, (3, coding)).unwrap(),
            vectors[1]
        );
        let corrupted = |r: Result<Vec<f32>>| matches!(r, Err(Error::Corrupted { .. }));
        // Swapped between items, moved to another segment, wrong dimension, wrong length,
        // out of bounds: all refused.
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[2; 32],
            a,
            (3, coding)
        )));
        let moved = HashMap::from([(8, segments[&7].clone())]);
        assert!(corrupted(open_vector(
            &keys,
            &moved,
            &[1; 32],
            VectorRef { segment: 8, ..a },
            (3, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            a,
            (4, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            VectorRef {
                len: NonZeroU32::new(a.len.get() - 1).unwrap(),
                ..a
            },
            (3, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            VectorRef {
                offset: u64::MAX - 3,
                ..a
            },
            (3, coding)
        )));
        // Another index's keys.
        assert!(corrupted(open_vector(
            &self::keys(),
            &segments,
            &[1; 32],
            a,
            (3, coding)
        )));
        // Every flipped byte of the record.
        let bytes = segments[&7].whole().unwrap().into_owned();
        for i in a.offset as usize..(a.offset + u64::from(a.len.get())) as usize {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let damaged = HashMap::from([(7, Arc::new(Blob::Shared(damaged.into())))]);
            assert!(
                corrupted(open_vector(&keys, &damaged, &[1; 32], a, (3, coding))),
                "byte {i}"
            );
        }
    }
}
