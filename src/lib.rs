#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod crypto;
mod engine;
mod error;
mod filter;
mod format;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;
mod index;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
mod ivf;
mod kernel;
pub mod kms;
mod metric;
mod model;
mod provider;
mod storage;
mod text;

pub use crypto::key::{INDEX_KEY_LEN, IndexKey};
pub use error::{Error, KeyServiceFailure, Result};
pub use metric::Metric;
pub use provider::{EnvKey, KeyFile, KeyProvider, StaticKey};
pub use storage::{MemoryStore, Store};

pub use index::{Database, DatabaseOptions, EncryptedIndex, StorageInfo};
pub use model::{
    Access, Anchor, FieldSchema, Hit, Include, IndexConfig, IndexType, Item, MetadataHit,
    MetadataQuery, MetadataSchema, Order, Query, Record, StoragePrecision, TrainOptions,
    TrainingStatus, VerifyReport,
};
