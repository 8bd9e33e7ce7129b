//! The public facade: [`Database`], [`EncryptedIndex`] and the values they take and return.
//! The only layer that imports every other (storage -> format -> crypto -> ivf -> kernel).

mod access;
mod binding;
mod candidates;
mod database;
mod encrypted;
mod lists;
mod loader;
mod parallel;
mod patterns;
mod persist;
mod ranges;
mod recovery;
mod state;
mod tokens;
mod upkeep;

pub use access::Access;
pub use database::{Database, DatabaseOptions, StorageInfo};
pub use encrypted::EncryptedIndex;
#[cfg(feature = "internals")]
pub(crate) use encrypted::ignored_failures;
#[cfg(feature = "internals")]
pub use upkeep::Stage as TrainingStage;
pub use upkeep::TrainingStatus;

/// A test's hold on a background training (see `internals::hold_training`).
#[cfg(feature = "internals")]
pub(crate) fn upkeep_hold(
    reached: std::sync::mpsc::Sender<TrainingStage>,
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
