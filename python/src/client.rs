//! `Client`: a database (a directory, memory, or any location `Database::open_url` takes).

use std::path::PathBuf;

use ciphervec::{
    Database, DatabaseOptions, IndexConfig, IndexType, MetadataSchema, Metric, StoragePrecision,
};
use pyo3::prelude::*;

use crate::convert::{self, key_of};
use crate::errors::{self, run};
use crate::index::Index;

/// A database of encrypted indexes: `Client()` in memory, `Client("path/to/dir")` (or a
/// `pathlib.Path`, `file:///abs/path`, `memory://`) on disk. `cache_budget` bounds the bytes
/// of decrypted vectors an index keeps in RAM (default: the engine's). The `CIPHERVEC_*`
/// variables of `DatabaseOptions::from_env` apply, as in the command line.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct Client {
    db: Database,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (path = None, *, cache_budget = None))]
    fn new(py: Python<'_>, path: Option<PathBuf>, cache_budget: Option<i64>) -> PyResult<Client> {
        let mut options = DatabaseOptions::from_env().map_err(errors::to_py)?;
        if let Some(bytes) = convert::optional_count("cache_budget", cache_budget)? {
            options = options.cache_budget(bytes);
        }
        let db = match path {
            None => Database::in_memory_with(options),
            Some(p) => {
                let url = p.to_string_lossy().into_owned();
                run(py, move || Database::open_url_with(&url, options))?
            }
        };
        Ok(Client { db })
    }

    /// Creates an index; `key` is its 32-byte index key. `index_type` (any case):
    /// "ivf_flat", "ivf_sq8" or "ivf_pq" (`pq_m` subquantizers, for it only: default
    /// `dimension / 4`, or the largest divisor of the dimension below it; `refine_bits` 6,
    /// the default, or 8: see `IndexConfig::refine_bits`); `metric` (any case); `n_lists`
    /// and `n_probes` default to automatic; `full_text` indexes contents for BM25.
    /// `metadata_schema` (a dict or its JSON text, `{"field": {"filterable": bool, "pattern":
    /// bool, "full_text": bool}}`), `text_fields` (metadata string fields for BM25),
    /// `bm25_k1`/`bm25_b` (defaults 1.2 and 0.75) and `storage_precision` ("float32",
    /// "float16" or "int8": how re-rank vectors are stored) are fixed at creation. `auto_train=False` keeps the index from training by itself (by
    /// default it trains in the background once it holds 10,000 items, and keeps its lists
    /// fitted as it grows).
    #[pyo3(signature = (name, key, *, dimension, index_type = "ivf_flat", metric = "euclidean",
                        n_lists = None, n_probes = None, pq_m = None, full_text = false,
                        refine_bits = None, metadata_schema = None, text_fields = None,
                        bm25_k1 = None, bm25_b = None, storage_precision = "float32",
                        auto_train = true))]
    #[allow(clippy::too_many_arguments)]
    fn create_index(
        &self,
        py: Python<'_>,
        name: &str,
        key: &Bound<'_, PyAny>,
        dimension: i64,
        index_type: &str,
        metric: &str,
        n_lists: Option<i64>,
        n_probes: Option<i64>,
        pq_m: Option<i64>,
        full_text: bool,
        refine_bits: Option<i64>,
        metadata_schema: Option<&Bound<'_, PyAny>>,
        text_fields: Option<Vec<String>>,
        bm25_k1: Option<f32>,
        bm25_b: Option<f32>,
        storage_precision: &str,
        auto_train: bool,
    ) -> PyResult<Index> {
        let key = key_of(key)?;
        let dimension = convert::count("dimension", dimension)?;
        let n_lists = convert::optional_count("n_lists", n_lists)?;
        let n_probes = convert::optional_count("n_probes", n_probes)?;
        let pq_m = convert::optional_count("pq_m", pq_m)?;
        let index_type: IndexType = index_type.parse().map_err(errors::to_py)?;
        let metric: Metric = metric.parse().map_err(errors::to_py)?;
        let mut config = IndexConfig::new(dimension, index_type)
            .metric(metric)
            .n_lists(n_lists.unwrap_or(0))
            .n_probes(n_probes.unwrap_or(0))
            .full_text(full_text)
            .auto_train(auto_train);
        if let Some(m) = pq_m {
            // The library refuses it for a type without codes.
            config = config.n_subquantizers(m);
        }
        if let Some(bits) = refine_bits {
            // Out of u8's range is as wrong as any other width but 6 and 8.
            config = config.refine_bits(u8::try_from(bits).unwrap_or(0));
        }
        if let Some(schema) = metadata_schema.filter(|s| !s.is_none()) {
            let json = match schema.extract::<String>() {
                Ok(text) => serde_json::from_str(&text).map_err(|e| {
                    errors::invalid(format!("metadata_schema text is not JSON: {e}"))
                })?,
                Err(_) => convert::json_of(schema, "InvalidArgumentError")?,
            };
            config =
                config.metadata_schema(MetadataSchema::from_json(&json).map_err(errors::to_py)?);
        }
        if let Some(fields) = &text_fields {
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            config = config.text_fields(&refs);
        }
        if bm25_k1.is_some() || bm25_b.is_some() {
            config = config.bm25(bm25_k1.unwrap_or(1.2), bm25_b.unwrap_or(0.75));
        }
        config = config.storage_precision(
            storage_precision
                .parse::<StoragePrecision>()
                .map_err(errors::to_py)?,
        );
        let db = &self.db;
        let index = run(py, || db.create_index(name, &key, config))?;
        Ok(Index::new(index))
    }

    /// Opens an index with its key (`read_only=True`: for reading, in any process, beside a
    /// writer elsewhere; `refresh()` picks up its commits). With `user=`, `key` is that
    /// user's key (granted by `index.grant`): a read grant's handle refuses writes with
    /// `PermissionDeniedError`.
    #[pyo3(signature = (name, key, *, user = None, read_only = false))]
    fn load_index(
        &self,
        py: Python<'_>,
        name: &str,
        key: &Bound<'_, PyAny>,
        user: Option<&str>,
        read_only: bool,
    ) -> PyResult<Index> {
        let key = key_of(key)?;
        let db = &self.db;
        let index = run(py, || {
            if let Some(user) = user {
                db.open_index_as(name, user, &key)
            } else if read_only {
                db.open_index_read_only(name, &key)
            } else {
                db.open_index(name, &key)
            }
        })?;
        Ok(Index::new(index))
    }

    /// Names of the indexes, sorted.
    fn list_indexes(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let db = &self.db;
        run(py, || db.list_indexes())
    }

    /// Deletes an index and its files (the key proves the caller may).
    fn delete_index(&self, py: Python<'_>, name: &str, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = key_of(key)?;
        let db = &self.db;
        run(py, || db.delete_index(name, &key))
    }

    /// Re-wraps the index's data key under a new index key (cheap; the data stays).
    fn rotate_index_key(
        &self,
        py: Python<'_>,
        name: &str,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (old, new) = (key_of(old)?, key_of(new)?);
        let db = &self.db;
        run(py, || db.rotate_index_key(name, &old, &new))
    }

    /// New index key and new data key in one crash-safe operation (after a compromise).
    fn rotate_keys(
        &self,
        py: Python<'_>,
        name: &str,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (old, new) = (key_of(old)?, key_of(new)?);
        let db = &self.db;
        run(py, || db.rotate_keys(name, &old, &new))
    }

    fn __repr__(&self) -> String {
        "ciphervec.Client(...)".to_owned()
    }
}
