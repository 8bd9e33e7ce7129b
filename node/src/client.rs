//! `Client`: a database of indexes (memory, a folder, or any location `Database::open_url`
//! takes), shared by every `Client` of the same location in the process.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use ciphervec::{Database, DatabaseOptions, IndexConfig, IndexKey, IndexType, Metric};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{self, key_of};
use crate::errors::{Failure, invalid};
use crate::inputs::{ClientOptions, CreateIndexOptions, LoadIndexOptions};
use crate::tasks::{Done, Names, Opened};

/// A database of encrypted indexes: `new Client()` in memory (private to this client),
/// `new Client('path/to/folder')` (or `file:///abs/path`, `memory://`, `s3://bucket/prefix`
/// in a build with S3) at a location. Clients of one location share one database in the
/// whole process, worker threads included: an index open for writing in one thread is the
/// same index, under the same writer lock, in another (as in Rust, one writer per process).
#[napi]
pub struct Client {
    db: Arc<Database>,
}

#[napi]
impl Client {
    /// Opens the database at `location` (creating the folder if needed), or a private one
    /// in memory. `cacheBudget` bounds the bytes of decrypted vectors an index keeps in RAM.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        location: Option<String>,
        options: Option<ClientOptions>,
    ) -> Result<Client> {
        let budget = convert::optional_count("cacheBudget", options.and_then(|o| o.cache_budget))?;
        let db = shared::database(location.as_deref(), budget).map_err(|f| f.into_js(&env))?;
        Ok(Client { db })
    }

    /// Creates an index protected by `key` (32 bytes, as `generateKey()` gives).
    #[napi]
    pub fn create_index(
        &self,
        name: String,
        key: Uint8Array,
        options: CreateIndexOptions,
    ) -> Result<AsyncTask<Opened>> {
        let key = key_of(&key)?;
        let dimension = convert::count("dimension", options.dimension)?;
        let pq_m = convert::optional_count("pqM", options.pq_m)?;
        // The names are the core's (`IndexType`/`Metric` `FromStr`), as in every leaf.
        let name_of = |e: ciphervec::Error| invalid(e.to_string());
        let index_type: IndexType = options
            .index_type
            .as_deref()
            .unwrap_or("ivf_flat")
            .parse()
            .map_err(name_of)?;
        let metric: Metric = options
            .metric
            .as_deref()
            .unwrap_or("euclidean")
            .parse()
            .map_err(name_of)?;
        let mut config = IndexConfig::new(dimension, index_type)
            .metric(metric)
            .n_lists(convert::optional_count("nLists", options.n_lists)?.unwrap_or(0))
            .n_probes(convert::optional_count("nProbes", options.n_probes)?.unwrap_or(0))
            .full_text(options.full_text.unwrap_or(false));
        if let Some(m) = pq_m {
            // The library refuses subquantizers for a type without codes.
            config = config.n_subquantizers(m);
        }
        if let Some(bits) = convert::optional_count("refineBits", options.refine_bits)? {
            // Out of u8's range is as wrong as any width but 6 and 8: the engine says so.
            config = config.refine_bits(u8::try_from(bits).unwrap_or(0));
        }
        let db = self.db.clone();
        Ok(Opened::spawn(move || {
            let index = db.create_index(&name, &key, config)?;
            Ok((index, db))
        }))
    }

    /// Opens an index with its key (`readOnly`: for reading only, beside a writer in another
    /// process; `refresh()` picks up its commits).
    #[napi]
    pub fn load_index(
        &self,
        name: String,
        key: Uint8Array,
        options: Option<LoadIndexOptions>,
    ) -> Result<AsyncTask<Opened>> {
        let key = key_of(&key)?;
        let read_only = options.and_then(|o| o.read_only).unwrap_or(false);
        let db = self.db.clone();
        Ok(Opened::spawn(move || {
            let index = if read_only {
                db.open_index_read_only(&name, &key)?
            } else {
                db.open_index(&name, &key)?
            };
            Ok((index, db))
        }))
    }

    /// Names of the indexes, sorted.
    #[napi]
    pub fn list_indexes(&self) -> AsyncTask<Names> {
        let db = self.db.clone();
        Names::spawn(move || db.list_indexes())
    }

    /// Deletes an index and its files (the key proves the caller may).
    #[napi]
    pub fn delete_index(&self, name: String, key: Uint8Array) -> Result<AsyncTask<Done>> {
        let key = key_of(&key)?;
        let db = self.db.clone();
        Ok(Done::spawn(move || db.delete_index(&name, &key)))
    }

    /// Re-wraps the index's data key under a new index key (cheap; the data stays).
    #[napi]
    pub fn rotate_index_key(
        &self,
        name: String,
        old_key: Uint8Array,
        new_key: Uint8Array,
    ) -> Result<AsyncTask<Done>> {
        let (old, new) = keys(&old_key, &new_key)?;
        let db = self.db.clone();
        Ok(Done::spawn(move || db.rotate_index_key(&name, &old, &new)))
    }

    /// A new index key and a new data key in one crash-safe operation (after a compromise).
    #[napi]
    pub fn rotate_keys(
        &self,
        name: String,
        old_key: Uint8Array,
        new_key: Uint8Array,
    ) -> Result<AsyncTask<Done>> {
        let (old, new) = keys(&old_key, &new_key)?;
        let db = self.db.clone();
        Ok(Done::spawn(move || db.rotate_keys(&name, &old, &new)))
    }
}

fn keys(old: &Uint8Array, new: &Uint8Array) -> Result<(IndexKey, IndexKey)> {
    Ok((key_of(old)?, key_of(new)?))
}

/// The databases of the process, by location: one per location, whatever thread asks.
mod shared {
    use super::*;

    /// Which database: a location that names a folder (a path, once opening has created
    /// it) by the folder's canonical path, any other (a URL) by its text; with the cache
    /// budget it was opened with. (The location itself is the core's to parse: a
    /// `file://` URL and the path it names are two databases here, each with its writer.)
    #[derive(PartialEq, Eq)]
    struct Key {
        location: String,
        budget: Option<usize>,
    }

    /// Open databases; an entry lives as long as a `Client` or `Index` holds its database.
    static OPEN: Mutex<Vec<(Key, Weak<Database>)>> = Mutex::new(Vec::new());

    /// The database at `location` (a private one in memory for `None`).
    pub(super) fn database(
        location: Option<&str>,
        budget: Option<usize>,
    ) -> std::result::Result<Arc<Database>, Failure> {
        // The `CIPHERVEC_*` settings read as the command line and Python read them.
        let mut options = DatabaseOptions::from_env().map_err(Failure::from)?;
        if let Some(bytes) = budget {
            options = options.cache_budget(bytes);
        }
        let Some(location) = location else {
            return Ok(Arc::new(Database::in_memory_with(options)));
        };
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(_, db)| db.strong_count() > 0);
        // Opening creates a missing folder, which can then be named by its canonical path.
        let db = crate::errors::catching(|| Database::open_url_with(location, options))?;
        let key = Key {
            location: match std::fs::canonicalize(location) {
                Ok(dir) => dir.to_string_lossy().into_owned(),
                Err(_) => location.to_owned(),
            },
            budget,
        };
        if let Some(db) = open
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, db)| db.upgrade())
        {
            return Ok(db);
        }
        let db = Arc::new(db);
        open.push((key, Arc::downgrade(&db)));
        Ok(db)
    }
}
