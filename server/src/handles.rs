//! Open index handles kept for reuse between requests, keyed by index name and a
//! fingerprint of the key that opened them (never the key). A handle idle for longer than
//! `--idle-timeout` is dropped with its key; dropping the last writer handle releases the
//! index's writer lock or lease, so another replica can take it.
//!
//! When another process holds the writer lock (another `serve` replica on the same
//! `s3://` location, or any writer), the index is opened read-only: reads are served and
//! refreshed from storage at most every `--refresh-interval`, writes answer 409. A replica
//! tries again to become the writer, at most once a second, when a write arrives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ciphervec::{Database, EncryptedIndex, Error, IndexKey};

use crate::error::ApiError;
use crate::keys::{Fingerprint, Fingerprinter};

/// What a request does with the index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Reads only.
    Read,
    /// Writes (a read-only handle will not do).
    Write,
}

/// Who opens the index: its owner with the index key, or a granted user with their key.
pub enum Opener<'a> {
    /// The index key.
    Owner(&'a IndexKey),
    /// A user id and that user's key (a `cdbk_` API key).
    User(&'a str, &'a IndexKey),
}

/// The cache of open handles.
pub struct Handles {
    db: Database,
    fingerprints: Fingerprinter,
    entries: Mutex<HashMap<Slot, Entry>>,
    idle: Duration,
    refresh_every: Duration,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Slot {
    name: String,
    key: Fingerprint,
}

struct Entry {
    index: EncryptedIndex,
    /// Refreshed from storage (a reader replica's handle, or a read grant's).
    read_only: bool,
    /// Opened with a read grant: it never becomes a writer (its writes are the core's 403).
    read_grant: bool,
    /// Opened with a user key (dropped when a user of the index is revoked).
    user: bool,
    last_used: Instant,
    last_refresh: Instant,
    last_writer_try: Instant,
}

/// How often a reader replica asking to write tries to take the writer lock again.
const WRITER_RETRY: Duration = Duration::from_secs(1);

impl Handles {
    /// A cache over `db`; handles idle for `idle` are dropped by [`Handles::evict_idle`];
    /// read-only handles refresh at most every `refresh_every`.
    pub fn new(db: Database, idle: Duration, refresh_every: Duration) -> Handles {
        Handles {
            db,
            fingerprints: Fingerprinter::new(),
            entries: Mutex::new(HashMap::new()),
            idle,
            refresh_every,
        }
    }

    /// The database the handles come from.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// A handle on `name` opened by `opener`, from the cache or opened now. Blocking: call
    /// it off the async threads.
    ///
    /// # Errors
    /// The core's errors of opening (`IndexNotFound`, `WrongKey` for a key or user key that
    /// opens nothing, ...) and of a reader's refresh.
    pub fn open(
        &self,
        name: &str,
        opener: &Opener<'_>,
        access: Access,
    ) -> Result<EncryptedIndex, ApiError> {
        let slot = Slot {
            name: name.to_owned(),
            key: match opener {
                Opener::Owner(key) => self.fingerprints.of(key, None),
                Opener::User(user, key) => self.fingerprints.of(key, Some(user)),
            },
        };
        let now = Instant::now();
        let cached = {
            let mut entries = self.lock();
            entries.get_mut(&slot).map(|e| {
                e.last_used = now;
                let refresh = e.read_only && e.last_refresh.elapsed() >= self.refresh_every;
                if refresh {
                    e.last_refresh = now;
                }
                let try_writer = e.read_only
                    && !e.read_grant
                    && access == Access::Write
                    && e.last_writer_try.elapsed() >= WRITER_RETRY;
                if try_writer {
                    e.last_writer_try = now;
                }
                (e.index.clone(), e.read_only, refresh, try_writer)
            })
        };
        match cached {
            Some((index, false, _, _)) => Ok(index),
            Some((index, true, refresh, try_writer)) => {
                if try_writer && let Ok(writer) = self.open_writer(name, opener, &slot) {
                    self.insert(slot, writer.clone(), false, opener);
                    return Ok(writer);
                }
                if refresh {
                    index.refresh()?;
                }
                Ok(index)
            }
            None => {
                let (index, read_only) = match self.open_writer(name, opener, &slot) {
                    Ok(index) => (index, false),
                    Err(Error::Locked) => (self.open_reader(name, opener)?, true),
                    Err(e) => return Err(e.into()),
                };
                self.insert(slot, index.clone(), read_only, opener);
                Ok(index)
            }
        }
    }

    /// Keeps `index`, just created or replaced by `key`'s owner, for the next requests.
    pub fn keep(&self, name: &str, key: &IndexKey, index: EncryptedIndex) {
        let slot = Slot {
            name: name.to_owned(),
            key: self.fingerprints.of(key, None),
        };
        self.insert(slot, index, false, &Opener::Owner(key));
    }

    /// Drops every handle on `name` (before the index is deleted or replaced).
    pub fn forget(&self, name: &str) {
        let dropped = self.take(|slot, _| slot.name == name);
        drop(dropped);
    }

    /// Drops every handle on `name` opened with a user key (after a user is revoked).
    pub fn forget_users(&self, name: &str) {
        let dropped = self.take(|slot, e| slot.name == name && e.user);
        drop(dropped);
    }

    /// Removes the entries `which` picks, to be dropped once the cache is unlocked (the last
    /// writer handle's drop releases the writer lock, which may do I/O).
    fn take(&self, which: impl Fn(&Slot, &Entry) -> bool) -> Vec<Entry> {
        let mut entries = self.lock();
        let slots: Vec<Slot> = entries
            .iter()
            .filter(|(slot, e)| which(slot, e))
            .map(|(slot, _)| slot.clone())
            .collect();
        slots.iter().filter_map(|s| entries.remove(s)).collect()
    }

    /// Drops handles unused for longer than the idle time; returns how many are left.
    pub fn evict_idle(&self) -> usize {
        let mut entries = self.lock();
        entries.retain(|_, e| e.last_used.elapsed() < self.idle);
        entries.len()
    }

    /// The distinct indexes with an open handle here (for the training status).
    pub fn open_indexes(&self) -> Vec<(String, EncryptedIndex)> {
        let entries = self.lock();
        let mut seen = std::collections::HashSet::new();
        entries
            .iter()
            .filter(|(slot, _)| seen.insert(slot.name.clone()))
            .map(|(slot, e)| (slot.name.clone(), e.index.clone()))
            .collect()
    }

    /// How many handles are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no handle is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, slot: Slot, index: EncryptedIndex, read_only: bool, opener: &Opener<'_>) {
        let now = Instant::now();
        let read_grant = index.access() == Some(ciphervec::Access::Read);
        self.lock().insert(
            slot,
            Entry {
                index,
                read_only: read_only || read_grant,
                read_grant,
                user: matches!(opener, Opener::User(..)),
                last_used: now,
                last_refresh: now,
                last_writer_try: now,
            },
        );
    }

    /// Opens `name` as a writer (a read grant gives its read-only handle). The owner and
    /// each write-granted user open separate handles, and one process holds one writer: when
    /// another kept handle here is the writer, it is dropped and the open tried once more
    /// (an owner and a write user writing one index in turn reopen it in turn).
    fn open_writer(
        &self,
        name: &str,
        opener: &Opener<'_>,
        slot: &Slot,
    ) -> Result<EncryptedIndex, Error> {
        let open = || match opener {
            Opener::Owner(key) => self.db.open_index(name, key),
            Opener::User(user, key) => self.db.open_index_as(name, user, key),
        };
        match open() {
            Err(Error::Locked) => {
                let writers = self.take(|s, e| s.name == name && s != slot && !e.read_only);
                if writers.is_empty() {
                    return Err(Error::Locked);
                }
                drop(writers);
                open()
            }
            other => other,
        }
    }

    /// Opens `name` for reading without the writer lock. A user opens through its grant,
    /// which takes the writer lock for a write grant: a write user whose index another
    /// process writes is `Locked` (409).
    fn open_reader(&self, name: &str, opener: &Opener<'_>) -> Result<EncryptedIndex, Error> {
        match opener {
            Opener::Owner(key) => self.db.open_index_read_only(name, key),
            Opener::User(user, key) => self.db.open_index_as(name, user, key),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
