//! `Index`: one open encrypted index.

use ciphervec::{Access, EncryptedIndex, Include, Item, MetadataQuery, Order, Query, TrainOptions};
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{self, f32_array, hit_dict, ids_of, include_of, json_of};
use crate::errors::{self, run};

/// One open encrypted index (from `Client.create_index` or `Client.load_index`). Safe to
/// use from several Python threads at once: queries run in parallel, writes one at a time.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct Index {
    inner: EncryptedIndex,
}

impl Index {
    pub(crate) fn new(inner: EncryptedIndex) -> Index {
        Index { inner }
    }
}

/// The options shared by `query`, `query_text` and `query_ids`.
struct QueryOptions {
    top_k: usize,
    n_probes: Option<usize>,
    filter: Option<serde_json::Value>,
    include: Include,
    rerank: Option<usize>,
    text: Option<String>,
    text_options: TextOptions,
    fusion: Fusion,
}

/// Where a query's text is searched (`text_fields`, `text_field_weights`,
/// `require_all_terms`).
#[derive(Default)]
struct TextOptions {
    fields: Option<Vec<String>>,
    weights: Option<Vec<f32>>,
    require_all: Option<bool>,
}

/// How a hybrid query fuses its rankings (`alpha`, `rrf_k`, `window_mult`).
#[derive(Default)]
struct Fusion {
    alpha: Option<f32>,
    rrf_k: Option<f32>,
    window_mult: Option<usize>,
}

impl TextOptions {
    /// From Python: `text_fields` a list of names; `text_field_weights` a list (one weight
    /// per field, in order) or a dict from field name to weight (which names the fields
    /// itself when `text_fields` is absent; a field it leaves out weighs 1).
    fn of(
        fields: Option<Vec<String>>,
        weights: Option<&Bound<'_, PyAny>>,
        require_all: Option<bool>,
    ) -> PyResult<TextOptions> {
        let mut fields = fields;
        let weights = match weights.filter(|w| !w.is_none()) {
            None => None,
            Some(w) => match w.cast::<PyDict>() {
                Ok(d) => {
                    let map: std::collections::HashMap<String, f32> = d.extract()?;
                    let names = fields.get_or_insert_with(|| {
                        let mut names: Vec<String> = map.keys().cloned().collect();
                        names.sort();
                        names
                    });
                    if let Some(extra) = map.keys().find(|k| !names.contains(k)) {
                        return Err(errors::invalid(format!(
                            "text_field_weights names {extra:?}, which text_fields does not"
                        )));
                    }
                    Some(
                        names
                            .iter()
                            .map(|n| map.get(n).copied().unwrap_or(1.0))
                            .collect(),
                    )
                }
                Err(_) => Some(w.extract::<Vec<f32>>().map_err(|_| {
                    PyTypeError::new_err(
                        "text_field_weights is a list of floats or a dict of field -> float",
                    )
                })?),
            },
        };
        Ok(TextOptions {
            fields,
            weights,
            require_all,
        })
    }

    fn apply_to_query(&self, mut q: Query) -> Query {
        if let Some(f) = &self.fields {
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            q = q.text_fields(&refs);
        }
        if let Some(w) = &self.weights {
            q = q.text_field_weights(w);
        }
        if let Some(all) = self.require_all {
            q = q.require_all_terms(all);
        }
        q
    }

    fn apply_to_listing(&self, mut q: MetadataQuery) -> MetadataQuery {
        if let Some(f) = &self.fields {
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            q = q.text_fields(&refs);
        }
        if let Some(w) = &self.weights {
            q = q.text_field_weights(w);
        }
        if let Some(all) = self.require_all {
            q = q.require_all_terms(all);
        }
        q
    }
}

impl QueryOptions {
    fn apply(&self, mut q: Query) -> Query {
        q = q.top_k(self.top_k).include(self.include);
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
        q = self.text_options.apply_to_query(q);
        if let Some(a) = self.fusion.alpha {
            q = q.hybrid_alpha(a);
        }
        if let Some(k) = self.fusion.rrf_k {
            q = q.rrf_k(k);
        }
        if let Some(m) = self.fusion.window_mult {
            q = q.window_mult(m);
        }
        q
    }

    /// One query per row of a row-major matrix `width` floats wide.
    fn per_row(&self, rows: &[f32], width: usize) -> Vec<Query> {
        rows.chunks(width.max(1))
            .map(|row| self.apply(Query::new(row.to_vec())))
            .collect()
    }
}

/// What a query takes besides its vectors, as Python gave it.
struct QueryArgs<'a, 'py> {
    top_k: i64,
    n_probes: Option<i64>,
    filters: Option<&'a Bound<'py, PyAny>>,
    include: Option<&'a Bound<'py, PyAny>>,
    rerank: Option<i64>,
    text: Option<String>,
    text_options: TextOptions,
    fusion: Fusion,
}

/// The query fields' default `include`.
const HIT_FIELDS: &[&str] = &["distance"];

fn options(args: QueryArgs<'_, '_>) -> PyResult<QueryOptions> {
    Ok(QueryOptions {
        top_k: convert::count("top_k", args.top_k)?,
        n_probes: convert::optional_count("n_probes", args.n_probes)?,
        filter: args
            .filters
            .filter(|f| !f.is_none())
            .map(filter_of)
            .transpose()?,
        include: include_of(&convert::include_names(args.include, HIT_FIELDS)?)?,
        rerank: convert::optional_count("rerank", args.rerank)?,
        text: args.text,
        text_options: args.text_options,
        fusion: args.fusion,
    })
}

/// A query's `filters`: a dict, or the same as JSON text (as the command line takes it).
fn filter_of(filters: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    match filters.extract::<String>() {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            errors::raise(
                "InvalidFilterError",
                format!("filters text is not JSON: {e}"),
            )
        }),
        Err(_) => json_of(filters, "InvalidFilterError"),
    }
}

#[pymethods]
impl Index {
    /// Inserts or replaces items: `upsert(items)` with a list of dicts (`id`, `vector`, and
    /// optional `contents` as str or bytes, `metadata` as a dict, read as the library reads
    /// an item's JSON: any other key is an `InvalidArgumentError` naming it, not silently
    /// dropped), or `upsert(ids, vectors)`
    /// with a list of str and a float32 array of shape (n, dimension), read in place.
    #[pyo3(signature = (items, vectors = None))]
    fn upsert(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        vectors: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let index = &self.inner;
        match vectors {
            Some(v) => {
                let ids = ids_of(items)?;
                let array = f32_array(v)?;
                if array.ndim() != 2 || array.shape()[0] != ids.len() {
                    return Err(errors::invalid(format!(
                        "vectors must be a 2-D array with one row per id ({} ids)",
                        ids.len()
                    )));
                }
                // Rows of another width: the library's DimensionMismatch.
                let rows = array.as_slice()?;
                run(py, || index.upsert_rows(&ids, rows))
            }
            None => {
                if items.cast::<PyDict>().is_ok() || items.cast::<PyString>().is_ok() {
                    return Err(PyTypeError::new_err("upsert takes a list of item dicts"));
                }
                let batch = items
                    .try_iter()?
                    .map(|i| convert::item_of(&i?))
                    .collect::<PyResult<Vec<Item>>>()?;
                run(py, || index.upsert(batch))
            }
        }
    }

    /// Trains the index (k-means centroids; codebooks for quantized types).
    #[pyo3(signature = (n_lists = None, max_iters = None))]
    fn train(&self, py: Python<'_>, n_lists: Option<i64>, max_iters: Option<i64>) -> PyResult<()> {
        let mut options = TrainOptions::default();
        if let Some(n) = convert::optional_count("n_lists", n_lists)? {
            options.n_lists = n;
        }
        if let Some(m) = convert::optional_count("max_iters", max_iters)? {
            options.max_iters = m;
        }
        let index = &self.inner;
        run(py, || index.train_with(options))
    }

    /// Nearest neighbours: a 1-D vector gives one list of hits, a 2-D array (one query per
    /// row) a list of lists. Hits are dicts with `id`, `distance` and what `include` asks
    /// for. `filters` is a MongoDB-style dict (or its JSON text). `text` makes the query
    /// hybrid: BM25 over the full-text fields (`text_fields`: "contents" and metadata text
    /// fields; `text_field_weights` a list or a dict of field -> weight; `require_all_terms`)
    /// fused with the vector ranking by weighted reciprocal rank (`alpha` 0.5: the vector
    /// ranking's weight; `rrf_k` 60; each ranking `window_mult` (3) times `top_k` deep); hits
    /// then carry `score`. Without vectors (`vectors=None`), `text` alone: a text-only query.
    #[pyo3(signature = (vectors = None, top_k = 10, n_probes = None, filters = None,
                        include = None, rerank = None, text = None, text_fields = None,
                        text_field_weights = None, require_all_terms = None, alpha = None,
                        rrf_k = None, window_mult = None))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        vectors: Option<&Bound<'py, PyAny>>,
        top_k: i64,
        n_probes: Option<i64>,
        filters: Option<&Bound<'py, PyAny>>,
        include: Option<&Bound<'py, PyAny>>,
        rerank: Option<i64>,
        text: Option<String>,
        text_fields: Option<Vec<String>>,
        text_field_weights: Option<&Bound<'py, PyAny>>,
        require_all_terms: Option<bool>,
        alpha: Option<f32>,
        rrf_k: Option<f32>,
        window_mult: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let o = options(QueryArgs {
            top_k,
            n_probes,
            filters,
            include,
            rerank,
            text,
            text_options: TextOptions::of(text_fields, text_field_weights, require_all_terms)?,
            fusion: Fusion {
                alpha,
                rrf_k,
                window_mult: convert::optional_count("window_mult", window_mult)?,
            },
        })?;
        let index = &self.inner;
        let Some(vectors) = vectors.filter(|v| !v.is_none()) else {
            let Some(words) = &o.text else {
                return Err(errors::invalid("a query needs vectors, text, or both"));
            };
            let q = o.apply(Query::text_only(words));
            let hits = run(py, || index.query(&q))?;
            return hits_list(py, hits, o.include);
        };
        let array = f32_array(vectors)?;
        let data = array.as_slice()?;
        match array.ndim() {
            1 => {
                let q = o.apply(Query::new(data.to_vec()));
                let hits = run(py, || index.query(&q))?;
                hits_list(py, hits, o.include)
            }
            2 => {
                let queries = o.per_row(data, array.shape()[1]);
                let all = run(py, || index.query_batch(&queries))?;
                let out = PyList::empty(py);
                for hits in all {
                    out.append(hits_list(py, hits, o.include)?)?;
                }
                Ok(out)
            }
            _ => Err(errors::invalid(
                "vectors are a 1-D vector or a 2-D array of rows",
            )),
        }
    }

    /// Full-text search (BM25 over contents; the index needs `full_text`): hits best first,
    /// with `score` and `distance` = -score.
    #[pyo3(signature = (words, top_k = 10, filters = None, include = None))]
    fn query_text<'py>(
        &self,
        py: Python<'py>,
        words: &str,
        top_k: i64,
        filters: Option<&Bound<'py, PyAny>>,
        include: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let o = options(QueryArgs {
            top_k,
            n_probes: None,
            filters,
            include,
            rerank: None,
            text: None,
            text_options: TextOptions::default(),
            fusion: Fusion::default(),
        })?;
        let q = o.apply(Query::text_only(words));
        let index = &self.inner;
        let hits = run(py, || index.query(&q))?;
        hits_list(py, hits, o.include)
    }

    /// The fast path for benchmarks: the ids of the `top_k` nearest items of each row of a
    /// 2-D array, as an int64 array of shape (n, top_k) when every id is a decimal integer
    /// (missing hits are -1), else a list of lists of str. Rows run in parallel.
    #[pyo3(signature = (vectors, top_k = 10, n_probes = None, filters = None, rerank = None))]
    fn query_ids<'py>(
        &self,
        py: Python<'py>,
        vectors: &Bound<'py, PyAny>,
        top_k: i64,
        n_probes: Option<i64>,
        filters: Option<&Bound<'py, PyAny>>,
        rerank: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = options(QueryArgs {
            top_k,
            n_probes,
            filters,
            include: None,
            rerank,
            text: None,
            text_options: TextOptions::default(),
            fusion: Fusion::default(),
        })?;
        let array = f32_array(vectors)?;
        if array.ndim() != 2 {
            return Err(errors::invalid("query_ids takes a 2-D array of rows"));
        }
        let queries = o.per_row(array.as_slice()?, array.shape()[1]);
        let index = &self.inner;
        let all = run(py, || index.query_batch(&queries))?;
        let numeric: Option<Vec<Vec<i64>>> = all
            .iter()
            .map(|hits| {
                let mut row: Vec<i64> = hits
                    .iter()
                    .map(|h| h.id.parse::<i64>().ok())
                    .collect::<Option<_>>()?;
                row.resize(o.top_k, -1);
                Some(row)
            })
            .collect();
        match numeric {
            Some(rows) => Ok(PyArray2::from_vec2(py, &rows)
                .map_err(|e| errors::invalid(e.to_string()))?
                .into_any()),
            None => {
                let ids: Vec<Vec<String>> = all
                    .into_iter()
                    .map(|hits| hits.into_iter().map(|h| h.id).collect())
                    .collect();
                Ok(PyList::new(py, ids)?.into_any())
            }
        }
    }

    /// Lists items by metadata and text alone, without a vector: every item `filters`
    /// matches (all without filters), in id order, or ordered by the metadata field
    /// `order_by` (`ascending` True by default; numbers before strings, missing last), or
    /// with `text` the items BM25 finds in the full-text fields (`text_fields`,
    /// `text_field_weights`, `require_all_terms` as in `query`), best first; `top_k` keeps
    /// the first hits. Returns dicts `{"id"}`, or `{"id", "score"}` with text. The metadata
    /// schema is enforced: filtering a field that is not filterable, or `$regex`/`$contains`
    /// on a field without `pattern`, raises `InvalidFilterError`.
    #[pyo3(signature = (filters = None, top_k = None, order_by = None, ascending = true,
                        text = None, text_fields = None, text_field_weights = None,
                        require_all_terms = None))]
    #[allow(clippy::too_many_arguments)]
    fn query_metadata<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyAny>>,
        top_k: Option<i64>,
        order_by: Option<String>,
        ascending: bool,
        text: Option<String>,
        text_fields: Option<Vec<String>>,
        text_field_weights: Option<&Bound<'py, PyAny>>,
        require_all_terms: Option<bool>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut q = MetadataQuery::new();
        if let Some(f) = filters.filter(|f| !f.is_none()) {
            q = q.filter(filter_of(f)?);
        }
        if let Some(k) = convert::optional_count("top_k", top_k)? {
            q = q.top_k(k);
        }
        if let Some(field) = &order_by {
            let order = if ascending {
                Order::Ascending
            } else {
                Order::Descending
            };
            q = q.order_by(field, order);
        }
        if let Some(words) = &text {
            q = q.text(words);
        }
        q = TextOptions::of(text_fields, text_field_weights, require_all_terms)?
            .apply_to_listing(q);
        let index = &self.inner;
        let hits = run(py, || index.query_metadata(&q))?;
        let out = PyList::empty(py);
        for h in hits {
            let d = PyDict::new(py);
            d.set_item("id", h.id)?;
            if let Some(s) = h.score {
                d.set_item("score", s)?;
            }
            out.append(d)?;
        }
        Ok(out)
    }

    /// The stored items with these ids, in the order given (unknown ids skipped), as dicts
    /// with `id` and what `include` asks for.
    #[pyo3(signature = (ids, include = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        include: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = ids_of(ids)?;
        let include = include_of(&convert::include_names(include, &["metadata", "contents"])?)?;
        let index = &self.inner;
        let records = run(py, || {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            index.get(&refs, include)
        })?;
        let out = PyList::empty(py);
        for r in records {
            out.append(convert::record_dict(py, r, include)?)?;
        }
        Ok(out)
    }

    /// Deletes items by id; returns how many existed.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = ids_of(ids)?;
        let index = &self.inner;
        run(py, || {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            index.delete(&refs)
        })
    }

    /// Every id, sorted.
    fn list_ids(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let index = &self.inner;
        run(py, || index.list_ids())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Whether the index has been trained.
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// Whether a training runs in the background now (writes and queries go on meanwhile).
    fn is_training(&self) -> bool {
        self.inner.is_training()
    }

    /// What self-maintenance is doing and has done: `training` (a background training
    /// runs), `trained_at_items` (the item count of the last training, None if never
    /// trained), `auto_train`, `items`, `n_lists`, `next_training_at_items`,
    /// `background_trainings`, `list_splits` and `last_error`.
    fn training_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.training_status();
        let d = PyDict::new(py);
        d.set_item("training", s.training)?;
        d.set_item("trained_at_items", s.trained_at_items)?;
        d.set_item("auto_train", s.auto_train)?;
        d.set_item("items", s.items)?;
        d.set_item("n_lists", s.n_lists)?;
        d.set_item("next_training_at_items", s.next_training_at_items)?;
        d.set_item("background_trainings", s.background_trainings)?;
        d.set_item("list_splits", s.list_splits)?;
        d.set_item("last_error", s.last_error)?;
        Ok(d)
    }

    /// The index name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// The vector dimension.
    #[getter]
    fn dimension(&self) -> usize {
        self.inner.config().dimension()
    }

    /// Number of inverted lists (1 before training).
    #[getter]
    fn n_lists(&self) -> usize {
        self.inner.n_lists()
    }

    /// The metric by its name ("euclidean", "squared_euclidean", "cosine", "inner_product").
    #[getter]
    fn metric(&self) -> String {
        self.inner.config().distance_metric().to_string()
    }

    /// The index type by its name ("ivf_flat", "ivf_sq8", "ivf_pq").
    #[getter]
    fn index_type(&self) -> String {
        self.inner.config().index_type().to_string()
    }

    /// Whether full-text search is on.
    #[getter]
    fn full_text(&self) -> bool {
        self.inner.config().is_full_text()
    }

    /// How re-rank vectors are stored: "float32", "float16" or "int8".
    #[getter]
    fn storage_precision(&self) -> &'static str {
        self.inner.config().precision().as_str()
    }

    /// The metadata schema, as `create_index(metadata_schema=...)` takes it (every named
    /// field, text fields included).
    #[getter]
    fn metadata_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::py_of_json(py, &self.inner.config().schema().to_json())
    }

    /// Turns full-text search on (built from the stored contents).
    fn enable_full_text(&self, py: Python<'_>) -> PyResult<()> {
        let index = &self.inner;
        run(py, || index.enable_full_text())
    }

    /// Rewrites the live items into one segment, giving back the space of dead ones.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        let index = &self.inner;
        run(py, || index.compact())
    }

    /// Re-encrypts everything under a fresh data key.
    fn rotate_data_key(&self, py: Python<'_>) -> PyResult<()> {
        let index = &self.inner;
        run(py, || index.rotate_data_key())
    }

    /// Grants `user`, who holds `user_key` (32 bytes, as `cv.generate_key()` makes),
    /// `access` ("read", "write" or "admin") to the index; it opens it with
    /// `client.load_index(name, user_key, user=user)`.
    #[pyo3(signature = (user, user_key, access = "read"))]
    fn grant(
        &self,
        py: Python<'_>,
        user: &str,
        user_key: &Bound<'_, PyAny>,
        access: &str,
    ) -> PyResult<()> {
        let user_key = crate::convert::key_of(user_key)?;
        let access: Access = access.parse().map_err(errors::to_py)?;
        let index = &self.inner;
        run(py, || index.grant(user, &user_key, access))
    }

    /// Revokes `user`'s grant and rotates the data key: its key opens nothing written after.
    fn revoke(&self, py: Python<'_>, user: &str) -> PyResult<()> {
        let index = &self.inner;
        run(py, || index.revoke(user))
    }

    /// The users granted access, as `(name, access)` pairs sorted by name.
    fn users(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        let index = &self.inner;
        let users = run(py, || index.users())?;
        Ok(users
            .into_iter()
            .map(|(u, a)| (u, a.name().to_owned()))
            .collect())
    }

    /// Checks every byte of every live file; returns a dict with `segments`, `records` and
    /// `bytes` checked.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let index = &self.inner;
        let report = run(py, || index.verify())?;
        let d = PyDict::new(py);
        d.set_item("segments", report.segments)?;
        d.set_item("records", report.records)?;
        d.set_item("bytes", report.bytes)?;
        Ok(d)
    }

    /// Writes a consistent copy (one commit) into the directory `path`.
    fn backup_to(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let index = &self.inner;
        run(py, || index.backup_to(&path))
    }

    /// The index's identity and commit epoch as text (holds no secret); keep it to detect a
    /// rollback later with `check_anchor`.
    fn anchor(&self) -> String {
        self.inner.anchor().to_string()
    }

    /// Raises `RolledBackError` if the stored index is older than `anchor`, or
    /// `CorruptedError` if the anchor belongs to another index.
    fn check_anchor(&self, py: Python<'_>, anchor: &str) -> PyResult<()> {
        let index = &self.inner;
        let anchor = anchor.to_owned();
        run(py, move || index.check_anchor(&anchor.parse()?))
    }

    /// Picks up commits made by other processes (read-only handles); True if changed.
    fn refresh(&self, py: Python<'_>) -> PyResult<bool> {
        let index = &self.inner;
        run(py, || index.refresh())
    }

    fn __repr__(&self) -> String {
        format!(
            "ciphervec.Index(name={:?}, dimension={}, items={})",
            self.inner.name(),
            self.inner.config().dimension(),
            self.inner.len()
        )
    }
}

fn hits_list<'py>(
    py: Python<'py>,
    hits: Vec<ciphervec::Hit>,
    include: Include,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for h in hits {
        out.append(hit_dict(py, h, include)?)?;
    }
    Ok(out)
}
