//! Indexes created without a dimension (`POST /v1/indexes/create` with no `dimension`, as
//! CyborgDB's documented cURL call does): the first upsert fixes the dimension.
//!
//! The core fixes the dimension at creation, so such an index is created as a placeholder:
//! a one-dimensional index under the same name and key holding one marker item whose
//! (encrypted) metadata records what was asked (type, metric, lists), and whose own
//! configuration carries the rest (metadata schema, text fields, BM25, storage precision,
//! so that the core checks them at creation). Every endpoint sees
//! it as an empty index of dimension 0; the first upsert deletes it and creates the real
//! index with the asked configuration and the dimension of the vectors written. Nothing of
//! it is in clear on storage. A crash between that delete and the create loses the empty
//! placeholder (the next upsert answers 404); the lead is asked for a core call that makes
//! this unnecessary.

use ciphervec::{EncryptedIndex, Include, IndexConfig, Item, Metric};
use serde_json::{Value, json};

use crate::convert::{self, Kind};
use crate::error::ApiError;
use crate::features::Features;

/// The id of the marker item (no SDK user writes it to a one-dimensional index by chance).
const MARKER_ID: &str = "__ciphervec_serve__/pending-dimension/v1";
/// The metadata field of the marker that holds the asked configuration.
const MARKER_FIELD: &str = "ciphervec_serve_pending";

/// What was asked at creation, waiting for a dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The index type.
    pub kind: Kind,
    /// The metric.
    pub metric: Metric,
    /// Lists to train (0: chosen at training).
    pub n_lists: usize,
    /// Schema, text fields, BM25 and precision.
    pub features: Features,
}

impl Pending {
    /// The placeholder's configuration and marker item.
    pub fn placeholder(&self) -> (IndexConfig, Item) {
        let spec = json!({
            MARKER_FIELD: {
                "type": self.kind.name(),
                "pq_dim": match self.kind { Kind::Pq { pq_dim } => pq_dim, _ => 0 },
                "metric": convert::metric_name(self.metric),
                "n_lists": self.n_lists,
            }
        });
        (
            self.features
                .apply(IndexConfig::ivf_flat(1).metric(Metric::Euclidean)),
            Item::new(MARKER_ID, vec![1.0]).with_metadata(spec),
        )
    }

    /// The real configuration once the dimension is known.
    ///
    /// # Errors
    /// 400 when the asked type does not fit the dimension (PQ subquantizers).
    pub fn config(&self, dimension: usize) -> Result<IndexConfig, ApiError> {
        Ok(self.features.apply(
            self.kind
                .config(dimension)?
                .metric(self.metric)
                .n_lists(self.n_lists),
        ))
    }

    /// The pending configuration if `index` is a placeholder. Blocking.
    pub fn of(index: &EncryptedIndex) -> Option<Pending> {
        if index.config().dimension() != 1 || index.len() != 1 {
            return None;
        }
        let record = index.get(&[MARKER_ID], Include::METADATA).ok()?.pop()?;
        let spec = record.metadata?.get(MARKER_FIELD)?.clone();
        Pending::from_json(&spec, Features::of(index.config()))
    }

    fn from_json(spec: &Value, features: Features) -> Option<Pending> {
        let pq_dim = spec.get("pq_dim")?.as_u64()? as usize;
        let kind = match convert::kind(spec.get("type")?.as_str(), Some(pq_dim), None).ok()? {
            Kind::Pq { .. } => Kind::Pq { pq_dim },
            other => other,
        };
        Some(Pending {
            kind,
            metric: convert::metric(spec.get("metric")?.as_str()).ok()?,
            n_lists: spec.get("n_lists")?.as_u64()? as usize,
            features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciphervec::{Database, IndexKey, MetadataSchema, StoragePrecision};

    #[test]
    fn a_placeholder_is_recognised_and_a_real_one_dimensional_index_is_not() {
        let db = Database::in_memory();
        let key = IndexKey::generate();
        let features = Features {
            schema: MetadataSchema::from_json(&json!({"title": {"pattern": true}})).unwrap(),
            text_fields: vec!["body".into()],
            full_text: true,
            bm25: Some((1.5, 0.5)),
            precision: StoragePrecision::Int8,
        };
        let asked = Pending {
            kind: Kind::Pq { pq_dim: 8 },
            metric: Metric::Cosine,
            n_lists: 16,
            features: features.clone(),
        };
        let (config, marker) = asked.placeholder();
        let index = db.create_index("p", &key, config).unwrap();
        index.upsert([marker]).unwrap();
        let found = Pending::of(&index).unwrap();
        // The text fields come back merged into the schema, as the core keeps them.
        assert_eq!(
            found.features,
            Features::of(&features.apply(IndexConfig::ivf_flat(1)))
        );
        let real = found.config(64).unwrap();
        assert_eq!(real.dimension(), 64);
        assert_eq!(real.distance_metric(), Metric::Cosine);
        assert_eq!(real.precision(), StoragePrecision::Int8);
        assert_eq!(real.bm25_params(), (1.5, 0.5));
        assert!(real.is_full_text());
        assert_eq!(real.schema(), &found.features.schema);

        let plain = db
            .create_index("q", &key, IndexConfig::ivf_flat(1))
            .unwrap();
        plain.upsert([Item::new("a", vec![2.0])]).unwrap();
        assert_eq!(Pending::of(&plain), None);
    }
}
