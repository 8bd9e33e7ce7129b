//! What calls give back, as JavaScript objects: hits, records and verify reports. Contents
//! become a `Buffer` and vectors a `Float32Array`, each over the engine's own allocation
//! (handed to V8 without a copy); metadata becomes a plain object. A field a read did not
//! ask for, or that the item does not have, is absent.

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// One query hit.
#[napi(object, object_from_js = false)]
pub struct Hit {
    /// The item id.
    pub id: String,
    /// Distance to the query under the index metric (smaller is closer); `-score` for a
    /// text-only query.
    pub distance: f64,
    /// For text and hybrid queries, the BM25 or fused score (larger is better).
    pub score: Option<f64>,
    /// The metadata, if asked for (`include`) and present.
    #[napi(ts_type = "Record<string, unknown>")]
    pub metadata: Option<serde_json::Value>,
    /// The contents, if asked for and present.
    pub contents: Option<Buffer>,
    /// The vector, if asked for.
    pub vector: Option<Float32Array>,
}

impl From<ciphervec::Hit> for Hit {
    fn from(h: ciphervec::Hit) -> Hit {
        Hit {
            id: h.id,
            distance: f64::from(h.distance),
            score: h.score.map(f64::from),
            metadata: h.metadata,
            contents: h.contents.map(Buffer::from),
            vector: h.vector.map(Float32Array::new),
        }
    }
}

/// One stored item, as `get` returns it.
#[napi(object, object_from_js = false)]
pub struct StoredItem {
    /// The item id.
    pub id: String,
    /// The metadata, if asked for (`include`) and present.
    #[napi(ts_type = "Record<string, unknown>")]
    pub metadata: Option<serde_json::Value>,
    /// The contents, if asked for and present.
    pub contents: Option<Buffer>,
    /// The vector, if asked for.
    pub vector: Option<Float32Array>,
}

impl From<ciphervec::Record> for StoredItem {
    fn from(r: ciphervec::Record) -> StoredItem {
        StoredItem {
            id: r.id,
            metadata: r.metadata,
            contents: r.contents.map(Buffer::from),
            vector: r.vector.map(Float32Array::new),
        }
    }
}

/// What `verify` checked.
#[napi(object, object_from_js = false)]
pub struct VerifyReport {
    /// Live segment files checked.
    pub segments: f64,
    /// Sealed records authenticated.
    pub records: f64,
    /// Bytes of the live files, every one of them checked.
    pub bytes: f64,
}

impl From<ciphervec::VerifyReport> for VerifyReport {
    fn from(r: ciphervec::VerifyReport) -> VerifyReport {
        // Counts below 2^53: exact as numbers.
        VerifyReport {
            segments: r.segments as f64,
            records: r.records as f64,
            bytes: r.bytes as f64,
        }
    }
}

/// Hits as JavaScript objects.
pub(crate) fn hits(hits: Vec<ciphervec::Hit>) -> Vec<Hit> {
    hits.into_iter().map(Hit::from).collect()
}
