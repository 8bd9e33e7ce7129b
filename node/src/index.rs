//! `Index`: one open encrypted index. Every method that reads or writes it returns a Promise
//! (`tasks`); the accessors (`size`, `dimension`, `isTrained()`, `anchor()`...) answer at
//! once from what the handle holds.

use std::sync::Arc;

use ciphervec::{Database, EncryptedIndex, Include, Query};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{self, Json, Vector, floats_of};
use crate::errors::{Failure, invalid, sync};
use crate::inputs::{GetOptions, Item, QueryOptions, TextQueryOptions, TrainOptions};
use crate::tasks::{Count, Done, Flag, HitLists, Hits, Names, Records, Verified};

/// One open encrypted index, from `client.createIndex` or `client.loadIndex`. Queries run in
/// parallel with each other and with one writer; writes run one at a time.
#[napi]
pub struct Index {
    inner: EncryptedIndex,
    /// The database the index was opened from: while an index is open, a `Client` of the
    /// same location (in any thread) finds the same database, and so the same handle.
    _db: Arc<Database>,
}

impl Index {
    pub(crate) fn new(inner: EncryptedIndex, db: Arc<Database>) -> Index {
        Index { inner, _db: db }
    }
}

/// The options of a query, checked and converted.
struct Search {
    top_k: usize,
    n_probes: Option<usize>,
    filter: Option<serde_json::Value>,
    include: Include,
    rerank: Option<usize>,
    text: Option<String>,
}

impl Search {
    fn new(env: &Env, o: QueryOptions) -> Result<Search> {
        Ok(Search {
            top_k: convert::optional_count("topK", o.top_k)?.unwrap_or(10),
            n_probes: convert::optional_count("nProbes", o.n_probes)?,
            filter: o.filters.map(|f| filter(env, f)).transpose()?,
            include: convert::include_of(o.include.as_deref(), Include::NONE)?,
            rerank: convert::optional_count("rerank", o.rerank)?,
            text: o.text,
        })
    }

    fn query(&self, vector: Vec<f32>) -> Query {
        let mut q = Query::new(vector).top_k(self.top_k).include(self.include);
        if let Some(n) = self.n_probes {
            q = q.n_probes(n);
        }
        if let Some(f) = &self.filter {
            q = q.filter(f.clone());
        }
        if let Some(r) = self.rerank {
            q = q.rerank(r);
        }
        if let Some(t) = &self.text {
            q = q.text(t);
        }
        q
    }
}

/// A filter from its options value: an object, or its JSON text (`INVALID_FILTER` when the
/// text does not parse).
fn filter(env: &Env, Json(value): Json) -> Result<serde_json::Value> {
    convert::filter_of(value)
        .map_err(|reason| Failure::with_code("INVALID_FILTER", reason).into_js(env))
}

/// The rows of a flat batch of `floats` numbers, `dim` each: a length that is no multiple
/// of the dimension is a batch of vectors of the wrong dimension.
fn rows(env: &Env, floats: usize, dim: usize) -> Result<usize> {
    if dim == 0 || !floats.is_multiple_of(dim) {
        return Err(Failure::with_code(
            "DIMENSION_MISMATCH",
            format!("dimension mismatch: a batch of rows of {dim} floats, found {floats} floats"),
        )
        .into_js(env));
    }
    Ok(floats / dim)
}

/// The strings of a JavaScript array (ids).
fn strings(array: &Array<'_>, what: &str) -> Result<Vec<String>> {
    (0..array.len())
        .map(|i| {
            array
                .get::<String>(i)
                .ok()
                .flatten()
                .ok_or_else(|| invalid(format!("{what} are strings")))
        })
        .collect()
}

#[napi]
impl Index {
    /// Inserts or replaces items: `upsert(items)` with objects `{id, vector, contents?,
    /// metadata?}` (any other key is refused), or `upsert(ids, vectors)` with a `Float32Array`
    /// of `ids.length` rows of the dimension, row-major, read in place by the write on the
    /// thread pool (do not change, transfer or detach its buffer until the Promise settles).
    #[napi(ts_args_type = "items: Array<Item> | Array<string>, vectors?: Float32Array")]
    pub fn upsert(
        &self,
        items: Array<'_>,
        vectors: Option<Float32Array>,
    ) -> Result<AsyncTask<Done>> {
        let index = self.inner.clone();
        match vectors {
            Some(rows) => {
                // Rows of another width: the library's DimensionMismatch.
                let ids = strings(&items, "ids")?;
                Ok(Done::spawn(move || index.upsert_rows(&ids, &rows)))
            }
            None => {
                let batch = (0..items.len())
                    .map(|i| {
                        items
                            .get::<Item>(i)?
                            .map(ciphervec::Item::from)
                            .ok_or_else(|| {
                                invalid("items are objects {id, vector, contents?, metadata?}")
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Done::spawn(move || index.upsert(batch)))
            }
        }
    }

    /// Trains the index: k-means centroids (and codebooks for quantized types); the items
    /// are then searched list by list.
    #[napi]
    pub fn train(&self, options: Option<TrainOptions>) -> Result<AsyncTask<Done>> {
        let mut train = ciphervec::TrainOptions::default();
        if let Some(o) = options {
            if let Some(n) = convert::optional_count("nLists", o.n_lists)? {
                train.n_lists = n;
            }
            if let Some(m) = convert::optional_count("maxIters", o.max_iters)? {
                train.max_iters = m;
            }
        }
        let index = self.inner.clone();
        Ok(Done::spawn(move || index.train_with(train)))
    }

    /// The `topK` nearest items of `vector`, closest first: `{id, distance}` and what
    /// `include` asks for. `filters` restricts them by metadata; `text` makes the query
    /// hybrid (hits then carry `score`).
    #[napi]
    pub fn query(
        &self,
        env: Env,
        vector: Either<Float32Array, Vec<f64>>,
        options: Option<QueryOptions>,
    ) -> Result<AsyncTask<Hits>> {
        let search = Search::new(&env, options.unwrap_or_default())?;
        let q = search.query(floats_of(&vector));
        let index = self.inner.clone();
        Ok(Hits::spawn(move || index.query(&q)))
    }

    /// One query per vector: a `Float32Array` of rows of the dimension (row-major, read in
    /// place on the thread pool: do not change, transfer or detach its buffer until the
    /// Promise settles), or an array of vectors. Queries run in parallel.
    #[napi(
        ts_args_type = "vectors: Float32Array | Array<Float32Array | Array<number>>, options?: QueryOptions"
    )]
    pub fn query_batch(
        &self,
        env: Env,
        vectors: Either<Float32Array, Vec<Vector>>,
        options: Option<QueryOptions>,
    ) -> Result<AsyncTask<HitLists>> {
        let search = Search::new(&env, options.unwrap_or_default())?;
        let index = self.inner.clone();
        match vectors {
            Either::A(flat) => {
                let dim = index.config().dimension();
                rows(&env, flat.len(), dim)?;
                Ok(HitLists::spawn(move || {
                    let queries: Vec<Query> = flat
                        .chunks(dim)
                        .map(|row| search.query(row.to_vec()))
                        .collect();
                    index.query_batch(&queries)
                }))
            }
            Either::B(list) => {
                let queries: Vec<Query> = list.iter().map(|v| search.query(floats_of(v))).collect();
                Ok(HitLists::spawn(move || index.query_batch(&queries)))
            }
        }
    }

    /// Full-text search (BM25 over the contents; the index needs `fullText`): hits best
    /// first, with `score` and `distance` = -score.
    #[napi]
    pub fn query_text(
        &self,
        env: Env,
        words: String,
        options: Option<TextQueryOptions>,
    ) -> Result<AsyncTask<Hits>> {
        let o = options.unwrap_or_default();
        let search = Search {
            top_k: convert::optional_count("topK", o.top_k)?.unwrap_or(10),
            n_probes: None,
            filter: o.filters.map(|f| filter(&env, f)).transpose()?,
            include: convert::include_of(o.include.as_deref(), Include::NONE)?,
            rerank: None,
            text: None,
        };
        let mut q = Query::text_only(&words)
            .top_k(search.top_k)
            .include(search.include);
        if let Some(f) = search.filter {
            q = q.filter(f);
        }
        let index = self.inner.clone();
        Ok(Hits::spawn(move || index.query(&q)))
    }

    /// The stored items with these ids, in the order given (unknown ids skipped): `{id}` and
    /// what `include` asks for (default: metadata and contents).
    #[napi]
    pub fn get(&self, ids: Vec<String>, options: Option<GetOptions>) -> Result<AsyncTask<Records>> {
        let include = convert::include_of(
            options.and_then(|o| o.include).as_deref(),
            Include::METADATA | Include::CONTENTS,
        )?;
        let index = self.inner.clone();
        Ok(Records::spawn(move || {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            index.get(&refs, include)
        }))
    }

    /// Deletes items by id; resolves to how many existed.
    #[napi]
    pub fn delete(&self, ids: Vec<String>) -> AsyncTask<Count> {
        let index = self.inner.clone();
        Count::spawn(move || {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            index.delete(&refs)
        })
    }

    /// Every id, sorted.
    #[napi]
    pub fn list_ids(&self) -> AsyncTask<Names> {
        let index = self.inner.clone();
        Names::spawn(move || index.list_ids())
    }

    /// Number of items.
    #[napi(getter)]
    pub fn size(&self, env: Env) -> Result<f64> {
        sync(&env, || Ok(self.inner.len() as f64))
    }

    /// Whether the index has been trained.
    #[napi]
    pub fn is_trained(&self, env: Env) -> Result<bool> {
        sync(&env, || Ok(self.inner.is_trained()))
    }

    /// The vector dimension.
    #[napi(getter)]
    pub fn dimension(&self) -> f64 {
        self.inner.config().dimension() as f64
    }

    /// The index name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// The metric: "euclidean", "squared_euclidean", "cosine" or "inner_product".
    #[napi(
        getter,
        ts_return_type = "'euclidean' | 'squared_euclidean' | 'cosine' | 'inner_product'"
    )]
    pub fn metric(&self) -> &'static str {
        self.inner.config().distance_metric().name()
    }

    /// The index type: "ivf_flat", "ivf_sq8" or "ivf_pq".
    #[napi(getter, ts_return_type = "'ivf_flat' | 'ivf_sq8' | 'ivf_pq'")]
    pub fn index_type(&self) -> &'static str {
        self.inner.config().index_type().name()
    }

    /// Number of inverted lists (0 before training).
    #[napi(getter)]
    pub fn n_lists(&self, env: Env) -> Result<f64> {
        sync(&env, || Ok(self.inner.n_lists() as f64))
    }

    /// Whether full-text search is on.
    #[napi(getter)]
    pub fn full_text(&self) -> bool {
        self.inner.config().is_full_text()
    }

    /// Turns full-text search on (built from the stored contents).
    #[napi]
    pub fn enable_full_text(&self) -> AsyncTask<Done> {
        let index = self.inner.clone();
        Done::spawn(move || index.enable_full_text())
    }

    /// Rewrites the live items into one segment, giving back the space of dead ones.
    #[napi]
    pub fn compact(&self) -> AsyncTask<Done> {
        let index = self.inner.clone();
        Done::spawn(move || index.compact())
    }

    /// Re-encrypts everything under a fresh data key.
    #[napi]
    pub fn rotate_data_key(&self) -> AsyncTask<Done> {
        let index = self.inner.clone();
        Done::spawn(move || index.rotate_data_key())
    }

    /// Checks every byte of every live file: resolves to what was checked.
    #[napi]
    pub fn verify(&self) -> AsyncTask<Verified> {
        let index = self.inner.clone();
        Verified::spawn(move || index.verify())
    }

    /// Writes a consistent copy (one commit) into the database folder `path`, as an index of
    /// the same name: `new Client(path).loadIndex(name, key)` opens it.
    #[napi]
    pub fn backup_to(&self, path: String) -> AsyncTask<Done> {
        let index = self.inner.clone();
        Done::spawn(move || index.backup_to(&path))
    }

    /// The index's identity and commit epoch as text (no secret): keep it elsewhere to
    /// detect a rollback later with `checkAnchor`.
    #[napi]
    pub fn anchor(&self, env: Env) -> Result<String> {
        sync(&env, || Ok(self.inner.anchor().to_string()))
    }

    /// Rejects with `RolledBackError` if the stored index is older than `anchor`, or
    /// `CorruptedError` if the anchor belongs to another index.
    #[napi]
    pub fn check_anchor(&self, anchor: String) -> AsyncTask<Done> {
        let index = self.inner.clone();
        Done::spawn(move || index.check_anchor(&anchor.parse()?))
    }

    /// Picks up commits made elsewhere (read-only handles); resolves to whether anything
    /// changed.
    #[napi]
    pub fn refresh(&self) -> AsyncTask<Flag> {
        let index = self.inner.clone();
        Flag::spawn(move || index.refresh())
    }
}
