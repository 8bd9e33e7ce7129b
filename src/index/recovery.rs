//! What the segments on storage prove beyond the manifest, at open.
//!
//! A commit writes its segment first and the manifest after, so a crash can leave one
//! complete segment that no manifest names; a storage that puts back an older `MANIFEST`
//! leaves several. Either way the segments numbered from the manifest's `next_segment` on
//! are newer than the manifest. Each carries a sealed commit note (its footer), so it can be
//! authenticated and its commit applied without the manifest that would have named it, at
//! the epoch it would have had: opening rolls every such segment forward, in order, and so
//! never serves a state older than what the segments on storage prove. A gap in the
//! numbering is allowed only before a segment that replaces every other (a training,
//! compaction or rotation wrote the whole state into it, so the missing ones are superseded). An authentic segment is never deleted at open.
//! What is removed is only what cannot matter: segments older than the manifest's
//! `next_segment` that it no longer names (superseded by a rewrite whose cleanup did not
//! finish), a last segment that does not authenticate (torn by a crash, or sealed under
//! keys that never committed), and temporary files. Anything else (a gap in the numbering,
//! an unauthentic segment followed by newer ones) refuses the open with
//! [`Error::Corrupted`], removing nothing.

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::manifest::ManifestBody;
use crate::format::segment::{self, Footer};
use crate::storage::IndexFiles;

use super::persist::{self, read_error};

/// The outcome of [`roll_forward`].
pub(crate) struct Recovery {
    /// The manifest body with every provable newer commit applied.
    pub body: ManifestBody,
    /// How many segments were rolled forward (the body then differs from the stored one).
    pub rolled: usize,
    /// Files a writer may remove (see the module docs).
    pub leftovers: Vec<String>,
}

/// Applies to `body` (read from the store's manifest, opened with `keys`) every segment
/// numbered from its `next_segment` on that authenticates under `keys`, in order.
///
/// # Errors
/// [`Error::Corrupted`] if the newer segments have a gap or an unauthentic one is followed by
/// others; [`Error::Io`].
pub(crate) fn roll_forward(
    store: &dyn IndexFiles,
    keys: &Keys,
    mut body: ManifestBody,
) -> Result<Recovery> {
    let files = store.list()?;
    let mut leftovers: Vec<String> = files
        .iter()
        .filter(|f| f.ends_with(".tmp"))
        .cloned()
        .collect();
    let mut newer = Vec::new();
    for f in &files {
        let Some(seq) = segment::parse_file_name(f) else {
            continue;
        };
        if body.segments.iter().any(|s| s.seq == seq) {
            continue;
        }
        if seq < body.next_segment {
            leftovers.push(f.clone());
        } else {
            newer.push(seq);
        }
    }
    newer.sort_unstable();
    let mut rolled = 0;
    for (i, &seq) in newer.iter().enumerate() {
        let name = segment::file_name(seq);
        let blob = store.read(&name).map_err(read_error)?;
        match persist::segment_index(keys, &blob, seq) {
            Ok((Footer { note, .. }, _)) => {
                if seq != body.next_segment && !note.replace_all {
                    return Err(Error::corrupted(
                        "segments newer than the manifest, with a gap (rolled back?)",
                    ));
                }
                if note.epoch <= body.epoch {
                    return Err(Error::corrupted("a newer segment with an older epoch"));
                }
                let written = (seq, blob.len(), persist::blob_digest(&blob)?);
                persist::apply_commit(&mut body, written, &note);
                // One past what the rolled-forward writer may have used.
                body.key_generation = body
                    .key_generation
                    .max(note.key_generation.saturating_add(1));
                rolled += 1;
            }
            Err(_) if i + 1 == newer.len() => leftovers.push(name),
            Err(_) => {
                return Err(Error::corrupted(
                    "an unauthentic segment followed by newer ones",
                ));
            }
        }
    }
    Ok(Recovery {
        body,
        rolled,
        leftovers,
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
