//! The public storage seam: [`Store`], a flat namespace of named objects that a user can
//! implement (an object store, a database table, a test double). The adapter that lays the
//! indexes of a `Database` out in one is `object.rs`; the ranged reads through a chunk cache
//! are `remote.rs`. Both name this module; it names neither.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

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

    /// Bytes of several `ranges` of one object, in order (the default asks for each in
    /// turn; a remote store should ask concurrently: an open and a query ask for many).
    ///
    /// # Errors
    /// As [`Store::get_range`].
    fn get_ranges(&self, name: &str, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        ranges
            .iter()
            .map(|r| self.get_range(name, r.clone()))
            .collect()
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
    /// [`Store::unlock`] releases it (when the writer handle is dropped). Used only by a
    /// store without versions (a store whose [`Store::get_versioned`] gives versions gets
    /// writer leases with expiry instead). The default creates the object `name` with
    /// [`Store::put_new`]: a writer that dies without unlocking leaves the lock taken until
    /// that object is deleted by hand, so a store with real locks should override both.
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

    /// The whole object and its version: an opaque tag (an HTTP ETag, a counter) that
    /// changes whenever the object does, for [`Store::put_if_version`]. The default reports
    /// no version (`None`); a store that gives versions gets writer leases with expiry and
    /// conditional manifest replacement (see the module documentation).
    ///
    /// # Errors
    /// As [`Store::get`].
    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        Ok((self.get(name)?, None))
    }

    /// The length of an object, without its bytes: an open reads an object that no
    /// manifest names (a segment it may roll forward) by range after asking its length. The
    /// default reads the object whole; a remote store should override it with a metadata
    /// request (S3's HEAD).
    ///
    /// # Errors
    /// As [`Store::get`].
    fn size(&self, name: &str) -> io::Result<u64> {
        self.get(name).map(|bytes| bytes.len() as u64)
    }

    /// As [`Store::get_versioned`], but an object longer than `max` bytes is refused with
    /// [`io::ErrorKind::FileTooLarge`] (the manifest: a planted multi-gigabyte one must not
    /// be read into memory). The default reads and then checks; a remote store should check
    /// the length its answer announces before it reads the body.
    ///
    /// # Errors
    /// As [`Store::get`]; [`io::ErrorKind::FileTooLarge`].
    fn get_versioned_at_most(&self, name: &str, max: u64) -> io::Result<(Vec<u8>, Option<String>)> {
        let got = self.get_versioned(name)?;
        if got.0.len() as u64 > max {
            return Err(too_large());
        }
        Ok(got)
    }

    /// Replaces an object only while its version is still `version` (compare-and-swap),
    /// atomically as [`Store::put`]; returns the new version, or `Ok(None)` when the object
    /// changed or disappeared meanwhile (nothing written). Needed only by a store whose
    /// [`Store::get_versioned`] gives versions; the default is [`io::ErrorKind::Unsupported`].
    ///
    /// # Errors
    /// Any I/O error.
    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        let _ = (name, data, version);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// How long a writer lease lasts unless renewed (default 30 s). A writer renews it
    /// before a write once half of it has passed; clocks of writer machines should agree to
    /// well within it.
    fn lease_duration(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// The error for an object longer than a read allows.
pub(super) fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        "object larger than any index writes",
    )
}

/// A shared store is a store (so that several databases, or a test, can hold one).
impl<S: Store + ?Sized> Store for Arc<S> {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        (**self).get(name)
    }
    fn get_range(&self, name: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        (**self).get_range(name, range)
    }
    fn get_ranges(&self, name: &str, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        (**self).get_ranges(name, ranges)
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
    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        (**self).get_versioned(name)
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        (**self).size(name)
    }
    fn get_versioned_at_most(&self, name: &str, max: u64) -> io::Result<(Vec<u8>, Option<String>)> {
        (**self).get_versioned_at_most(name, max)
    }
    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        (**self).put_if_version(name, data, version)
    }
    fn lease_duration(&self) -> Duration {
        (**self).lease_duration()
    }
}
