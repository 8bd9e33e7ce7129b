//! [`Database`]: a place that holds named encrypted indexes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::crypto::key::IndexKey;
use crate::error::{Error, Result};
use crate::format::manifest::{MANIFEST_FILE, ManifestBody};
use crate::storage::{Backend, DirBackend, IndexFiles, MemoryBackend, Store, StoreBackend};

use super::encrypted::{EncryptedIndex, Inner};
use crate::engine::persist;
use crate::engine::state::{Committed, Residency, State};
use crate::engine::{loader, recovery};
use crate::model::config::IndexConfig;
use crate::model::validate;

/// Options of a [`Database`]. The library reads no environment variable: a program that
/// wants the documented `CIPHERVEC_*` variables (as the command line does) asks for them
/// with [`from_env`](Self::from_env).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseOptions {
    /// Bytes of decrypted vectors an open index may keep in memory. `None` (the default):
    /// no limit, every index is decrypted into memory when opened, so queries touch no
    /// storage. With a budget, an index whose vectors exceed it holds less: an `ivf_flat`
    /// index keeps only its item table in memory and decrypts the probed lists on demand
    /// into a cache of at most this many bytes (least recently used lists are evicted); an
    /// `ivf_sq8` or `ivf_pq` index keeps its item table and codes and decrypts only the
    /// vectors a query re-ranks. Decided at open and at every training or compaction.
    pub cache_budget: Option<usize>,
    /// Compact automatically after a write once this share of the stored bytes is dead
    /// (deleted or overwritten entries) and the index holds at least 4 MiB, or once it holds
    /// more live segments than one per 64 items (at least 1,024, at most 16,384; each write
    /// adds one: an index written one item at a time). Default 0.5; `None` compacts only on
    /// [`compact`](crate::EncryptedIndex::compact).
    pub auto_compact: Option<f64>,
    /// Object stores ([`Database::with_store`], `s3://`): the bound of the read cache of
    /// encrypted segment bytes the database's indexes share (default 256 MiB; 0 turns it
    /// off, so every read goes to the store). Environment: `CIPHERVEC_READ_CACHE_MB`.
    pub read_cache_bytes: u64,
    /// Object stores: how long a segment that a commit superseded (a compaction, training,
    /// rotation) stays for readers in other processes that still hold the state naming it
    /// (default 60 s; zero deletes at once). Environment: `CIPHERVEC_GRACE_SECONDS`.
    pub grace_period: Duration,
    /// `s3://` locations: how long a writer lease lasts unless renewed (default 30 s; a
    /// writer that dies keeps others out this long). A [`Store`] of your own says its own
    /// through [`Store::lease_duration`]. Environment: `CIPHERVEC_LEASE_SECONDS`.
    pub lease_duration: Duration,
    /// Whether opening a local directory that does not exist creates it (default true).
    /// False for tools whose every command but "create" reads an existing database: a
    /// mistyped path is then an error, and no empty folder is left behind.
    pub create_if_missing: bool,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            cache_budget: None,
            auto_compact: Some(0.5),
            read_cache_bytes: 256 << 20,
            grace_period: Duration::from_secs(60),
            lease_duration: Duration::from_secs(30),
            create_if_missing: true,
        }
    }
}

impl DatabaseOptions {
    /// Sets [`auto_compact`](Self::auto_compact) (`None` turns it off).
    pub fn auto_compact(mut self, dead_share: Option<f64>) -> DatabaseOptions {
        self.auto_compact = dead_share;
        self
    }

    /// Sets [`cache_budget`](Self::cache_budget).
    pub fn cache_budget(mut self, bytes: usize) -> DatabaseOptions {
        self.cache_budget = Some(bytes);
        self
    }

    /// Sets [`read_cache_bytes`](Self::read_cache_bytes).
    pub fn read_cache_bytes(mut self, bytes: u64) -> DatabaseOptions {
        self.read_cache_bytes = bytes;
        self
    }

    /// Sets [`grace_period`](Self::grace_period).
    pub fn grace_period(mut self, grace: Duration) -> DatabaseOptions {
        self.grace_period = grace;
        self
    }

    /// Sets [`create_if_missing`](Self::create_if_missing).
    pub fn create_if_missing(mut self, create: bool) -> DatabaseOptions {
        self.create_if_missing = create;
        self
    }

    /// Sets [`lease_duration`](Self::lease_duration) (a zero duration is refused when an
    /// `s3://` location opens).
    pub fn lease_duration(mut self, lease: Duration) -> DatabaseOptions {
        self.lease_duration = lease;
        self
    }

    /// The defaults, overridden by those of these environment variables that are set: the
    /// command line and the Python package call it, so the variables work the same in both.
    ///
    /// | variable | sets |
    /// |---|---|
    /// | `CIPHERVEC_READ_CACHE_MB` | [`read_cache_bytes`](Self::read_cache_bytes), in MiB |
    /// | `CIPHERVEC_GRACE_SECONDS` | [`grace_period`](Self::grace_period) (may have a fraction) |
    /// | `CIPHERVEC_LEASE_SECONDS` | [`lease_duration`](Self::lease_duration) (may have a fraction) |
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a variable whose value is not a number of the
    /// unit (negative, not finite, or zero for the lease).
    pub fn from_env() -> Result<DatabaseOptions> {
        DatabaseOptions::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over the variables `var` returns.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<DatabaseOptions> {
        let mut options = DatabaseOptions::default();
        let seconds = |name: &str, zero_ok: bool| -> Result<Option<Duration>> {
            var(name)
                .map(|text| {
                    text.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && (*s > 0.0 || (zero_ok && *s == 0.0)))
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .ok_or_else(|| {
                            Error::invalid_argument(format!("{name} must be a number of seconds"))
                        })
                })
                .transpose()
        };
        if let Some(text) = var("CIPHERVEC_READ_CACHE_MB") {
            let mb = text.trim().parse::<u64>().map_err(|_| {
                Error::invalid_argument("CIPHERVEC_READ_CACHE_MB must be a number of MiB")
            })?;
            options.read_cache_bytes = mb.saturating_mul(1 << 20);
        }
        if let Some(grace) = seconds("CIPHERVEC_GRACE_SECONDS", true)? {
            options.grace_period = grace;
        }
        if let Some(lease) = seconds("CIPHERVEC_LEASE_SECONDS", false)? {
            options.lease_duration = lease;
        }
        Ok(options)
    }
}

/// What the storage shows of an index without its key ([`Database::storage_info`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageInfo {
    /// The format version its manifest states (in the clear, as every file's header).
    pub format_version: u32,
    /// How many files (objects) it has: the manifest, segments, the writer lock.
    pub files: usize,
    /// Their total size (an object store is asked each object's: on S3 a HEAD request each;
    /// a [`Store`] without [`Store::size`] of its own reads them whole).
    pub bytes: u64,
}

/// A place holding named indexes: a local directory (the default) or memory.
///
/// ```
/// use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};
/// let db = Database::in_memory();
/// let key = IndexKey::generate();
/// let index = db.create_index("docs", &key, IndexConfig::ivf_flat(2)).unwrap();
/// index.upsert([Item::new("a", vec![0.0, 1.0]), Item::new("b", vec![1.0, 0.0])]).unwrap();
/// let hits = index.query(&Query::new(vec![0.1, 0.9]).top_k(1)).unwrap();
/// assert_eq!(hits[0].id, "a");
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<DbInner>,
}

struct DbInner {
    backend: Box<dyn Backend>,
    options: DatabaseOptions,
    /// Indexes open through this database: one shared handle per name.
    open: Mutex<HashMap<String, Weak<Inner>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if missing) a database in a local directory; each index is a
    /// subdirectory.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created or read.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, DatabaseOptions::default())
    }

    /// As [`open`](Self::open), with options.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created or read, or (of kind `NotFound`)
    /// does not exist and [`DatabaseOptions::create_if_missing`] is false.
    pub fn open_with(path: impl AsRef<Path>, options: DatabaseOptions) -> Result<Database> {
        if !options.create_if_missing && !path.as_ref().is_dir() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no database at this location",
            )));
        }
        let backend = DirBackend::open(path.as_ref())?;
        Ok(Database::with_backend(Box::new(backend), options))
    }

    /// Opens a database at a location given as text: a plain path or a `file:` URL (a
    /// directory, as [`open`](Self::open)), `memory://` (as [`in_memory`](Self::in_memory)),
    /// or `s3://bucket/prefix` (with the cargo feature `s3`: an S3-compatible object store,
    /// credentials, region and endpoint from the standard `AWS_*` environment variables; see
    /// `docs/DEPLOYMENT.md`). Schemes are case-insensitive. A `file:` URL is read as RFC 8089
    /// and Python's `Path.as_uri()` write it: `file:///abs/path` or
    /// `file://localhost/abs/path`, with `%XX` escapes decoded (`file:///my%20db` is the
    /// folder `/my db`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty location, an unknown scheme (or `s3://` in a
    /// build without the feature), a `file:` URL without an absolute path or with a bad escape;
    /// [`Error::Io`] as [`open`](Self::open).
    pub fn open_url(url: &str) -> Result<Database> {
        Database::open_url_with(url, DatabaseOptions::default())
    }

    /// As [`open_url`](Self::open_url), with options.
    ///
    /// # Errors
    /// As [`open_url`](Self::open_url).
    pub fn open_url_with(url: &str, options: DatabaseOptions) -> Result<Database> {
        if let Some(dir) = Database::local_dir(url)? {
            return Database::open_with(dir, options);
        }
        if url.eq_ignore_ascii_case("memory:") {
            return Ok(Database::in_memory_with(options));
        }
        let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() => Ok(Database::in_memory_with(options)),
            "memory" => Err(Error::invalid_argument(
                "a memory:// location takes nothing after 'memory://'",
            )),
            "s3" => Database::open_s3(&format!("s3://{rest}"), options),
            _ => Err(Error::invalid_argument(format!(
                "no storage backend for '{scheme}://' in this build"
            ))),
        }
    }

    /// The local folder a location as [`open_url`](Self::open_url) takes it names: `Some`
    /// for a plain path or a `file:` URL (decoded), `None` for `memory://` and object
    /// stores.
    fn local_dir(url: &str) -> Result<Option<std::path::PathBuf>> {
        if url.is_empty() {
            return Err(Error::invalid_argument("empty location"));
        }
        match url.split_once("://") {
            None if url.eq_ignore_ascii_case("memory:") => Ok(None),
            None => Ok(Some(url.into())),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
                file_url_path(rest).map(Some)
            }
            Some(_) => Ok(None),
        }
    }

    /// A database whose indexes live in a user-provided [`Store`] (an object store, a test
    /// double...): the files of index `name` become its objects `name/<file>`, and the
    /// writer lock the object `name/LOCK` (a lease with expiry when the store has versions,
    /// see [`Store::get_versioned`]; else [`Store::lock`]). Segments are read by range
    /// ([`Store::get_ranges`]) through a read cache of their encrypted bytes, shared by the
    /// database's indexes ([`DatabaseOptions::read_cache_bytes`]): an open fetches the item
    /// table, a query what it reads and the cache lacks (see `docs/DEPLOYMENT.md`). Segments
    /// a commit supersedes stay [`DatabaseOptions::grace_period`] for readers of older
    /// states.
    pub fn with_store(store: impl Store + 'static) -> Database {
        Database::with_store_options(store, DatabaseOptions::default())
    }

    /// [`Database::with_store`] with options.
    pub fn with_store_options(store: impl Store + 'static, options: DatabaseOptions) -> Database {
        let backend = StoreBackend::new(
            Arc::new(store),
            options.read_cache_bytes,
            options.grace_period,
        );
        Database::with_backend(Box::new(backend), options)
    }

    #[cfg(feature = "s3")]
    fn open_s3(url: &str, options: DatabaseOptions) -> Result<Database> {
        if options.lease_duration.is_zero() {
            return Err(Error::invalid_argument(
                "a writer lease must last longer than zero",
            ));
        }
        let store =
            crate::storage::S3Store::open(url, options.lease_duration).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::InvalidInput => Error::invalid_argument(e.to_string()),
                    _ => Error::from(e),
                }
            })?;
        Ok(Database::with_store_options(store, options))
    }

    #[cfg(not(feature = "s3"))]
    fn open_s3(_url: &str, _options: DatabaseOptions) -> Result<Database> {
        Err(Error::invalid_argument(
            "s3:// locations need ciphervec built with the cargo feature \"s3\"",
        ))
    }

    /// A database in process memory; nothing touches disk.
    pub fn in_memory() -> Database {
        Database::in_memory_with(DatabaseOptions::default())
    }

    /// As [`in_memory`](Self::in_memory), with options.
    pub fn in_memory_with(options: DatabaseOptions) -> Database {
        Database::with_backend(Box::new(MemoryBackend::default()), options)
    }

    #[cfg(feature = "internals")]
    /// A database in a directory whose file-changing calls go through `fs` (for tests that
    /// inject faults; see `internals`).
    pub(crate) fn open_with_fs(
        path: &Path,
        fs: Arc<dyn crate::storage::fs::FileSystem>,
        options: DatabaseOptions,
    ) -> Result<Database> {
        let backend = DirBackend::with_fs(path, fs)?;
        Ok(Database::with_backend(Box::new(backend), options))
    }

    fn with_backend(backend: Box<dyn Backend>, options: DatabaseOptions) -> Database {
        // A process that forks after this is known as the parent (`index::parallel`).
        crate::engine::parallel::note_process();
        Database {
            inner: Arc::new(DbInner {
                backend,
                options,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn cache_budget(&self) -> usize {
        self.inner.options.cache_budget.unwrap_or(usize::MAX)
    }

    fn open_handles(&self) -> MutexGuard<'_, HashMap<String, Weak<Inner>>> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store(&self, name: &str) -> Result<Option<Arc<dyn IndexFiles>>> {
        validate::index_name(name)?;
        let Some(store) = self.inner.backend.open(name, false)? else {
            return Ok(None);
        };
        let has_manifest = store.list()?.iter().any(|f| f == MANIFEST_FILE);
        Ok(has_manifest.then_some(store))
    }

    /// Creates a new, empty index protected by `key`.
    ///
    /// # Errors
    /// [`Error::IndexExists`], [`Error::InvalidArgument`] (bad name, dimension 0 or above
    /// 65,536), [`Error::Locked`], [`Error::Io`].
    pub fn create_index(
        &self,
        name: &str,
        key: &IndexKey,
        config: IndexConfig,
    ) -> Result<EncryptedIndex> {
        validate::index_name(name)?;
        if config.dimension() == 0 || config.dimension() > validate::MAX_DIMENSION {
            return Err(Error::invalid_argument(format!(
                "dimension must be between 1 and {}",
                validate::MAX_DIMENSION
            )));
        }
        config.check().map_err(Error::invalid_argument)?;
        let mut open = self.open_handles();
        if self.store(name)?.is_some() {
            return Err(Error::IndexExists);
        }
        let store = self
            .inner
            .backend
            .open(name, true)?
            .ok_or(Error::IndexNotFound)?;
        // The lock first, then the check: of several creators (threads, processes, hosts)
        // one holds the lock while the others get `Locked`, and whoever takes it after the
        // winner finds its manifest (`IndexExists`). Only then, under the lock and with no
        // manifest (so no live index: an index exists from its first manifest on), are the
        // files of a deletion or creation that crashed removed.
        let lock = acquire_lock(&*store)?;
        let files = store.list()?;
        if files.iter().any(|f| f == MANIFEST_FILE) {
            return Err(Error::IndexExists);
        }
        for f in files {
            if f != "LOCK" {
                store.remove(&f)?;
            }
        }
        let (header, keys) = persist::new_header(key)?;
        let mut body = ManifestBody {
            epoch: 0,
            config: config.to_stored(),
            next_segment: 1,
            key_generation: keys.next_generation(),
            segments: Vec::new(),
            trained: None,
            list_epoch: 0,
            name: name.to_owned(),
            history: Default::default(),
            trained_at_items: 0,
        };
        // The first commit of the history: epoch 1, extending nothing.
        persist::commit_manifest_only(&mut body, 1, &header);
        persist::write_first_manifest(&*store, &header, &keys, &body)?;
        let committed = Committed {
            keys: Arc::new(keys),
            header,
            body,
        };
        let empty = Residency::for_budget(
            config.is_quantized(),
            0,
            config.dimension(),
            self.cache_budget(),
        );
        let state = State::new(
            config.dimension(),
            committed,
            (None, None),
            empty,
            self.cache_budget(),
        );
        let index = self.handle(name, store, state, self.inner.options.auto_compact, lock);
        open.insert(name.to_owned(), index.downgrade());
        Ok(index)
    }

    /// Loads the committed state of index `name` under `key`: the manifest (its file's
    /// bytes `manifest`), rolled forward over every newer segment the storage proves (see
    /// `recovery`), then the segments. A writer (`write`) commits a rolled-forward manifest
    /// and then removes leftovers; a reader only serves the rolled-forward state. Nothing
    /// is removed when the open fails.
    fn load(
        &self,
        store: &dyn IndexFiles,
        (manifest, opener): (&[u8], Opener<'_>),
        name: &str,
        write: bool,
    ) -> Result<State> {
        let (header, keys, body) = match opener {
            Opener::Owner(key) => persist::manifest_of(manifest, key, name)?,
            Opener::User(user, key) => persist::manifest_as_user(manifest, (user, key), name)?,
        };
        let key = match opener {
            Opener::Owner(key) => Some(key),
            Opener::User(..) => None,
        };
        let recovery = recovery::roll_forward(store, (&keys, &header), body, write)?;
        let body = recovery.body;
        // A rolled-forward rotation brings its header (the new wrapped data key); the keys
        // start past every generation a rolled-forward writer may have used.
        let header = recovery.rekeyed.map_or(header, |(h, _)| h);
        let keys = if recovery.rolled > 0 {
            persist::keys_like(&keys, &header, key, body.key_generation)?
        } else {
            keys
        };
        let shape = loader::Shape::of(&IndexConfig::from_stored(&body.config));
        let keys = Arc::new(keys);
        let state = loader::load_state(
            store,
            (keys.clone(), header.clone()),
            shape,
            body,
            self.cache_budget(),
        )?;
        if write {
            if recovery.rolled > 0 {
                persist::write_manifest(store, &header, &keys, state.body())?;
            }
            recovery::remove_files(store, &recovery.leftovers, state.body().next_segment)?;
        }
        Ok(state)
    }

    /// A handle on a loaded index.
    fn handle(
        &self,
        name: &str,
        store: Arc<dyn IndexFiles>,
        state: State,
        auto_compact: Option<f64>,
        lock: crate::storage::WriterLock,
    ) -> EncryptedIndex {
        let budget = self.cache_budget();
        EncryptedIndex::from_parts(name.to_owned(), store, state, budget, auto_compact, lock)
    }

    /// Opens an existing index with its key. Within one `Database`, opening an index that is
    /// already open returns another handle on the same index.
    ///
    /// # Errors
    /// [`Error::IndexNotFound`], [`Error::WrongKey`], [`Error::Locked`] (another process or
    /// another `Database` holds it), [`Error::Corrupted`], [`Error::Io`].
    pub fn open_index(&self, name: &str, key: &IndexKey) -> Result<EncryptedIndex> {
        validate::index_name(name)?;
        let mut open = self.open_handles();
        if let Some(index) = open.get(name).and_then(EncryptedIndex::upgrade) {
            let h = index.header();
            if !crate::engine::binding::params(&h).check_key(key, &h.key_check) {
                return Err(Error::WrongKey);
            }
            return Ok(index);
        }
        let store = self.store(name)?.ok_or(Error::IndexNotFound)?;
        // The key is checked first, so a wrong key is `WrongKey` even while another process
        // holds the lock; the manifest is then read again under the lock, since that writer
        // may have committed in between.
        persist::check_key(&*store, key, name)?;
        let lock = acquire_lock(&*store)?;
        let manifest = persist::read_manifest_file(&*store)?;
        let state = self.load(&*store, (&manifest, Opener::Owner(key)), name, true)?;
        let index = self.handle(name, store, state, self.inner.options.auto_compact, lock);
        // An index of an older format is upgraded before any write: one rewrite under a
        // fresh data key in this format (see `docs/FORMAT.md`, Versions).
        index.upgrade_format()?;
        open.insert(name.to_owned(), index.downgrade());
        Ok(index)
    }

    /// Opens an index for reading only, without taking the writer lock, so that other
    /// processes can read an index one process writes. The handle sees the state committed
    /// when it was opened; writes through it return [`Error::ReadOnly`].
    ///
    /// # Errors
    /// As [`open_index`](Self::open_index), except [`Error::Locked`].
    pub fn open_index_read_only(&self, name: &str, key: &IndexKey) -> Result<EncryptedIndex> {
        validate::index_name(name)?;
        let store = self.store(name)?.ok_or(Error::IndexNotFound)?;
        // A writer may replace segments while we read: start over on its new manifest.
        let state = recovery::retry_racing_writer(&*store, |manifest| {
            self.load(&*store, (manifest, Opener::Owner(key)), name, false)
        })?;
        let index = self.handle(name, store, state, None, Box::new(()));
        Ok(index.into_read_only())
    }

    /// Opens index `name` as `user`, with the user key `user_key` that
    /// [`EncryptedIndex::grant`] granted it: a [`Access::Read`](crate::Access::Read) grant
    /// gives a handle that queries, gets and refreshes (opened like
    /// [`open_index_read_only`](Self::open_index_read_only): no writer lock) and refuses
    /// every write with [`Error::PermissionDenied`] before any I/O; a `ReadWrite` or `Admin`
    /// grant gives a writer (with the writer lock, as [`open_index`](Self::open_index)), whose
    /// commits are signed with the index's signing key. Handles opened as a user are not
    /// shared with the owner's (see `open_index`): a writer open while another handle of
    /// this `Database` writes the index is [`Error::Locked`].
    ///
    /// # Errors
    /// [`Error::WrongKey`] when the index holds no grant for this user and key (never
    /// granted, revoked, or another key; which of these is not told);
    /// [`Error::InvalidArgument`] for an empty or overlong user name; otherwise as
    /// `open_index`.
    pub fn open_index_as(
        &self,
        name: &str,
        user: &str,
        user_key: &IndexKey,
    ) -> Result<EncryptedIndex> {
        validate::index_name(name)?;
        crate::engine::access::check_user(user)?;
        let store = self.store(name)?.ok_or(Error::IndexNotFound)?;
        let manifest = persist::read_manifest_file(&*store)?;
        let (_, keys, _) = persist::manifest_as_user(&manifest, (user, user_key), name)?;
        let opener = Opener::User(user, user_key);
        if crate::engine::access::require(&keys, crate::engine::access::Need::Write).is_err() {
            let state = recovery::retry_racing_writer(&*store, |manifest| {
                self.load(&*store, (manifest, opener), name, false)
            })?;
            let index = self.handle(name, store, state, None, Box::new(()));
            return Ok(index.into_read_only());
        }
        let lock = acquire_lock(&*store)?;
        let manifest = persist::read_manifest_file(&*store)?;
        let state = self.load(&*store, (&manifest, opener), name, true)?;
        Ok(self.handle(name, store, state, self.inner.options.auto_compact, lock))
    }

    /// What the storage shows of index `name` to anyone, without its key: the format
    /// version its manifest states, its files and their bytes. For tools (`ciphervec
    /// info`) that describe a database without reading its files themselves.
    ///
    /// ```
    /// use ciphervec::{Database, IndexConfig, IndexKey};
    /// let db = Database::in_memory();
    /// db.create_index("docs", &IndexKey::generate(), IndexConfig::ivf_flat(4))?;
    /// let info = db.storage_info("docs")?;
    /// assert!(info.format_version >= 7 && info.files >= 1);
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::IndexNotFound`], [`Error::Corrupted`] (a manifest without the magic bytes),
    /// [`Error::Io`].
    pub fn storage_info(&self, name: &str) -> Result<StorageInfo> {
        let store = self.store(name)?.ok_or(Error::IndexNotFound)?;
        let manifest = store.read(MANIFEST_FILE)?;
        let head = manifest.read(0, manifest.len().min(16))?;
        let format_version = u32::from(crate::format::manifest::stated_version(&head)?);
        let files = store.list()?;
        let mut bytes = 0u64;
        let mut count = 0;
        for f in &files {
            match store.file_len(f) {
                Ok(len) => (bytes, count) = (bytes + len, count + 1),
                // Removed since the listing (a commit's superseded segment): not a file now.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(StorageInfo {
            format_version,
            files: count,
            bytes,
        })
    }

    /// Names of every index, sorted.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn list_indexes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.inner.backend.list()? {
            if validate::index_name(&name).is_ok() && self.store(&name)?.is_some() {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Rotates the index key: the index's data key is re-wrapped from `old` to `new` in one
    /// atomic manifest replacement; no data is rewritten. Afterwards `old` gets
    /// [`Error::WrongKey`] and `new` opens the index; a crash leaves exactly one of them
    /// valid. Handles open in this process keep working.
    ///
    /// # Errors
    /// [`Error::IndexNotFound`], [`Error::WrongKey`] (`old` does not open it),
    /// [`Error::Locked`] (open for writing in another process), [`Error::Io`].
    pub fn rotate_index_key(&self, name: &str, old: &IndexKey, new: &IndexKey) -> Result<()> {
        let index = {
            let open = self.open_handles();
            open.get(name).and_then(EncryptedIndex::upgrade)
        };
        // Through a writer handle (opened here if needed, which upgrades an index of an
        // older format first), so the re-wrap is serialized with its writes.
        match index {
            Some(index) => index.rewrap_index_key(old, new),
            None => self.open_index(name, old)?.rewrap_index_key(old, new),
        }
    }

    /// Rotates both keys after a compromise: a new index key (`old` -> `new`) and a fresh
    /// data key under which every record is re-encrypted, in one crash-safe operation (one
    /// rewrite, then one manifest replacement: a crash leaves exactly one of `old` and `new`
    /// valid, with everything under the matching data key). Unlike
    /// [`rotate_index_key`](Self::rotate_index_key), old copies of the `MANIFEST` (backups)
    /// no longer open the current data: the leaked data key protects nothing written after.
    /// Handles open in this process keep working.
    ///
    /// # Errors
    /// [`Error::IndexNotFound`], [`Error::WrongKey`] (`old` does not open it),
    /// [`Error::Locked`] (open for writing in another process), [`Error::Corrupted`],
    /// [`Error::Io`].
    pub fn rotate_keys(&self, name: &str, old: &IndexKey, new: &IndexKey) -> Result<()> {
        let index = {
            let open = self.open_handles();
            open.get(name).and_then(EncryptedIndex::upgrade)
        };
        match index {
            Some(index) => index.rotate_keys(old, new),
            None => self.open_index(name, old)?.rotate_keys(old, new),
        }
    }

    /// Opens an index with the key a [`KeyProvider`](crate::KeyProvider) supplies.
    ///
    /// # Errors
    /// The provider's error, or any error of [`open_index`](Self::open_index).
    pub fn open_index_with(
        &self,
        name: &str,
        provider: &dyn crate::provider::KeyProvider,
    ) -> Result<EncryptedIndex> {
        let key = provider.index_key()?;
        self.open_index(name, &key)
    }

    /// Deletes an index and all its files. The key is required: a wrong key deletes nothing.
    /// A write through a handle on the index still open in this process finishes first;
    /// later writes through it are [`Error::IndexNotFound`] (its queries go on answering from
    /// what it holds).
    ///
    /// # Errors
    /// [`Error::IndexNotFound`], [`Error::WrongKey`], [`Error::Locked`] (open in another
    /// process), [`Error::Io`].
    pub fn delete_index(&self, name: &str, key: &IndexKey) -> Result<()> {
        let mut open = self.open_handles();
        let store = self.store(name)?.ok_or(Error::IndexNotFound)?;
        persist::check_key(&*store, key, name)?;
        let open_here = open.get(name).and_then(EncryptedIndex::upgrade);
        let _lock = match &open_here {
            Some(_) => None,
            None => Some(acquire_lock(&*store)?),
        };
        let _writes_held = open_here.as_ref().map(EncryptedIndex::hold_writes);
        self.inner.backend.remove(name)?;
        open.remove(name);
        if let Some(handle) = &open_here {
            handle.mark_deleted();
        }
        Ok(())
    }
}

/// How long a lock held by someone else is waited for before `Locked`. A lock can be held for
/// a moment by a child process forked (but not yet exec'd) while the lock file was open, even
/// after its owner released it.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(100);

/// Who opens an index: the index key's holder, or a user with its user key.
#[derive(Clone, Copy)]
enum Opener<'a> {
    Owner(&'a IndexKey),
    User(&'a str, &'a IndexKey),
}

/// Takes the index's writer lock, waiting up to [`LOCK_PATIENCE`].
fn acquire_lock(store: &dyn IndexFiles) -> Result<crate::storage::WriterLock> {
    let start = std::time::Instant::now();
    loop {
        if let Some(lock) = store.try_lock()? {
            return Ok(lock);
        }
        if start.elapsed() >= LOCK_PATIENCE {
            return Err(Error::Locked);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The local path of a `file:` URL, given what follows `file://`: an absolute path, after an
/// empty host or `localhost` (RFC 8089), with `%XX` escapes decoded. The decoded path must be
/// UTF-8, as every location given as text is.
fn file_url_path(rest: &str) -> Result<std::path::PathBuf> {
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(Error::invalid_argument(
            "a file:// location needs an absolute path (file:///abs/path)",
        ));
    }
    let bytes = crate::storage::percent_decode(path)
        .ok_or_else(|| Error::invalid_argument("a bad %-escape in a file:// location"))?;
    String::from_utf8(bytes)
        .map(Into::into)
        .map_err(|_| Error::invalid_argument("a file:// location that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented variables set the options they name; an unset one keeps the default;
    /// a bad value is refused naming the variable (it used to be ignored in silence).
    #[test]
    fn options_from_environment_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            DatabaseOptions::from_vars(vars(&[])).unwrap(),
            DatabaseOptions::default()
        );
        let set = DatabaseOptions::from_vars(vars(&[
            ("CIPHERVEC_READ_CACHE_MB", " 3 "),
            ("CIPHERVEC_GRACE_SECONDS", "0"),
            ("CIPHERVEC_LEASE_SECONDS", "2.5"),
        ]))
        .unwrap();
        assert_eq!(
            set,
            DatabaseOptions::default()
                .read_cache_bytes(3 << 20)
                .grace_period(Duration::ZERO)
                .lease_duration(Duration::from_millis(2500))
        );
        for (name, value) in [
            ("CIPHERVEC_READ_CACHE_MB", "-1"),
            ("CIPHERVEC_GRACE_SECONDS", "soon"),
            ("CIPHERVEC_GRACE_SECONDS", "inf"),
            ("CIPHERVEC_LEASE_SECONDS", "0"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(name, value)]));
            match DatabaseOptions::from_vars(vars(pairs)) {
                Err(Error::InvalidArgument { reason }) => assert!(reason.contains(name)),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
