//! The adapter that lays the indexes of a `Database` out in a [`Store`] (the public seam,
//! `store.rs`), and [`MemoryStore`], the store's reference implementation.
//!
//! Layout: the files of index `name` are the objects `name/<file>` (`name/MANIFEST`,
//! `name/seg-....cvs`), the same names the directory store uses for paths; the writer lock
//! is the object `name/LOCK`. Every object but the lock holds ciphertext and clear headers
//! only (`docs/FORMAT.md`), so a `Store` never sees plaintext.
//!
//! Writers, when the store has versions ([`Store::get_versioned`] and
//! [`Store::put_if_version`], as S3 and [`MemoryStore`] do):
//! - the lock is a *lease*: `name/LOCK` holds a random owner and an expiry time. A writer
//!   creates it (create-only), renews it before its writes once half of its
//!   [`Store::lease_duration`] has passed, and deletes it when the handle is dropped. A lease
//!   past its expiry (its writer died or stalled) is taken over by replacing it
//!   conditionally on its version, so of two takers one wins; the stalled writer's next
//!   renewal then fails and its write is refused with `Error::Locked`.
//! - the manifest is replaced conditionally on the version this handle read at open (or last
//!   wrote): a writer whose lease was taken over cannot overwrite a newer manifest, even if
//!   it stalled between its renewal and its write. Segments are create-only, so it cannot
//!   overwrite a newer segment either: nothing acknowledged is lost.
//!
//! Without versions, the lock is the plain create-only object of [`Store::lock`].

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "internals")]
use super::remote::ReadStats;
use super::remote::{ChunkCache, RemoteObject};
use super::store::{Store, too_large};
use super::{Backend, Blob, IndexFiles, WriterLock};

/// A writer lease on a store with versions: the `LOCK` object this writer created or took
/// over, and its version.
struct Lease {
    store: Arc<dyn Store>,
    name: String,
    owner: String,
    state: Mutex<LeaseState>,
    /// The process that took it: a child made by `fork` inherits the value, not the lease,
    /// and must not release its parent's.
    process: u32,
}

struct LeaseState {
    /// The version of the lease object as this writer last wrote it.
    version: String,
    /// When this writer last wrote it.
    renewed: SystemTime,
}

/// The first line of a lease object.
const LEASE_MAGIC: &str = "ciphervec writer lease";

impl Lease {
    /// The lease object's text: owner and expiry (milliseconds since the Unix epoch).
    fn body(owner: &str, now: SystemTime, duration: Duration) -> Vec<u8> {
        let expires = (now + duration)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{LEASE_MAGIC}\nowner {owner}\nexpires_ms {expires}\n").into_bytes()
    }

    /// The expiry a lease object states, if it is a lease (the plain lock object of
    /// [`Store::lock`] never expires).
    fn expiry(body: &[u8]) -> Option<SystemTime> {
        let text = std::str::from_utf8(body).ok()?;
        let mut lines = text.lines();
        if lines.next()? != LEASE_MAGIC {
            return None;
        }
        let ms: u64 = lines
            .find_map(|l| l.strip_prefix("expires_ms "))?
            .parse()
            .ok()?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Takes the lease `name`: creates it, or takes over one past its expiry. `Ok(None)`
    /// when another writer holds it (or won the takeover); an `Unsupported` error when the
    /// store has no versions.
    fn take(store: &Arc<dyn Store>, name: &str) -> io::Result<Option<Lease>> {
        // Tells this writer's lease from another's (unique, not secret).
        let owner = format!("{:032x}", rand::random::<u128>());
        let now = SystemTime::now();
        let body = Lease::body(&owner, now, store.lease_duration());
        let version = match store.put_new(name, &body) {
            Ok(()) => match store.get_versioned(name)? {
                (stored, Some(v)) if stored == body => Some(v),
                // Taken over already (impossible within a lease's duration), or no versions.
                (_, Some(_)) => return Ok(None),
                // No versions: this store takes its plain lock instead.
                (_, None) => {
                    store.delete(name)?;
                    return Err(io::Error::from(io::ErrorKind::Unsupported));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let (held, version) = match store.get_versioned(name) {
                    Ok(found) => found,
                    // Released meanwhile: the next attempt may take it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let Some(version) = version else {
                    return Err(io::Error::from(io::ErrorKind::Unsupported));
                };
                match Lease::expiry(&held) {
                    Some(expiry) if expiry < now => store.put_if_version(name, &body, &version)?,
                    _ => return Ok(None),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(version.map(|version| Lease {
            store: store.clone(),
            name: name.to_owned(),
            owner,
            state: Mutex::new(LeaseState {
                version,
                renewed: now,
            }),
            process: std::process::id(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renews the lease when half of its duration has passed since it was last written;
    /// an error of kind [`io::ErrorKind::ResourceBusy`] (`Error::Locked`) when another
    /// writer took it over.
    fn renew_if_due(&self) -> io::Result<()> {
        let duration = self.store.lease_duration();
        let mut state = self.state();
        let now = SystemTime::now();
        if now.duration_since(state.renewed).unwrap_or(Duration::ZERO) < duration / 2 {
            return Ok(());
        }
        let body = Lease::body(&self.owner, now, duration);
        match self
            .store
            .put_if_version(&self.name, &body, &state.version)?
        {
            Some(version) => {
                *state = LeaseState {
                    version,
                    renewed: now,
                };
                Ok(())
            }
            None => Err(lease_lost()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if std::process::id() != self.process {
            return;
        }
        let state = self.state();
        let age = SystemTime::now()
            .duration_since(state.renewed)
            .unwrap_or(Duration::MAX);
        if age < self.store.lease_duration() / 2 {
            // Surely still this writer's (nobody may take it before it expires): deleted.
            let current = self.store.get_versioned(&self.name);
            if current.is_ok_and(|(_, v)| v.as_deref() == Some(state.version.as_str())) {
                let _ = self.store.delete(&self.name);
            }
        } else {
            // It may have expired and been taken over: released by a conditional replace
            // that marks it expired, which changes nothing if another writer holds it.
            let released = Lease::body(&self.owner, UNIX_EPOCH, Duration::ZERO);
            let _ = self
                .store
                .put_if_version(&self.name, &released, &state.version);
        }
    }
}

/// The error of a writer whose lease another writer took over.
fn lease_lost() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "the writer lease was taken over by another writer",
    )
}

/// A lock taken through [`Store::lock`], released on drop.
struct StoreLock {
    store: Arc<dyn Store>,
    name: String,
    /// The process that took it (see `Lease::process`).
    process: u32,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if std::process::id() != self.process {
            return;
        }
        // A failed unlock leaves the lock taken: the next writer gets `Locked`, which is
        // safe, and the lock object can be deleted by hand.
        let _ = self.store.unlock(&self.name);
    }
}

/// The indexes of a database laid out in a user's [`Store`].
pub(crate) struct StoreBackend {
    store: Arc<dyn Store>,
    /// The read cache of segment chunks every index of this database shares.
    cache: Arc<ChunkCache>,
    /// How long a segment superseded by a commit (a compaction, training, rotation) stays
    /// for readers that still hold the state naming it (zero deletes at once).
    grace: Duration,
}

impl StoreBackend {
    /// The backend over `store`, with a read cache of at most `cache_bytes` (0 turns it
    /// off) and superseded segments kept for `grace`.
    pub(crate) fn new(store: Arc<dyn Store>, cache_bytes: u64, grace: Duration) -> StoreBackend {
        StoreBackend {
            store,
            cache: Arc::new(ChunkCache::new(cache_bytes)),
            grace,
        }
    }
}

impl Drop for PrefixFiles {
    /// Deletes what has been retired for the grace period; younger retired segments stay
    /// (the next writer's open removes them as leftovers). Not in a child made by `fork`:
    /// its parent's handle does that.
    fn drop(&mut self) {
        if std::process::id() != self.process {
            return;
        }
        self.delete_retired(self.grace);
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
            retired: Mutex::new(Vec::new()),
            grace: self.grace,
            store: self.store.clone(),
            cache: self.cache.clone(),
            prefix,
            lease: Mutex::new(None),
            manifest_version: Mutex::new(None),
            process: std::process::id(),
        })))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let prefix = format!("{name}/");
        self.cache.forget(&prefix);
        for object in self.store.list(&prefix)? {
            self.store.delete(&object)?;
        }
        Ok(())
    }
}

/// The files of one index: the objects under `prefix`.
struct PrefixFiles {
    /// Segments superseded by this handle's commits, kept for readers until `grace` passed.
    retired: Mutex<Vec<(String, Instant)>>,
    grace: Duration,
    store: Arc<dyn Store>,
    cache: Arc<ChunkCache>,
    prefix: String,
    /// The writer lease this handle holds, when the store has versions (held by the writer
    /// handle's lock; gone when that is dropped).
    lease: Mutex<Option<std::sync::Weak<Lease>>>,
    /// The manifest's version as this handle first read it since taking its lease, or last
    /// wrote it: the condition of its next manifest replacement.
    manifest_version: Mutex<Option<String>>,
    /// The process that opened it (see `Lease::process`).
    process: u32,
}

impl PrefixFiles {
    fn retired(&self) -> std::sync::MutexGuard<'_, Vec<(String, Instant)>> {
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deletes the retired segments retired at least `age` ago (a failed delete is retried
    /// by the next call).
    fn delete_retired(&self, age: Duration) {
        self.retired()
            .retain(|(name, since)| since.elapsed() < age || self.store.delete(name).is_err());
    }

    /// Renews this handle's lease if it holds one and renewal is due.
    fn renew_lease(&self) -> io::Result<()> {
        let lease = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(std::sync::Weak::upgrade);
        lease.map_or(Ok(()), |l| l.renew_if_due())
    }

    fn manifest_version(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.manifest_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl IndexFiles for PrefixFiles {
    /// A segment is read by range (its length asked first), never downloaded whole: what
    /// an open reads of one that no manifest names is its head, footer and directory. The
    /// manifest is read whole, up to [`super::MAX_MANIFEST_LEN`].
    fn read(&self, file: &str) -> io::Result<Blob> {
        let name = format!("{}{file}", self.prefix);
        if file != MARKER {
            let len = self.store.size(&name)?;
            let object = RemoteObject::new(self.store.clone(), name, len, self.cache.clone());
            return Ok(Blob::Remote(object));
        }
        let (bytes, version) = self
            .store
            .get_versioned_at_most(&name, super::MAX_MANIFEST_LEN)?;
        let mut known = self.manifest_version();
        if known.is_none() {
            *known = version;
        }
        Ok(Blob::Shared(bytes.into()))
    }

    fn open_segment(&self, file: &str, len: u64) -> io::Result<Blob> {
        let name = format!("{}{file}", self.prefix);
        let object = RemoteObject::new(self.store.clone(), name, len, self.cache.clone());
        Ok(Blob::Remote(object))
    }

    fn written_segment(&self, file: &str, data: Vec<u8>) -> Blob {
        let name = format!("{}{file}", self.prefix);
        let object = RemoteObject::new(
            self.store.clone(),
            name,
            data.len() as u64,
            self.cache.clone(),
        );
        object.seed(&data);
        Blob::Remote(object)
    }

    #[cfg(feature = "internals")]
    fn read_stats(&self) -> ReadStats {
        self.cache.stats()
    }

    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.renew_lease()?;
        self.delete_retired(self.grace);
        self.store.put_new(&format!("{}{file}", self.prefix), data)
    }

    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.renew_lease()?;
        let name = format!("{}{file}", self.prefix);
        let mut known = self.manifest_version();
        match known.as_deref() {
            Some(version) if file == MARKER => {
                match self.store.put_if_version(&name, data, version)? {
                    Some(new) => *known = Some(new),
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::ResourceBusy,
                            "the manifest was changed by another writer",
                        ));
                    }
                }
                Ok(())
            }
            _ => {
                self.store.put(&name, data)?;
                if file == MARKER {
                    // A manifest this handle created: its version conditions the next one.
                    *known = self.store.get_versioned(&name)?.1;
                }
                Ok(())
            }
        }
    }

    /// Conditional (`put_new`): of two creators whose leases overlapped (one stalled past
    /// its lease), only one manifest lands; its version conditions the next replace.
    fn write_first(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.renew_lease()?;
        let name = format!("{}{file}", self.prefix);
        self.store.put_new(&name, data)?;
        if file == MARKER {
            *self.manifest_version() = self.store.get_versioned(&name)?.1;
        }
        Ok(())
    }

    fn remove(&self, file: &str) -> io::Result<()> {
        self.store.delete(&format!("{}{file}", self.prefix))
    }

    /// Not deleted at once: readers in other processes that hold an older state read its
    /// ranges on demand, so it stays for [`grace_period`] and is deleted by a later write of
    /// this handle (or when the handle goes) once that passed.
    fn retire(&self, file: &str) -> io::Result<()> {
        if self.grace.is_zero() {
            return self.remove(file);
        }
        let name = format!("{}{file}", self.prefix);
        self.retired().push((name, Instant::now()));
        Ok(())
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

    fn file_len(&self, file: &str) -> io::Result<u64> {
        self.store.size(&format!("{}{file}", self.prefix))
    }

    fn try_lock(&self) -> io::Result<Option<WriterLock>> {
        let name = format!("{}LOCK", self.prefix);
        match Lease::take(&self.store, &name) {
            Ok(Some(lease)) => {
                // The manifest read under the lease (the open reads it again after taking
                // it) is the one the next commit must replace: forget any read before.
                *self.manifest_version() = None;
                let lease = Arc::new(lease);
                *self
                    .lease
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Arc::downgrade(&lease));
                return Ok(Some(Box::new(lease)));
            }
            Ok(None) => return Ok(None),
            // A store without versions: its plain lock.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(e) => return Err(e),
        }
        if !self.store.lock(&name)? {
            return Ok(None);
        }
        Ok(Some(Box::new(StoreLock {
            store: self.store.clone(),
            name,
            process: std::process::id(),
        })))
    }
}

/// The objects of a [`MemoryStore`] by name: bytes and version.
type Objects = std::collections::BTreeMap<String, (Arc<[u8]>, u64)>;

/// A [`Store`] in process memory: the reference implementation of the contract (versions
/// included, so writers get leases), and a base for test doubles (wrap it to inject failures
/// or delays).
#[derive(Debug)]
pub struct MemoryStore {
    /// Each object's bytes and version.
    objects: Mutex<Objects>,
    /// The last version given out.
    versions: std::sync::atomic::AtomicU64,
    lease: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            objects: Mutex::default(),
            versions: std::sync::atomic::AtomicU64::new(0),
            lease: Duration::from_secs(30),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store whose writer leases last `duration` (for tests of lease expiry).
    pub fn with_lease_duration(duration: Duration) -> MemoryStore {
        MemoryStore {
            lease: duration,
            ..MemoryStore::default()
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_version(&self) -> u64 {
        self.versions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }
}

impl Store for MemoryStore {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.get_versioned(name).map(|(bytes, _)| bytes)
    }

    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut objects = self.objects();
        if objects.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        objects.insert(name.to_owned(), (data.into(), self.next_version()));
        Ok(())
    }

    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let version = self.next_version();
        self.objects()
            .insert(name.to_owned(), (data.into(), version));
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

    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        self.objects()
            .get(name)
            .map(|(b, v)| (b.to_vec(), Some(v.to_string())))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        self.objects()
            .get(name)
            .map(|(b, _)| b.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn get_versioned_at_most(&self, name: &str, max: u64) -> io::Result<(Vec<u8>, Option<String>)> {
        match self.objects().get(name) {
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
            Some((b, _)) if b.len() as u64 > max => Err(too_large()),
            Some((b, v)) => Ok((b.to_vec(), Some(v.to_string()))),
        }
    }

    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        let mut objects = self.objects();
        match objects.get_mut(name) {
            Some((bytes, v)) if v.to_string() == version => {
                let new = self.next_version();
                *bytes = data.into();
                *v = new;
                Ok(Some(new.to_string()))
            }
            _ => Ok(None),
        }
    }

    fn lease_duration(&self) -> Duration {
        self.lease
    }
}
