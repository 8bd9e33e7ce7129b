//! The public facade: [`Database`], [`EncryptedIndex`] and the values they take and return.
//! The only layer that imports every other (storage -> format -> crypto -> ivf -> kernel).

mod access;
mod anchor;
mod binding;
mod candidates;
mod config;
mod database;
mod encrypted;
mod item_json;
mod lists;
mod loader;
mod parallel;
mod patterns;
mod persist;
mod ranges;
mod recovery;
mod schema;
mod state;
mod tokens;
mod types;
mod upkeep;
mod validate;

pub use access::Access;
pub use anchor::Anchor;
pub use config::{IndexConfig, IndexType, StoragePrecision, TrainOptions};
pub use database::{Database, DatabaseOptions, StorageInfo};
pub use encrypted::EncryptedIndex;
#[cfg(feature = "internals")]
pub(crate) use encrypted::ignored_failures;
pub use schema::{FieldSchema, MetadataSchema};
pub use types::{
    Hit, Include, Item, MetadataHit, MetadataQuery, Order, Query, Record, VerifyReport,
};
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
