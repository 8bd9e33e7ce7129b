//! The public storage seam: [`Store`], a flat namespace of named objects that a user can
//! implement (an object store, a database table, a test double), and the adapter that lays
//! the indexes of a `Database` out in it.
//!
//! Layout: the files of index `name` are the objects `name/<file>` (`name/MANIFEST`,
//! `name/seg-....cvs`), the same names the directory store uses for paths; the writer lock
//! is the object `name/LOCK`. Every object but the lock holds ciphertext and clear headers
//! only (`docs/FORMAT.md`), so a `Store` never sees plaintext.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use super::{Backend, Blob, IndexFiles, WriterLock};

/// A store of named objects: the storage a `Database` made by
/// `Database::with_store` keeps its indexes in.
///
/// Object names are `/`-separated paths of printable ASCII (for example `docs/MANIFEST`).
/// The contract, which `tests/api/store.rs` checks for the stores of this crate and for a
/// user-written one:
/// - `get` of a missing object is an error of kind [`io::ErrorKind::NotFound`];
/// - `put_new` creates an object only if the name is free ([`io::ErrorKind::AlreadyExists`]
///   otherwise), and is durable when it returns: segments are written once and never
///   changed, so two writers can never both create the same one;
/// - `put` replaces (or creates) an object atomically: a concurrent or later `get` sees the
///   old bytes or the new ones, never a mix (the manifest is replaced this way);
/// - `delete` of a missing object succeeds; `list(prefix)` names every object whose name
///   starts with `prefix`, in any order;
/// - errors are plain [`io::Error`]s; the engine retries nothing itself (a store retries
///   within its own bound) and reports them as `Error::Io`, or as `Error::Unavailable` for
///   the kinds that mean no answer (`NotConnected`, `TimedOut`, `ConnectionRefused`,
///   `ConnectionReset`, `ConnectionAborted`), with the index as it was.
pub trait Store: Send + Sync {
    /// The whole object.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if there is no such object; any I/O error.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;

    /// Bytes `range` of an object (the default reads it whole and slices). A range past the
    /// end is an error of kind [`io::ErrorKind::UnexpectedEof`].
    ///
    /// # Errors
    /// As [`Store::get`]; [`io::ErrorKind::UnexpectedEof`] for a range past the end.
    fn get_range(&self, name: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        let all = self.get(name)?;
        let (start, end) = (range.start as usize, range.end as usize);
        all.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    /// Creates an object that must not exist yet; durable when it returns.
    ///
    /// # Errors
    /// [`io::ErrorKind::AlreadyExists`] if the name is taken; any I/O error.
    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()>;

    /// Replaces (or creates) an object atomically; durable when it returns.
    ///
    /// # Errors
    /// Any I/O error (the old object then stays whole).
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()>;

    /// Deletes an object; a missing one is not an error.
    ///
    /// # Errors
    /// Any I/O error.
    fn delete(&self, name: &str) -> io::Result<()>;

    /// The names of every object whose name starts with `prefix`.
    ///
    /// # Errors
    /// Any I/O error.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;

    /// Takes the writer lock `name` of one index: `Ok(false)` if another writer holds it.
    /// [`Store::unlock`] releases it (when the writer handle is dropped). The default
    /// creates the object `name` with [`Store::put_new`]: a writer that dies without
    /// unlocking leaves the lock taken until that object is deleted by hand, so a store
    /// with real locks or leases should override both.
    ///
    /// # Errors
    /// Any I/O error.
    fn lock(&self, name: &str) -> io::Result<bool> {
        match self.put_new(name, b"ciphervec writer lock\n") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases a lock [`Store::lock`] took (the default deletes the lock object).
    ///
    /// # Errors
    /// Any I/O error.
    fn unlock(&self, name: &str) -> io::Result<()> {
        self.delete(name)
    }
}

/// A lock taken through [`Store::lock`], released on drop.
struct StoreLock {
    store: Arc<dyn Store>,
    name: String,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // A failed unlock leaves the lock taken: the next writer gets `Locked`, which is
        // safe, and the lock object can be deleted by hand.
        let _ = self.store.unlock(&self.name);
    }
}

/// The indexes of a database laid out in a user's [`Store`].
pub(crate) struct StoreBackend {
    store: Arc<dyn Store>,
}

impl StoreBackend {
    pub(crate) fn new(store: Arc<dyn Store>) -> StoreBackend {
        StoreBackend { store }
    }
}

/// The MANIFEST object marks an index as existing (a folder in the directory store).
const MARKER: &str = "MANIFEST";

impl Backend for StoreBackend {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .store
            .list("")?
            .into_iter()
            .filter_map(|n| {
                let (index, file) = n.split_once('/')?;
                (file == MARKER).then(|| index.to_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Option<Arc<dyn IndexFiles>>> {
        let prefix = format!("{name}/");
        if !create && self.store.list(&prefix)?.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(PrefixFiles {
            store: self.store.clone(),
            prefix,
        })))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        for object in self.store.list(&format!("{name}/"))? {
            self.store.delete(&object)?;
        }
        Ok(())
    }
}

/// The files of one index: the objects under `prefix`.
struct PrefixFiles {
    store: Arc<dyn Store>,
    prefix: String,
}

impl IndexFiles for PrefixFiles {
    fn read(&self, file: &str) -> io::Result<Blob> {
        let bytes = self.store.get(&format!("{}{file}", self.prefix))?;
        Ok(Blob::Shared(bytes.into()))
    }

    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.store.put_new(&format!("{}{file}", self.prefix), data)
    }

    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.store.put(&format!("{}{file}", self.prefix), data)
    }

    fn remove(&self, file: &str) -> io::Result<()> {
        self.store.delete(&format!("{}{file}", self.prefix))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self
            .store
            .list(&self.prefix)?
            .into_iter()
            .filter_map(|n| n.strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|n| !n.contains('/') && n != "LOCK")
            .collect())
    }

    fn try_lock(&self) -> io::Result<Option<WriterLock>> {
        let name = format!("{}LOCK", self.prefix);
        if !self.store.lock(&name)? {
            return Ok(None);
        }
        Ok(Some(Box::new(StoreLock {
            store: self.store.clone(),
            name,
        })))
    }
}

/// A [`Store`] in process memory: the reference implementation of the contract, and a base
/// for test doubles (wrap it to inject failures or delays).
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: std::sync::Mutex<std::collections::BTreeMap<String, Arc<[u8]>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Arc<[u8]>>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.objects()
            .get(name)
            .map(|b| b.to_vec())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut objects = self.objects();
        if objects.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        objects.insert(name.to_owned(), data.into());
        Ok(())
    }

    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.objects().insert(name.to_owned(), data.into());
        Ok(())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        self.objects().remove(name);
        Ok(())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self
            .objects()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// A shared store is a store (so that several databases, or a test, can hold one).
impl<S: Store + ?Sized> Store for Arc<S> {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        (**self).get(name)
    }
    fn get_range(&self, name: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        (**self).get_range(name, range)
    }
    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        (**self).put_new(name, data)
    }
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        (**self).put(name, data)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        (**self).delete(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        (**self).list(prefix)
    }
    fn lock(&self, name: &str) -> io::Result<bool> {
        (**self).lock(name)
    }
    fn unlock(&self, name: &str) -> io::Result<()> {
        (**self).unlock(name)
    }
}
