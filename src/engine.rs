//! The engine behind the facade: the decrypted in-memory state of an index, its persistence
//! (the manifest, segment writing, record reading, the commit path), loading and recovery
//! at open, the list source searches read through, the filter candidates, access grants,
//! self-maintenance and the thread pool. The facade (`index`) drives it; it names the
//! values (`model`) and the layers below, never the facade.

pub(crate) mod access;
pub(crate) mod binding;
pub(crate) mod candidates;
pub(crate) mod filter_plan;
pub(crate) mod lists;
pub(crate) mod loader;
pub(crate) mod parallel;
pub(crate) mod patterns;
pub(crate) mod persist;
pub(crate) mod planner;
pub(crate) mod ranges;
pub(crate) mod recovery;
pub(crate) mod state;
pub(crate) mod tokens;
pub(crate) mod upkeep;

/// A test's hold on a background training (see `internals::hold_training`).
#[cfg(feature = "internals")]
pub(crate) fn upkeep_hold(
    reached: std::sync::mpsc::Sender<upkeep::Stage>,
    go: std::sync::mpsc::Receiver<()>,
) -> upkeep::Hold {
    upkeep::Hold { reached, go }
}

/// The records of a segment opened with a user's grant in a manifest (see
/// `internals::user_opens_segment`).
#[cfg(feature = "internals")]
pub(crate) fn segment_as_user(
    manifest: &[u8],
    (user, user_key): (&str, &crate::crypto::key::IndexKey),
    segment: &[u8],
    seq: u64,
) -> crate::error::Result<usize> {
    let parts = crate::format::manifest::decode(manifest)?;
    let uk = binding::params(&parts.header).user_keys(user_key, user);
    let granted = access::open_as_user(&parts.header, parts.version, &uk)?;
    let keys = crate::crypto::schedule::Keys::derive(
        binding::params(&parts.header),
        &granted.dek,
        0,
        parts.version,
    );
    let blob = crate::storage::Blob::Shared(segment.to_vec().into());
    persist::segment_index_unsigned(&keys, &blob, seq).map(|(_, records)| records.len())
}
