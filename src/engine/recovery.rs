//! What the segments on storage prove beyond the manifest, at open.
//!
//! A commit writes its segment first and the manifest after, so a crash can leave one
//! complete segment that no manifest names; a storage that puts back an older `MANIFEST`
//! leaves several. Either way the segments numbered from the manifest's `next_segment` on
//! are newer than the manifest. Each carries a sealed commit note (its footer) naming the
//! commit it extends, so it can be authenticated and its commit applied without the manifest
//! that would have named it, at the epoch it would have had: opening rolls every such
//! segment forward, in order, when it extends the state reached so far, and so never serves
//! a state older than what the segments on storage prove, nor one made of two histories. A
//! gap in the numbering is allowed only before a segment that replaces every other (a
//! training, compaction or rotation wrote the whole state into it, so the missing ones are
//! superseded). A segment sealed under a data key the stored manifest does not wrap (a
//! rotation whose manifest was put back) opens through the wrapped key its header shows,
//! under the same index key, and the rotation rolls forward too.
//!
//! An authentic segment is never deleted at open. What is removed is only what cannot
//! matter: segments older than the manifest's `next_segment` that it no longer names and
//! whose commit the history holds (superseded by a rewrite whose cleanup did not finish) or
//! skipped (a failed commit), files that do not authenticate under the index's keys and
//! cannot be authentic under others (a last segment torn by a crash, an older segment of
//! garbage), older segments sealed under another index key (what a `rotate_keys` superseded
//! before a crash cut its cleanup short), and temporary files. Anything else (a gap in the
//! numbering, an unauthentic segment followed by newer ones, a segment of another history,
//! a newer one sealed under another index key) refuses the open with [`Error::Corrupted`],
//! removing nothing.

use std::sync::Arc;

use crate::crypto::schedule::{AccessKeys, Keys};
use crate::error::{Error, Result};
use crate::format::manifest::{ManifestBody, ManifestHeader};
use crate::format::segment::{self, CommitNote, Footer};
use crate::format::{CommitId, RecordKind};
use crate::storage::{Blob, IndexFiles};

use super::access::{self, wrap_binding};
use super::binding::params;
use super::persist::{self, read_error};

/// The outcome of [`roll_forward`].
pub(crate) struct Recovery {
    /// The manifest body with every provable newer commit applied.
    pub body: ManifestBody,
    /// How many segments were rolled forward (the body then differs from the stored one).
    pub rolled: usize,
    /// Files a writer may remove (see the module docs).
    pub leftovers: Vec<String>,
    /// The header and keys of a data key a rolled-forward rotation put in place (the
    /// stored manifest's no longer open the index's newest segments).
    pub rekeyed: Option<(ManifestHeader, Arc<Keys>)>,
}

/// What a stored segment proves under an index's keys.
enum Proof {
    /// It authenticates: its commit note, and the keys it opened under when they differ
    /// from the ones given (a data key its header shows, wrapped by the same index key).
    Authentic(Footer, [u8; 32], Option<Box<(ManifestHeader, Keys)>>),
    /// It does not authenticate under the index key, and cannot be authentic under another
    /// (torn by a crash, or garbage).
    Unauthentic,
    /// Its header shows another index key: it may be authentic, but not under this key.
    OtherKey,
}

/// Authenticates segment `seq` (in `blob`) under `keys` (which `header` wraps), or under
/// the data key its own header shows when that differs and `keys` can unwrap it.
/// `newer`: the segment is numbered past the manifest's (a rotation there must carry its
/// access section and signature; an older one is only looked up in the history).
fn prove(
    keys: &Keys,
    header: &ManifestHeader,
    blob: &Blob,
    (seq, newer): (u64, bool),
) -> Result<Proof> {
    let layout = match persist::segment_head(blob, keys.format) {
        Ok((layout, Some(shown))) if shown.wrapped_key != header.wrapped_key => {
            if shown.key_check != header.key_check {
                return Ok(Proof::OtherKey);
            }
            let Some(wrapper) = &keys.wrapper else {
                return Ok(Proof::OtherKey);
            };
            // A rotation of an index with access control binds its wrapped key to that
            // (and carries its access section, signed by its new signing key).
            let unwrap = |with_access| {
                wrapper
                    .unwrap(&shown.wrapped_key, &wrap_binding(keys.format, with_access))
                    .ok()
                    .map(|dek| (dek, with_access))
            };
            let Some((dek, with_access)) = unwrap(true).or_else(|| unwrap(false)) else {
                return Ok(Proof::Unauthentic);
            };
            let mut rekeyed_header = ManifestHeader {
                wrapped_key: shown.wrapped_key,
                access: None,
                ..header.clone()
            };
            let rekeyed =
                Keys::derive(params(header), &dek, 0, keys.format).with_wrapper(wrapper.clone());
            let opened = persist::segment_index_unsigned(&rekeyed, blob, seq).and_then(
                |(footer, records)| {
                    if with_access {
                        rekeyed_header.access =
                            persist::open_access_record(&rekeyed, blob, seq, &records)?;
                    }
                    Ok(footer)
                },
            );
            let footer = match opened {
                Ok(footer) => footer,
                Err(Error::Corrupted { .. }) => return Ok(Proof::Unauthentic),
                Err(e) => return Err(e),
            };
            if with_access && rekeyed_header.access.is_none() && !newer {
                // An older segment of an earlier data key (superseded by a rotation whose
                // cleanup did not finish): whether its commit is in the history decides.
                return Ok(Proof::Authentic(
                    footer,
                    persist::blob_digest(blob, layout)?,
                    Some(Box::new((rekeyed_header, rekeyed))),
                ));
            }
            let rekeyed = access::attach(rekeyed, &rekeyed_header)?;
            if with_access {
                let commit_keys = rekeyed
                    .access
                    .as_ref()
                    .ok_or_else(|| Error::corrupted("a rotation without its access section"))?;
                signed_by(commit_keys, blob, &footer)?;
            }
            return Ok(Proof::Authentic(
                footer,
                persist::blob_digest(blob, layout)?,
                Some(Box::new((rekeyed_header, rekeyed))),
            ));
        }
        Ok((layout, _)) => layout,
        // A clear header of another format, or damaged: nothing authentic can be read.
        Err(Error::Corrupted { .. }) => return Ok(Proof::Unauthentic),
        Err(e) => return Err(e),
    };
    let footer = match persist::segment_index_unsigned(keys, blob, seq) {
        Ok((footer, _)) => footer,
        Err(Error::Corrupted { .. }) => return Ok(Proof::Unauthentic),
        Err(e) => return Err(e),
    };
    if let Some(commit_keys) = &keys.access {
        signed_by(commit_keys, blob, &footer)?;
    }
    Ok(Proof::Authentic(
        footer,
        persist::blob_digest(blob, layout)?,
        None,
    ))
}

/// Checks the signature of a segment that authenticates under the data key: one that does
/// not verify was made by a holder of the data key without the signing key (a reader's
/// forgery), which refuses the open as [`Error::Corrupted`] rather than passing for a torn
/// leftover.
fn signed_by(commit_keys: &AccessKeys, blob: &Blob, footer: &Footer) -> Result<()> {
    persist::verify_segment(commit_keys, blob, footer).map_err(|e| match e {
        Error::Corrupted { .. } => Error::corrupted(
            "a segment that authenticates but is not signed by the index's signing key (forged?)",
        ),
        e => e,
    })
}

/// Applies to `body` (read from the store's manifest, opened with `keys`, which `header`
/// wraps) every segment numbered from its `next_segment` on that authenticates and extends
/// it, in order; for a writer (`sort_older`, the one that removes leftovers) it also sorts
/// the older segments the manifest does not name into leftovers (a reader leaves them
/// unread: they cannot change what it serves, and one may be large).
///
/// # Errors
/// [`Error::Corrupted`] if the newer segments have a gap, an unauthentic one is followed by
/// others, one belongs to another history or another index key, or an older one is a commit
/// the history does not hold; [`Error::Io`].
pub(crate) fn roll_forward(
    store: &dyn IndexFiles,
    (keys, header): (&Keys, &ManifestHeader),
    mut body: ManifestBody,
    sort_older: bool,
) -> Result<Recovery> {
    let files = store.list()?;
    let mut leftovers: Vec<String> = files
        .iter()
        .filter(|f| f.ends_with(".tmp"))
        .cloned()
        .collect();
    let mut newer = Vec::new();
    let mut older = Vec::new();
    for f in &files {
        let Some(seq) = segment::parse_file_name(f) else {
            continue;
        };
        if body.segments.iter().any(|s| s.seq == seq) {
            continue;
        }
        if seq < body.next_segment {
            // Never part of this history, kept (see `History::abandoned`).
            if body.history.abandoned.contains(&seq) {
                continue;
            }
            if sort_older {
                older.push(seq);
            }
        } else {
            newer.push(seq);
        }
    }
    newer.sort_unstable();
    let mut rolled = 0;
    let mut rekeyed: Option<(ManifestHeader, Keys)> = None;
    for (i, &seq) in newer.iter().enumerate() {
        let name = segment::file_name(seq);
        let Some(blob) = read_listed(store, &name)? else {
            continue;
        };
        let (cur_keys, cur_header) = match &rekeyed {
            Some((h, k)) => (k, h),
            None => (keys, header),
        };
        match prove(cur_keys, cur_header, &blob, (seq, true))? {
            Proof::Authentic(Footer { note, .. }, digest, opened_under) => {
                if seq != body.next_segment && !note.replace_all {
                    return Err(Error::corrupted(
                        "segments newer than the manifest, with a gap (rolled back?)",
                    ));
                }
                if note.epoch <= body.epoch {
                    return Err(Error::corrupted("a newer segment with an older epoch"));
                }
                let under = opened_under.as_ref().map_or(cur_keys, |opened| &opened.1);
                if note.parent != body.history.head()
                    && !rewrite_descends(under, &blob, seq, &note, &body)?
                {
                    return Err(Error::corrupted(
                        "a segment of another history (the MANIFEST was put back and written on?)",
                    ));
                }
                if let Some(k) = opened_under {
                    // A rotation's segment (only a rewrite brings a new data key).
                    if !note.replace_all {
                        return Err(Error::corrupted("an append under another data key"));
                    }
                    rekeyed = Some(*k);
                }
                persist::apply_commit(&mut body, (seq, blob.len(), digest), &note);
                // One past what the rolled-forward writer may have used.
                body.key_generation = body
                    .key_generation
                    .max(note.key_generation.saturating_add(1));
                rolled += 1;
            }
            Proof::Unauthentic if i + 1 == newer.len() => leftovers.push(name),
            Proof::Unauthentic => {
                return Err(Error::corrupted(
                    "an unauthentic segment followed by newer ones",
                ));
            }
            Proof::OtherKey => {
                return Err(Error::corrupted(
                    "a newer segment under another index key (the MANIFEST is older than a key rotation?)",
                ));
            }
        }
    }
    let (cur_keys, cur_header) = match &rekeyed {
        Some((h, k)) => (k, h),
        None => (keys, header),
    };
    for seq in older {
        let name = segment::file_name(seq);
        let Some(blob) = read_listed(store, &name)? else {
            continue;
        };
        let superseded = match prove(cur_keys, cur_header, &blob, (seq, false))? {
            Proof::Authentic(Footer { note, .. }, digest, _) => {
                let id =
                    persist::commit_id(&note.parent, note.epoch, persist::Wrote::Segment(digest));
                in_history(store, cur_keys, &body, note.epoch, &id)?
            }
            // From before the upgrade to this format (its header is of an older one, which
            // the upgrade's rewrite superseded), torn, or garbage.
            Proof::Unauthentic => true,
            // Sealed under another index key, below the numbering of a manifest of this one:
            // what a key rotation (`rotate_keys`) superseded, its cleanup cut short. Only a
            // holder of this index key can extend this history, so it is no evidence here.
            Proof::OtherKey => true,
        };
        if !superseded {
            return Err(Error::corrupted(
                "a segment of another history or index key below the manifest's numbering",
            ));
        }
        leftovers.push(name);
    }
    Ok(Recovery {
        body,
        rolled,
        leftovers,
        rekeyed: rekeyed.map(|(h, k)| (h, Arc::new(k))),
    })
}

/// Reads a file the listing named: `None` if it is gone since (a writer removed a failed
/// commit's segment or a superseded one meanwhile; storage without it is what it holds).
fn read_listed(store: &dyn IndexFiles, name: &str) -> Result<Option<Blob>> {
    match store.read(name) {
        Ok(blob) => Ok(Some(blob)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(e)),
    }
}

/// Whether the rewrite in segment `seq` (its commit `note`) descends from the state of
/// `body` through commits whose segments are gone: its history record (the commits before
/// it, carried forward by the rewrite) ends with its parent and holds `body`'s head at
/// `body`'s epoch. A rewrite after a gap in the numbering supersedes everything between,
/// so this is all that it must prove.
fn rewrite_descends(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    note: &CommitNote,
    body: &ManifestBody,
) -> Result<bool> {
    if !note.replace_all || !note.history {
        return Ok(false);
    }
    let records = persist::segment_records(keys, blob, seq)?;
    let mut found = records.iter().filter(|r| r.kind == RecordKind::History);
    let (Some(rec), None) = (found.next(), found.next()) else {
        return Err(Error::corrupted("history record"));
    };
    let entries = persist::open_history(keys, blob, seq, rec)?;
    let ends_with_parent = entries.last().is_some_and(|(_, id)| *id == note.parent);
    let holds_head = entries
        .binary_search_by_key(&body.epoch, |(e, _)| *e)
        .is_ok_and(|i| entries[i].1 == body.history.head());
    Ok(ends_with_parent && holds_head)
}

/// Whether commit `id` at `epoch` belongs to `body`'s history, or its epoch was never
/// committed there (a failed commit's, or one before the history began): what a segment no
/// longer named may have been written by, for it to be removed.
fn in_history(
    store: &dyn IndexFiles,
    keys: &Keys,
    body: &ManifestBody,
    epoch: u64,
    id: &CommitId,
) -> Result<bool> {
    let archived = |seg: &_| persist::stored_segment(store, keys, seg);
    Ok(match persist::history_at(keys, body, epoch, archived)? {
        persist::HistoryAt::Id(recorded) => recorded == *id,
        persist::HistoryAt::Skipped | persist::HistoryAt::Before => true,
        persist::HistoryAt::After => false,
    })
}

/// How many more times [`retry_racing_writer`] runs an attempt that a commit disturbed.
const RACE_RETRIES: usize = 3;

/// Runs `attempt` on the stored manifest file's bytes (it authenticates them and reads what
/// they name), and runs it again on the new manifest, at most [`RACE_RETRIES`] more times,
/// when it fails with [`Error::Corrupted`] and the manifest changed meanwhile: a writer
/// committed while the attempt read (another process, or another thread through the writer
/// handle) and may have removed, replaced or re-keyed the segments it was reading (a
/// compaction or rotation removes the segments it supersedes at once in the directory
/// store). A failure with the manifest unchanged is what storage holds, and is returned.
///
/// # Errors
/// The last attempt's error; [`Error::IndexNotFound`], [`Error::Corrupted`] or
/// [`Error::Io`] reading the manifest.
pub(crate) fn retry_racing_writer<T>(
    store: &dyn IndexFiles,
    mut attempt: impl FnMut(&[u8]) -> Result<T>,
) -> Result<T> {
    let mut file = persist::read_manifest_file(store)?;
    let mut retries = 0;
    loop {
        match attempt(&file) {
            Err(e @ Error::Corrupted { .. }) if retries < RACE_RETRIES => {
                let now = persist::read_manifest_file(store)?;
                if now == file {
                    return Err(e);
                }
                file = now;
                retries += 1;
            }
            result => return result,
        }
    }
}

/// Removes `names`; one already gone is no error. Segments numbered below `next_segment`
/// (superseded: never written again) are retired ([`IndexFiles::retire`]: an object store
/// keeps them a while for readers of older states); others (torn segments a writer may
/// number again, temporary files) are removed at once.
pub(crate) fn remove_files(
    store: &dyn IndexFiles,
    names: &[String],
    next_segment: u64,
) -> Result<()> {
    for name in names {
        let superseded = segment::parse_file_name(name).is_some_and(|seq| seq < next_segment);
        let done = if superseded {
            store.retire(name)
        } else {
            store.remove(name)
        };
        match done {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::from(e)),
            _ => {}
        }
    }
    Ok(())
}

/// The files a writer may remove after committing `body`: segments numbered below its
/// `next_segment` that it does not name (superseded), and temporary files. Never a segment
/// numbered from `next_segment` on.
pub(crate) fn superseded(store: &dyn IndexFiles, body: &ManifestBody) -> Result<Vec<String>> {
    Ok(store
        .list()?
        .into_iter()
        .filter(|f| {
            f.ends_with(".tmp")
                || segment::parse_file_name(f).is_some_and(|seq| {
                    seq < body.next_segment && !body.segments.iter().any(|s| s.seq == seq)
                })
        })
        .collect())
}
