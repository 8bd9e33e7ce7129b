//! The public facade: [`Database`] and [`EncryptedIndex`], the objects users call. Their
//! methods check what callers pass (`crate::model`), then drive the engine
//! (`crate::engine`: the decrypted state, persistence, loading, the query planner) and the
//! layers beneath it.

mod database;
mod encrypted;

#[cfg(feature = "internals")]
pub use crate::engine::upkeep::Stage as TrainingStage;
pub use database::{Database, DatabaseOptions, StorageInfo};
pub use encrypted::EncryptedIndex;
#[cfg(feature = "internals")]
pub(crate) use encrypted::ignored_failures;
