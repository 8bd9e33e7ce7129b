//! The objects the API takes: items (`{id, vector, contents, metadata}`) and options
//! (`{dimension, indexType, ...}`, `{topK, filters, ...}`), one struct each, declared through
//! [`js_object!`] so that its TypeScript interface is generated from the same field list
//! that reads it. Reading refuses a key the struct does not have (a misspelt `content` would
//! drop what it holds, and a misspelt `filter` would make a query meant to be filtered
//! answer unfiltered, without a word) and names the key of a value of the wrong type.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{self, Json, Vector};
use crate::errors::invalid;

/// One field of an object, read from its key: `Option<T>` when the key may be missing
/// (`undefined` or `null`), a plain type when it is required.
trait Field: Sized {
    fn read(object: &Object<'_>, key: &str, what: &str) -> Result<Self>;
}

impl<T: FromNapiValue> Field for Option<T> {
    fn read(object: &Object<'_>, key: &str, what: &str) -> Result<Self> {
        object
            .get::<Option<T>>(key)
            .map(Option::flatten)
            .map_err(|e| naming(e, key, what))
    }
}

/// Required fields: the types that are never `Option`.
macro_rules! required {
    ($($ty:ty),*) => {$(
        impl Field for $ty {
            fn read(object: &Object<'_>, key: &str, what: &str) -> Result<Self> {
                match object.get::<Option<$ty>>(key).map_err(|e| naming(e, key, what))? {
                    Some(Some(v)) => Ok(v),
                    _ => Err(invalid(format!("{what}.{key} is required"))),
                }
            }
        }
    )*};
}

required!(f64, String, Vector);

/// A conversion error of `key`'s value, saying which key it was.
fn naming(mut e: napi::Error, key: &str, what: &str) -> napi::Error {
    e.reason = format!("{what}.{key}: {}", e.reason);
    e
}

/// Refuses the keys of `object` that are not in `keys`.
fn check_keys(object: &Object<'_>, keys: &[&str], what: &str) -> Result<()> {
    for key in Object::keys(object)? {
        if !keys.contains(&key.as_str()) {
            return Err(invalid(format!(
                "{what} has no key {key:?} (its keys are {})",
                keys.join(", ")
            )));
        }
    }
    Ok(())
}

/// Reads an input struct: checks the object's keys against the struct's, then reads each
/// field from its key (napi's generated conversion would ignore unknown keys). The keys are
/// the ones napi gives the fields in the generated TypeScript (camelCase).
macro_rules! from_js {
    ($name:ident { $($field:ident: $key:literal),* $(,)? }) => {
        impl FromNapiValue for $name {
            unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
                let not_object = || invalid(concat!(stringify!($name), " is an object"));
                // napi's `Object` conversion checks no type: anything but an object is
                // refused here, before a key is read (`Object.keys(undefined)` would throw
                // a TypeError).
                // SAFETY: `env` and `value` are the live handles napi passes to this
                // conversion, on the JavaScript thread.
                let unknown = unsafe { Unknown::from_raw_unchecked(env, value) };
                if !unknown.get_type().is_ok_and(|t| t == ValueType::Object) {
                    return Err(not_object());
                }
                // SAFETY: as above; the value is an object.
                let object = unsafe { Object::from_napi_value(env, value) }
                    .map_err(|_| not_object())?;
                check_keys(&object, &[$($key),*], stringify!($name))?;
                Ok($name { $( $field: Field::read(&object, $key, stringify!($name))?, )* })
            }
        }

        impl ValidateNapiValue for $name {}
    };
}

/// One item of `index.upsert(items)`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct Item {
    /// The id: any non-empty string (an existing id is replaced).
    pub id: String,
    /// The vector: as many numbers as the index's dimension.
    pub vector: Either<Float32Array, Vec<f64>>,
    /// Contents, stored encrypted: a string (kept as UTF-8) or bytes; read back as a
    /// `Buffer`. Searched by text queries when the index has `fullText`.
    pub contents: Option<Either<String, Uint8Array>>,
    /// Metadata, stored encrypted and usable in filters: any JSON object (as
    /// `JSON.stringify` writes it).
    #[napi(ts_type = "Record<string, unknown>")]
    pub metadata: Option<Json>,
}

from_js!(Item {
    id: "id",
    vector: "vector",
    contents: "contents",
    metadata: "metadata"
});

impl From<Item> for ciphervec::Item {
    fn from(item: Item) -> ciphervec::Item {
        let mut out = ciphervec::Item::new(item.id, convert::floats_of(&item.vector));
        if let Some(contents) = item.contents {
            out = out.with_contents(convert::bytes_of(contents));
        }
        if let Some(Json(metadata)) = item.metadata {
            out = out.with_metadata(metadata);
        }
        out
    }
}

/// Options of `new Client(location, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct ClientOptions {
    /// Bytes of decrypted vectors an index keeps in RAM (default: the engine's).
    pub cache_budget: Option<f64>,
}

from_js!(ClientOptions {
    cache_budget: "cacheBudget"
});

/// Options of `client.createIndex(name, key, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct CreateIndexOptions {
    /// The vector dimension (required).
    pub dimension: f64,
    /// "ivf_flat" (default), "ivf_sq8" or "ivf_pq".
    #[napi(ts_type = "'ivf_flat' | 'ivf_sq8' | 'ivf_pq'")]
    pub index_type: Option<String>,
    /// "euclidean" (default), "squared_euclidean", "cosine" or "inner_product".
    #[napi(ts_type = "'euclidean' | 'squared_euclidean' | 'cosine' | 'inner_product'")]
    pub metric: Option<String>,
    /// Inverted lists (default: about 4 * sqrt(n) at training).
    pub n_lists: Option<f64>,
    /// Lists a query probes (default: automatic).
    pub n_probes: Option<f64>,
    /// Subquantizers of an "ivf_pq" index (default: dimension / 4, or the largest divisor
    /// of the dimension below it).
    pub pq_m: Option<f64>,
    /// Index the contents for BM25 full-text and hybrid queries.
    pub full_text: Option<bool>,
    /// Bits per dimension of "ivf_pq"'s refine code: 6 (default) or 8.
    pub refine_bits: Option<f64>,
}

from_js!(CreateIndexOptions {
    dimension: "dimension",
    index_type: "indexType",
    metric: "metric",
    n_lists: "nLists",
    n_probes: "nProbes",
    pq_m: "pqM",
    full_text: "fullText",
    refine_bits: "refineBits"
});

/// Options of `client.loadIndex(name, key, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct LoadIndexOptions {
    /// Open for reading only, without the writer lock (beside a writer elsewhere;
    /// `refresh()` picks up its commits).
    pub read_only: Option<bool>,
}

from_js!(LoadIndexOptions {
    read_only: "readOnly"
});

/// Options of `index.train(options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct TrainOptions {
    /// Number of lists (default: the index's, or about 4 * sqrt(n)).
    pub n_lists: Option<f64>,
    /// Maximum k-means iterations (default 10).
    pub max_iters: Option<f64>,
}

from_js!(TrainOptions {
    n_lists: "nLists",
    max_iters: "maxIters"
});

/// Options of `index.query(vector, options)` and `index.queryBatch(vectors, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct QueryOptions {
    /// Number of hits (default 10).
    pub top_k: Option<f64>,
    /// Lists to probe (default: the index's; more than it has makes the search exact).
    pub n_probes: Option<f64>,
    /// A MongoDB-style metadata filter (`{genre: 'news', year: {$gte: 2020}}`), or its
    /// JSON text.
    #[napi(ts_type = "Record<string, unknown> | string")]
    pub filters: Option<Json>,
    /// Fields hits carry besides `id` and `distance`: "metadata", "contents", "vector".
    pub include: Option<Vec<String>>,
    /// For quantized types, re-rank `rerank * topK` candidates exactly.
    pub rerank: Option<f64>,
    /// Words that make the query hybrid (BM25 over the contents fused with the vector
    /// ranking; hits then carry `score`). The index needs `fullText`.
    pub text: Option<String>,
}

from_js!(QueryOptions {
    top_k: "topK",
    n_probes: "nProbes",
    filters: "filters",
    include: "include",
    rerank: "rerank",
    text: "text"
});

/// Options of `index.queryText(words, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct TextQueryOptions {
    /// Number of hits (default 10).
    pub top_k: Option<f64>,
    /// A MongoDB-style metadata filter, or its JSON text.
    #[napi(ts_type = "Record<string, unknown> | string")]
    pub filters: Option<Json>,
    /// Fields hits carry besides `id`, `distance` and `score`.
    pub include: Option<Vec<String>>,
}

from_js!(TextQueryOptions {
    top_k: "topK",
    filters: "filters",
    include: "include"
});

/// Options of `index.get(ids, options)`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default)]
pub struct GetOptions {
    /// Fields records carry besides `id` (default: "metadata" and "contents").
    pub include: Option<Vec<String>>,
}

from_js!(GetOptions { include: "include" });
