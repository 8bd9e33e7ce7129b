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
