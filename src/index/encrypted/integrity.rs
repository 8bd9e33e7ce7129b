//! Integrity: anchors against rollback, and a full check of every stored byte.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto::schedule::Keys;
use crate::engine::state::BlockRef;
use crate::engine::{loader, persist, recovery};
use crate::error::{Error, Result};
use crate::format::CommitId;
use crate::format::RecordKind;
use crate::format::manifest::{MANIFEST_FILE, ManifestBody, SegmentRef};
use crate::format::segment;
use crate::model::anchor::Anchor;
use crate::model::types::VerifyReport;
use crate::storage::Blob;
use crate::storage::IndexFiles;

use super::*;

impl EncryptedIndex {
    /// The identity and newest commit of the index as this handle sees it: keep it outside
    /// the storage (text form via `Display`) and check it after opening with
    /// [`check_anchor`](Self::check_anchor).
    pub fn anchor(&self) -> Anchor {
        let state = self.read();
        Anchor::new(
            state.header().index_id,
            state.body().epoch,
            state.body().history.head(),
        )
    }

    /// Checks the index against an anchor taken earlier: this handle's state, and the
    /// manifest on storage now (when it authenticates under this handle's keys, with the
    /// newer segments it proves), must hold the anchor's commit in their history: neither
    /// older than it nor a fork of it, at any epoch. An anchor without a commit id (taken of
    /// an index in format 7) is checked by epoch alone.
    ///
    /// # Errors
    /// [`Error::RolledBack`] if either does not hold the anchor's commit;
    /// [`Error::Corrupted`] if the anchor belongs to another index; [`Error::Io`].
    pub fn check_anchor(&self, anchor: &Anchor) -> Result<()> {
        let (keys, header, body, segments) = {
            let state = self.read();
            (
                state.keys().clone(),
                state.header().clone(),
                state.body().clone(),
                state.segments().clone(),
            )
        };
        if anchor.index_id() != &header.index_id {
            return Err(Error::corrupted("the anchor belongs to another index"));
        }
        let loaded = |seg: &SegmentRef| {
            segments
                .get(&seg.seq)
                .cloned()
                .ok_or_else(|| Error::corrupted("history segment missing from the handle"))
        };
        if !holds(&keys, &body, (anchor.epoch(), anchor.commit()), loaded)? {
            return Err(Error::RolledBack);
        }
        let store = &*self.inner.store;
        // A reader (read-only, or inherited through `fork`) shares the storage with a writer.
        let reader = !self.is_own_writer();
        let stored_holds = recovery::retry_racing_writer(store, |file| {
            match persist::stored_body_of(file, &keys, &header, &self.inner.name) {
                // What storage proves: the manifest and the newer segments an open rolls
                // forward (under the new data key if another process rotated it).
                Ok((stored, rekeyed)) => {
                    let (keys, header) = match rekeyed {
                        Some((h, k)) => (Arc::new(k), h),
                        None => (keys.clone(), header.clone()),
                    };
                    let proven = recovery::roll_forward(store, (&keys, &header), stored, false)?;
                    let keys = proven.rekeyed.map_or(keys, |(_, k)| k);
                    let from_store = |seg: &SegmentRef| persist::stored_segment(store, &keys, seg);
                    let commit = (anchor.epoch(), anchor.commit());
                    Ok(Some(holds(&keys, &proven.body, commit, from_store)?))
                }
                // Re-keyed under another index key or rewritten by another process since
                // this handle opened: what it serves was checked above.
                Err(Error::Corrupted { .. } | Error::WrongKey) if reader => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        match stored_holds {
            Some(false) => Err(Error::RolledBack),
            _ => Ok(()),
        }
    }

    /// Checks every byte of every live file: the manifest (header checksum, MAC, sealed
    /// body), and each segment it names: length and footer digest as the manifest commits
    /// them, clear header and zeros, footer, directory and every record by its AEAD tag,
    /// and that the records it authenticated cover the bytes before the directory exactly
    /// (no gap, no overlap). A writer's check is serialized with its writes.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first bad file; [`Error::IndexNotFound`] if the index
    /// was deleted since this handle opened; [`Error::Io`].
    pub fn verify(&self) -> Result<VerifyReport> {
        let _writer = match self.writer() {
            Ok(guard) => Some(guard),
            // Read-only, or inherited through `fork` (the parent writes): checked as a reader
            // checks, while a writer may commit.
            Err(Error::ReadOnly | Error::Locked | Error::PermissionDenied) => None,
            Err(e) => return Err(e),
        };
        let (keys, header) = {
            let state = self.read();
            (state.keys().clone(), state.header().clone())
        };
        let store = &*self.inner.store;
        // A read-only handle shares the storage with a writer in another process, whose
        // commit may remove a segment while it is checked: a failure is trusted only if the
        // manifest did not move meanwhile. (A writer's check holds the writer lock.)
        recovery::retry_racing_writer(store, |file| {
            // The stored manifest, and the keys that open it: a writer in another process
            // may have rotated the data key since a read-only handle opened.
            let (body, rekeyed) = persist::stored_body_of(file, &keys, &header, &self.inner.name)
                .map_err(|e| persist::in_file(MANIFEST_FILE, e))?;
            let keys = rekeyed.map_or_else(|| keys.clone(), |(_, k)| Arc::new(k));
            verify_body(&keys, store, &body)
        })
        .map_err(|e| match e {
            // No manifest: a deleted index when nothing is left of it, else damage.
            Error::IndexNotFound if !index_files_gone(store) => persist::in_file(MANIFEST_FILE, e),
            e => e,
        })
    }

    /// Writes a consistent copy of the index, as of one commit, into the directory `path`
    /// (created if missing) as index `name` of it: `Database::open(path)` then
    /// `open_index(name, key)` opens it with the same key. Writers may go on meanwhile (the
    /// copy is of the state this handle serves when the call starts). An index of that name
    /// already in `path` is [`Error::IndexExists`].
    ///
    /// The copy's manifest is written (and, for an index with grants, signed) anew, so a
    /// handle opened with a read grant cannot make one.
    ///
    /// # Errors
    /// [`Error::IndexExists`], [`Error::Io`]; [`Error::PermissionDenied`] through a read
    /// grant; on failure the partial copy is removed.
    pub fn backup_to(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let (keys, header, body, segments) = {
            let state = self.read();
            (
                state.keys().clone(),
                state.header().clone(),
                state.body().clone(),
                state.segments().clone(),
            )
        };
        let target = crate::storage::DirBackend::open(path.as_ref())?;
        if crate::storage::Backend::list(&target)?.contains(&self.inner.name) {
            return Err(Error::IndexExists);
        }
        let store = crate::storage::Backend::open(&target, &self.inner.name, true)?
            .ok_or(Error::IndexNotFound)?;
        let copy = || -> Result<()> {
            for seg in &body.segments {
                let blob = segments
                    .get(&seg.seq)
                    .ok_or_else(|| Error::corrupted("segment missing from the handle"))?
                    .clone()
                    .downloaded()
                    .map_err(persist::read_error)?;
                let bytes = blob.whole().map_err(persist::read_error)?;
                store.write_new(&segment::file_name(seg.seq), &bytes)?;
            }
            persist::write_manifest(&*store, &header, &keys, &body)
        };
        copy().inspect_err(|_| {
            best_effort(
                crate::storage::Backend::remove(&target, &self.inner.name).map_err(Error::from),
                "a partial backup is removed; the source is untouched",
            );
        })
    }

    /// Picks up commits another process made since this handle opened (or last refreshed):
    /// `Ok(true)` when the state changed. Costs one manifest read and one listing when
    /// nothing changed. A writer handle is the only committer and gets `Ok(false)` (one a
    /// forked child inherited refreshes as a reader: its parent writes).
    ///
    /// A data-key rotation by the writer ([`rotate_data_key`](Self::rotate_data_key)) is
    /// followed; after a rotation of the index key ([`crate::Database::rotate_index_key`],
    /// [`crate::Database::rotate_keys`]) this handle's key no longer opens the index, and
    /// its queries go on answering from the state it holds.
    ///
    /// # Errors
    /// [`Error::WrongKey`] after a rotation of the index key (reopen with the new key);
    /// [`Error::RolledBack`] if storage holds an older commit than this handle serves (it
    /// keeps serving its own); [`Error::Corrupted`] if the stored manifest or what it names
    /// does not authenticate (a commit that lands meanwhile is not that: the refresh starts
    /// over on the new manifest); [`Error::Io`].
    pub fn refresh(&self) -> Result<bool> {
        if self.is_own_writer() {
            return Ok(false);
        }
        let (keys, header, epoch, head) = {
            let state = self.read();
            (
                state.keys().clone(),
                state.header().clone(),
                state.body().epoch,
                state.body().history.head(),
            )
        };
        let store = &*self.inner.store;
        let fresh = recovery::retry_racing_writer(store, |file| {
            let (stored, rekeyed) =
                persist::stored_body_of(file, &keys, &header, &self.inner.name)?;
            // A data key rotated by the writer is followed (the new one is wrapped under the
            // same index key, which this handle's wrapper opens).
            let (keys, header) = match rekeyed {
                Some((header, keys)) => (Arc::new(keys), header),
                None => (keys.clone(), header.clone()),
            };
            let proven = recovery::roll_forward(store, (&keys, &header), stored, false)?;
            let (header, keys) = proven.rekeyed.unwrap_or((header, keys));
            if proven.body.epoch == epoch && proven.body.history.head() == head {
                return Ok(None);
            }
            // The state this handle serves is its own anchor: storage that no longer holds
            // it in its history went back (an authentic old MANIFEST put in place) or forked
            // from an older state (and was written on since).
            let from_store = |seg: &SegmentRef| persist::stored_segment(store, &keys, seg);
            let ours = (
                epoch,
                (head != [0; crate::format::COMMIT_ID_LEN]).then_some(head),
            );
            if !holds(&keys, &proven.body, ours, from_store)? {
                return Err(Error::RolledBack);
            }
            loader::load_state(
                store,
                (keys, header),
                loader::Shape::of(&self.inner.config),
                proven.body,
                self.inner.cache_budget,
            )
            .map(Some)
        })?;
        let Some(fresh) = fresh else {
            return Ok(false);
        };
        if fresh.text().is_some() {
            self.note_full_text();
        }
        *self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(true)
    }
}

/// Whether the history of `body` (opened with `keys`; `archived_in` gives the segment of its
/// archived record) holds the commit at `epoch` with id `commit`: a commit without an id
/// (of a state in format 7, before any history) is held by any state at least as new.
fn holds(
    keys: &Keys,
    body: &ManifestBody,
    (epoch, commit): (u64, Option<CommitId>),
    archived_in: impl FnOnce(&SegmentRef) -> Result<Arc<Blob>>,
) -> Result<bool> {
    use persist::HistoryAt;
    Ok(
        match (persist::history_at(keys, body, epoch, archived_in)?, commit) {
            (HistoryAt::After, _) => false,
            (_, None) => true,
            (HistoryAt::Id(id), Some(commit)) => id == commit,
            (HistoryAt::Skipped | HistoryAt::Before, Some(_)) => false,
        },
    )
}

/// Whether an index's storage holds no file at all (its folder removed: the index was
/// deleted).
fn index_files_gone(store: &dyn IndexFiles) -> bool {
    match store.list() {
        Ok(files) => files.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Checks the manifest file and every segment `body` (authenticated from it) names.
fn verify_body(keys: &Keys, store: &dyn IndexFiles, body: &ManifestBody) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        segments: 0,
        records: 1,
        bytes: store
            .read(MANIFEST_FILE)
            .map(|b| b.len())
            .map_err(persist::read_error)?,
    };
    for seg in &body.segments {
        let file = segment::file_name(seg.seq);
        let records =
            verify_segment(keys, store, body, seg.seq).map_err(|e| persist::in_file(&file, e))?;
        report.segments += 1;
        report.records += records;
        report.bytes += seg.len;
    }
    Ok(report)
}

/// Checks one live segment; returns how many sealed records it authenticated: each listed
/// record, and each vector, block-vectors and fields record a list block names. Together
/// they must tile the bytes between the header and the directory, so that no byte escapes
/// an authentication tag.
fn verify_segment(
    keys: &Keys,
    store: &dyn IndexFiles,
    body: &ManifestBody,
    seq: u64,
) -> Result<usize> {
    let committed = body
        .segments
        .iter()
        .find(|s| s.seq == seq)
        .ok_or_else(|| Error::corrupted("not named"))?;
    // Every byte is read below: from an object store, the whole object in one request.
    let layout = segment::Layout::of(keys.format)?;
    let blob = Arc::new(persist::read_segment(store, committed, layout)?)
        .downloaded()
        .map_err(persist::read_error)?;
    let (footer, directory) = persist::segment_index(keys, &blob, seq)?;
    let n_lists = body.trained.as_ref().map_or(1, |t| t.n_lists);
    let by_address = persist::list_addresses(keys, body.list_epoch, n_lists);
    let dim = body.config.dimension as usize;
    let shape = (dim, body.config.vectors);
    let segments = HashMap::from([(seq, blob.clone())]);
    // The byte ranges of every record authenticated below.
    let mut checked: Vec<(u64, u64)> = Vec::new();
    let mut check = |(offset, len): (u64, u32)| checked.push((offset, offset + u64::from(len)));
    for rec in &directory {
        match rec.kind {
            RecordKind::ListBlock => {
                let list = *by_address
                    .get(&rec.address)
                    .ok_or_else(|| Error::corrupted("list address"))?;
                let at = BlockRef::listed(seq, rec);
                let block = persist::open_block(keys, &blob, at, body.list_epoch, list, dim)?;
                if let Some(place) = block.vectors_at {
                    persist::open_block_vectors(
                        keys,
                        &blob,
                        (at, &block),
                        (body.list_epoch, list),
                        shape,
                    )?;
                    check(place);
                }
                for e in &block.entries {
                    if let Some(f) = e.fields {
                        let at = persist::entry_place(seq, f)?;
                        persist::open_fields(keys, &segments, &e.token, at)?;
                        check(f);
                    }
                    if let Some(v) = e.vector {
                        let at = persist::entry_place(seq, v)?;
                        persist::open_vector(keys, &segments, &e.token, at, shape)?;
                        check(v);
                    }
                }
            }
            RecordKind::Tombstones => {
                persist::open_tombstones(keys, &blob, seq, rec)?;
            }
            RecordKind::Centroids | RecordKind::Codebook => {
                persist::open_training_record(keys, &blob, seq, rec)?;
            }
            RecordKind::History => {
                persist::open_history(keys, &blob, seq, rec)?;
            }
            RecordKind::Access => {
                persist::open_access_record(keys, &blob, seq, std::slice::from_ref(rec))?;
            }
            // Fields records are opened through the blocks that name their items (a fields
            // record no block names leaves a gap below).
            _ => continue,
        }
        check((rec.offset, rec.len));
    }
    segment::check_tiling(&mut checked, footer.directory_offset, layout)?;
    // The footer and the directory, authenticated by `segment_index`.
    Ok(checked.len() + 2)
}
