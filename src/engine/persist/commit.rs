//! The commit path: the note a commit leaves in its segment, commit ids, the history chain
//! and its archive, and applying a commit to the manifest body.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto;
use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::manifest::{self, ManifestBody, ManifestHeader};
use crate::format::manifest::{SegmentRef, TrainedRef};
use crate::format::segment::{self, CommitNote, Layout};
use crate::format::{COMMIT_ID_LEN, CommitId, RecordKind};
use crate::storage::{Blob, IndexFiles};

use super::in_file;
use super::records::open_history;
use super::segments::read_segment;
use super::segments::segment_records;

/// The commit note of an upsert or delete extending `body` at epoch `epoch`: the segment is
/// appended to the live ones.
pub(crate) fn append_note(keys: &Keys, body: &ManifestBody, epoch: u64) -> CommitNote {
    CommitNote {
        epoch,
        replace_all: false,
        list_epoch: 0,
        trained: None,
        key_generation: keys.next_generation(),
        parent: body.history.head(),
        history: false,
        trained_at: 0,
    }
}

/// The commit note of a list split extending `body` at epoch `epoch`: the segment is
/// appended to the live ones and holds the centroids (`n_lists` of them) and, when
/// `codebook`, the codebook from now on.
pub(crate) fn split_note(
    keys: &Keys,
    body: &ManifestBody,
    epoch: u64,
    (n_lists, codebook): (u32, bool),
) -> CommitNote {
    let mut note = append_note(keys, body, epoch);
    note.trained = Some((n_lists, codebook));
    note
}

/// The commit note of a rewrite (training, compaction, rotation) extending `body` at epoch
/// `epoch`: the segment replaces every live one, with `list_epoch` and, when trained, its
/// `(n_lists, codebook)`; `history` says whether it holds a history record (see
/// [`history_to_archive`]). A training sets the note's `trained_at`.
pub(crate) fn replace_note(
    keys: &Keys,
    body: &ManifestBody,
    (epoch, list_epoch): (u64, u64),
    trained: Option<(u32, bool)>,
    history: bool,
) -> CommitNote {
    CommitNote {
        epoch,
        replace_all: true,
        list_epoch,
        trained,
        key_generation: keys.next_generation(),
        parent: body.history.head(),
        history,
        trained_at: 0,
    }
}

/// What a commit wrote, as its id binds it.
#[derive(Clone, Copy)]
pub(crate) enum Wrote {
    /// A segment, pinned by the digest of its sealed footer (which holds the parent's id).
    Segment([u8; 32]),
    /// A manifest only (a re-wrap, a configuration change, a recommit after a failure),
    /// pinned by its clear header's fields.
    Manifest([u8; 32]),
}

/// The id of the commit at `epoch` extending `parent` that wrote `wrote`: SHA3-256 over a
/// versioned label, the parent's id, the epoch and what it wrote, cut to 16 bytes. Two
/// histories that differ anywhere differ in every later id.
pub(crate) fn commit_id(parent: &CommitId, epoch: u64, wrote: Wrote) -> CommitId {
    let (kind, digest) = match wrote {
        Wrote::Segment(d) => (1u8, d),
        Wrote::Manifest(d) => (2u8, d),
    };
    let mut input = Vec::with_capacity(64 + COMMIT_ID_LEN);
    input.extend_from_slice(b"ciphervec commit v8\0");
    input.extend_from_slice(parent);
    input.extend_from_slice(&epoch.to_le_bytes());
    input.push(kind);
    input.extend_from_slice(&digest);
    let full = crypto::digest(&input);
    let mut id = [0u8; COMMIT_ID_LEN];
    id.copy_from_slice(&full[..COMMIT_ID_LEN]);
    id
}

/// Advances `body` to `epoch` by a commit that writes no segment (its new clear header is
/// `header`): the epoch moves and the commit joins the history.
pub(crate) fn commit_manifest_only(body: &mut ManifestBody, epoch: u64, header: &ManifestHeader) {
    let mut fields = Vec::new();
    fields.extend_from_slice(&header.salt);
    fields.extend_from_slice(&header.index_id);
    fields.extend_from_slice(&header.key_check);
    fields.extend_from_slice(&header.wrapped_key);
    if let Some(section) = &header.access {
        // A change of grants is a commit of its own.
        fields.extend_from_slice(&section.encode());
    }
    let id = commit_id(
        &body.history.head(),
        epoch,
        Wrote::Manifest(crypto::digest(&fields)),
    );
    body.epoch = epoch;
    body.history.recent.push((epoch, id));
}

/// The history a rewrite carries into its segment: every commit before it (the archived
/// record of the first live segment, if any, then the recent ones). Empty for an index
/// whose history has not begun (one just upgraded from format 7).
pub(crate) fn history_to_archive(
    keys: &Keys,
    body: &ManifestBody,
    segments: &HashMap<u64, Arc<Blob>>,
) -> Result<Vec<(u64, CommitId)>> {
    let mut entries = match body.history.archived {
        Some(seq) => {
            let blob = segments
                .get(&seq)
                .ok_or_else(|| Error::corrupted("history segment"))?;
            archived_history(keys, body, blob, seq)?
        }
        None => Vec::new(),
    };
    entries.extend_from_slice(&body.history.recent);
    Ok(entries)
}

/// The commits `body`'s history archived in the history record of its first live segment
/// `seq` (in `blob`), checked to precede the recent ones.
fn archived_history(
    keys: &Keys,
    body: &ManifestBody,
    blob: &Blob,
    seq: u64,
) -> Result<Vec<(u64, CommitId)>> {
    let records = segment_records(keys, blob, seq)?;
    let mut found = records.iter().filter(|r| r.kind == RecordKind::History);
    let rec = found
        .next()
        .ok_or_else(|| Error::corrupted("history record missing"))?;
    if found.next().is_some() {
        return Err(Error::corrupted("two history records"));
    }
    let entries = open_history(keys, blob, seq, rec)?;
    let first_recent = body.history.recent.first().map_or(u64::MAX, |(e, _)| *e);
    if entries.last().is_some_and(|(e, _)| *e >= first_recent) {
        return Err(Error::corrupted("history record overlaps the manifest's"));
    }
    Ok(entries)
}

/// What a history says of one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HistoryAt {
    /// The id of the commit at that epoch.
    Id(CommitId),
    /// The epoch lies within the history but was never committed (a failed commit's).
    Skipped,
    /// The epoch precedes the history (an index upgraded from format 7 begins its history
    /// at the upgrade).
    Before,
    /// The epoch is newer than the history's head.
    After,
}

/// What the history of `body` (opened with `keys`) says of `epoch`: from the manifest's
/// recent commits, or the archived record of its first live segment, whose bytes
/// `archived_in` gives (a handle's loaded segment, or one read from storage by
/// [`stored_segment`]).
///
/// # Errors
/// [`Error::Corrupted`] if the archived record does not authenticate; `archived_in`'s.
pub(crate) fn history_at(
    keys: &Keys,
    body: &ManifestBody,
    epoch: u64,
    archived_in: impl FnOnce(&SegmentRef) -> Result<Arc<Blob>>,
) -> Result<HistoryAt> {
    if epoch > body.epoch {
        return Ok(HistoryAt::After);
    }
    if let Some(found) = body.history.recent_id(epoch) {
        return Ok(found.map_or(HistoryAt::Skipped, HistoryAt::Id));
    }
    let Some(seq) = body.history.archived else {
        return Ok(HistoryAt::Before);
    };
    let seg = body
        .segments
        .first()
        .filter(|s| s.seq == seq)
        .ok_or_else(|| Error::corrupted("history segment is not the first live one"))?;
    let blob = archived_in(seg)?;
    let entries = archived_history(keys, body, &blob, seq)
        .map_err(|e| in_file(&segment::file_name(seq), e))?;
    Ok(match entries.first() {
        Some((first, _)) if epoch >= *first => entries
            .binary_search_by_key(&epoch, |(e, _)| *e)
            .map_or(HistoryAt::Skipped, |i| HistoryAt::Id(entries[i].1)),
        _ => HistoryAt::Before,
    })
}

/// A live segment of `keys`' format read from `store` and checked against its reference
/// (for [`history_at`] over a stored state).
pub(crate) fn stored_segment(
    store: &dyn IndexFiles,
    keys: &Keys,
    seg: &SegmentRef,
) -> Result<Arc<Blob>> {
    read_segment(store, seg, Layout::of(keys.format)?)
        .map(Arc::new)
        .map_err(|e| in_file(&segment::file_name(seg.seq), e))
}

/// Applies the commit of segment `seq` (`len` bytes with footer digest `digest`) to `body`,
/// as its `note` says: appended to the live segments (with, after a list split, the training
/// state it now holds), or replacing them with its training state and list epoch, at the note's epoch; the commit joins the history. The one place a
/// manifest's segment list changes, for a writer's commit and for a roll-forward at open
/// alike.
pub(crate) fn apply_commit(
    body: &mut ManifestBody,
    (seq, len, digest): (u64, u64, [u8; 32]),
    note: &CommitNote,
) {
    let seg = SegmentRef { seq, len, digest };
    let id = commit_id(&note.parent, note.epoch, Wrote::Segment(digest));
    if note.replace_all {
        body.segments = vec![seg];
        body.trained = note.trained.map(|(n_lists, codebook)| TrainedRef {
            centroids_segment: seq,
            n_lists,
            codebook,
        });
        body.list_epoch = note.list_epoch;
        // The history before this commit is in the segment's history record now.
        body.history.recent.clear();
        body.history.archived = note.history.then_some(seq);
    } else {
        body.segments.push(seg);
        // A split (format 8): the appended segment holds the centroids (and codebook) from
        // now on; the list epoch stays.
        if let Some((n_lists, codebook)) = note.trained {
            body.trained = Some(TrainedRef {
                centroids_segment: seq,
                n_lists,
                codebook,
            });
        }
    }
    if note.trained_at > 0 {
        body.trained_at_items = note.trained_at;
    }
    body.history.recent.push((note.epoch, id));
    body.next_segment = seq + 1;
    body.epoch = note.epoch;
    body.key_generation = body.key_generation.max(note.key_generation);
}

/// Records in `body`'s history the segment numbers a writer found taken (the newest
/// [`manifest::MAX_ABANDONED`] are kept).
pub(crate) fn note_abandoned(body: &mut ManifestBody, taken: &[u64]) {
    let list = &mut body.history.abandoned;
    list.extend(taken.iter().filter(|&&seq| seq < body.next_segment));
    list.sort_unstable();
    list.dedup();
    let excess = list.len().saturating_sub(manifest::MAX_ABANDONED);
    list.drain(..excess);
}
