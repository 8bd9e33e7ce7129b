//! `Index`: one open encrypted index.

use ciphervec::{EncryptedIndex, Include, IndexType, Item, Metric, Query, TrainOptions};
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{self, contents_of, f32_array, hit_dict, ids_of, include_of, json_of};
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

/// One item of `upsert(items)`: a dict with `id`, `vector`, and optional `contents`,
/// `metadata`.
fn item_of(obj: &Bound<'_, PyAny>) -> PyResult<Item> {
    let d = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("items are dicts with id, vector, contents?, metadata?")
    })?;
    // A misspelt key ("content", "meta") would drop what it holds without a word.
    for key in d.keys() {
        let known = key
            .extract::<String>()
            .is_ok_and(|k| matches!(k.as_str(), "id" | "vector" | "contents" | "metadata"));
        if !known {
            return Err(errors::invalid(format!(
                "an item's keys are id, vector, contents and metadata; not {}",
                key.repr()?
            )));
        }
    }
    let id: String = d
        .get_item("id")?
        .ok_or_else(|| errors::invalid("an item needs an id"))?
        .extract()
        .map_err(|_| PyTypeError::new_err("an item's id is a str"))?;
    let vector = d
        .get_item("vector")?
        .ok_or_else(|| errors::invalid("an item needs a vector"))?;
    let array = f32_array(&vector)?;
    if array.ndim() != 1 {
        return Err(errors::invalid("an item's vector is one-dimensional"));
    }
    let mut item = Item::new(id, array.as_slice()?.to_vec());
    if let Some(c) = d.get_item("contents")?.filter(|c| !c.is_none()) {
        item = item.with_contents(contents_of(&c)?);
    }
    if let Some(m) = d.get_item("metadata")?.filter(|m| !m.is_none()) {
        item = item.with_metadata(json_of(&m, "InvalidArgumentError")?);
    }
    Ok(item)
}

#[pymethods]
impl Index {
    /// Inserts or replaces items: `upsert(items)` with a list of dicts (`id`, `vector`, and
    /// optional `contents` as str or bytes, `metadata` as a dict; any other key is an
    /// `InvalidArgumentError`, not silently dropped), or `upsert(ids, vectors)`
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
                let (width, dim) = (array.shape()[1], index.config().dimension());
                if width != dim {
                    return Err(errors::raise(
                        "DimensionMismatchError",
                        format!("dimension mismatch: expected {dim}, found {width}"),
                    ));
                }
                let rows = array.as_slice()?;
                run(py, || index.upsert_rows(&ids, rows))
            }
            None => {
                if items.cast::<PyDict>().is_ok() || items.cast::<PyString>().is_ok() {
                    return Err(PyTypeError::new_err("upsert takes a list of item dicts"));
                }
                let batch = items
                    .try_iter()?
                    .map(|i| item_of(&i?))
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
    /// for. `filters` is a MongoDB-style dict (or its JSON text); `text` makes the query hybrid (BM25 over
    /// contents fused with the vector ranking; hits then carry `score`).
    #[pyo3(signature = (vectors, top_k = 10, n_probes = None, filters = None,
                        include = None, rerank = None, text = None))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        vectors: &Bound<'py, PyAny>,
        top_k: i64,
        n_probes: Option<i64>,
        filters: Option<&Bound<'py, PyAny>>,
        include: Option<&Bound<'py, PyAny>>,
        rerank: Option<i64>,
        text: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let o = options(QueryArgs {
            top_k,
            n_probes,
            filters,
            include,
            rerank,
            text,
        })?;
        let array = f32_array(vectors)?;
        let data = array.as_slice()?;
        let index = &self.inner;
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

    /// The metric: "euclidean", "squared_euclidean", "cosine" or "inner_product".
    #[getter]
    fn metric(&self) -> &'static str {
        match self.inner.config().distance_metric() {
            Metric::SquaredEuclidean => "squared_euclidean",
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "inner_product",
            _ => "euclidean",
        }
    }

    /// The index type: "ivf_flat", "ivf_sq8" or "ivf_pq".
    #[getter]
    fn index_type(&self) -> &'static str {
        match self.inner.config().index_type() {
            IndexType::IvfSq8 => "ivf_sq8",
            IndexType::IvfPq { .. } => "ivf_pq",
            _ => "ivf_flat",
        }
    }

    /// Whether full-text search is on.
    #[getter]
    fn full_text(&self) -> bool {
        self.inner.config().is_full_text()
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
