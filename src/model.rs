//! The values: what callers of the facade pass in and get back (configurations, items,
//! queries, hits, schemas, anchors) and the checks of caller input. Both the facade
//! (`index`) and the engine beneath it name these; they name neither.

pub(crate) mod access;
pub(crate) mod anchor;
pub(crate) mod config;
pub(crate) mod item_json;
pub(crate) mod schema;
pub(crate) mod training;
pub(crate) mod types;
pub(crate) mod validate;

pub use access::Access;
pub use anchor::Anchor;
pub use config::{IndexConfig, IndexType, StoragePrecision, TrainOptions};
pub use schema::{FieldSchema, MetadataSchema};
pub use training::TrainingStatus;
pub use types::{
    Hit, Include, Item, MetadataHit, MetadataQuery, Order, Query, Record, VerifyReport,
};
