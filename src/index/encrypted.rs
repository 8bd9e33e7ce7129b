//! [`EncryptedIndex`]: the handle, its accessors and the commit step; writes, reads and
//! maintenance live in the submodules.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};

use serde_json::Value;

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::manifest::{ManifestBody, ManifestHeader};
use crate::format::segment::{self, CommitNote};
use crate::ivf::Quantizer;
use crate::metric::Metric;
use crate::storage::{IndexFiles, WriterLock};

use crate::engine::access::Need;
use crate::engine::persist;
use crate::engine::state::State;
use crate::engine::upkeep::Upkeep;
use crate::model::config::{IndexConfig, IndexType};

mod access;
mod autotrain;
mod integrity;
mod listing;
mod maintenance;
mod read;
mod retrain;
mod split;
mod text_search;
mod write;

/// Seed of every random choice of training, so that training is reproducible.
const TRAINING_SEED: u64 = 1234;
/// Residuals the code of a quantized index type is trained on, at most.
const CODEC_TRAINING_SAMPLE: usize = 65_536;
/// Stored bytes below which automatic compaction never runs.
const AUTO_COMPACT_MIN_BYTES: u64 = 4 << 20;
/// Live segments past which automatic compaction runs whatever the dead share: every write
/// of its own adds a segment, and every commit rewrites a manifest that lists them all, so
/// an index written one item at a time grew a file and ~30 manifest bytes per write without
/// bound (6,000 single upserts: 32.8 s where 3,000 took 7.6 s, the later writes ~8 ms each
/// against 2.5; each segment is also a memory map, of which Linux allows a process 65,530
/// by default). One segment per 64 items, so that a
/// large index is rewritten every `n / 64` small writes (64 items rewritten per write, not
/// the whole index every 1,024), within these bounds.
const AUTO_COMPACT_SEGMENTS: (usize, usize) = (1024, 16_384);

/// How many live segments an index of `items` items may hold before automatic compaction
/// ([`AUTO_COMPACT_SEGMENTS`]).
fn auto_compact_max_segments(items: usize) -> usize {
    (items / 64).clamp(AUTO_COMPACT_SEGMENTS.0, AUTO_COMPACT_SEGMENTS.1)
}

/// A handle on one open encrypted index. Cheap to clone; every clone shares the same index.
///
/// Queries run concurrently with each other and with one writer; writers are serialized.
/// Every write is durable when it returns.
///
/// A child process made by `fork` (Python's `multiprocessing` on Linux) may query through
/// the handles it inherited, and [`refresh`](Self::refresh) them to see the parent's
/// commits; its writes through them are [`Error::Locked`]: the writer lock stays the
/// parent's. (Parallel work in the child runs on a thread pool of its own.)
#[derive(Clone)]
pub struct EncryptedIndex {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    name: String,
    config: IndexConfig,
    /// The configuration once full text was turned on in this index after it opened
    /// (`enable_full_text` here, or seen by `refresh`): set at most once, as full text is
    /// never turned off.
    full_text_config: OnceLock<IndexConfig>,
    store: Arc<dyn IndexFiles>,
    state: RwLock<State>,
    writer: Mutex<()>,
    cache_budget: usize,
    /// Dead share of stored bytes that triggers compaction after a write, if any.
    auto_compact: Option<f64>,
    /// Sequence number of the next segment; advanced even by failed commits, so that a
    /// number is never reused (a failed segment file may survive).
    next_segment: AtomicU64,
    /// Segment numbers this writer found taken (see `History::abandoned`), recorded by its
    /// next commit.
    abandoned: Mutex<Vec<u64>>,
    /// The last manifest epoch written (or attempted).
    epoch: AtomicU64,
    /// Set when a failed commit could not be rolled back: writes are refused until reopen.
    poisoned: AtomicBool,
    /// Opened with `open_index_read_only`: every write is refused.
    read_only: AtomicBool,
    /// The index was deleted (`Database::delete_index`) while this handle was open: every
    /// write is refused as `IndexNotFound`.
    deleted: AtomicBool,
    /// Sealed bytes unfiltered queries read from the mapped segments (non-resident only).
    storage_reads: AtomicU64,
    /// The process that opened the handle and holds its writer lock: a child made by `fork`
    /// inherits the handle, not the right to write (see [`EncryptedIndex::writer`]).
    process: u32,
    /// Self-maintenance: the background training and its counters (shared with the
    /// training's thread, which holds only a weak reference to the rest).
    upkeep: Arc<Upkeep>,
    _lock: WriterLock,
}

impl Inner {
    /// Whether this process opened the handle (not a child that inherited it through `fork`).
    fn opened_here(&self) -> bool {
        self.process == std::process::id()
    }
}

/// The handle behind `weak`, while some handle lives: how a background training (`autotrain`
/// runs it, `retrain` does it) gets the index back between its steps.
fn handle(weak: &std::sync::Weak<Inner>) -> Option<EncryptedIndex> {
    weak.upgrade().map(|inner| EncryptedIndex { inner })
}

impl std::fmt::Debug for EncryptedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedIndex")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A validated item, ready to be sealed.
struct Prepared {
    id: String,
    token: [u8; 32],
    vector: Vec<f32>,
    metadata: Option<Vec<u8>>,
    metadata_value: Option<Arc<Value>>,
    contents: Option<Vec<u8>>,
}

impl EncryptedIndex {
    pub(crate) fn from_parts(
        name: String,
        store: Arc<dyn IndexFiles>,
        state: State,
        cache_budget: usize,
        auto_compact: Option<f64>,
        lock: WriterLock,
    ) -> EncryptedIndex {
        let config = IndexConfig::from_stored(&state.body().config);
        let (next_segment, epoch) = (state.body().next_segment, state.body().epoch);
        EncryptedIndex {
            inner: Arc::new(Inner {
                name,
                config,
                full_text_config: OnceLock::new(),
                store,
                state: RwLock::new(state),
                writer: Mutex::new(()),
                cache_budget,
                auto_compact,
                next_segment: AtomicU64::new(next_segment),
                abandoned: Mutex::new(Vec::new()),
                epoch: AtomicU64::new(epoch),
                poisoned: AtomicBool::new(false),
                read_only: AtomicBool::new(false),
                deleted: AtomicBool::new(false),
                storage_reads: AtomicU64::new(0),
                process: std::process::id(),
                upkeep: Arc::new(Upkeep::default()),
                _lock: lock,
            }),
        }
    }

    pub(crate) fn into_read_only(self) -> EncryptedIndex {
        self.inner.read_only.store(true, Ordering::SeqCst);
        self
    }

    /// Takes the writer mutex, unless the handle is read-only, its index was deleted, or the
    /// handle was inherited through `fork`: the writer lock is the parent's, which may go on
    /// writing, so the child's writes are [`Error::Locked`] (two processes appending to one
    /// index would number their segments alike and commit over each other).
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.require(Need::Write)?;
        if self.inner.read_only.load(Ordering::SeqCst) {
            return Err(Error::ReadOnly);
        }
        if !self.inner.opened_here() {
            return Err(Error::Locked);
        }
        let guard = self.writer_mutex();
        if self.inner.deleted.load(Ordering::SeqCst) {
            return Err(Error::IndexNotFound);
        }
        Ok(guard)
    }

    /// Refuses what the handle's grant does not allow with [`Error::PermissionDenied`]
    /// (before any I/O); the index key's holder may do everything.
    fn require(&self, need: Need) -> Result<()> {
        crate::engine::access::require(self.read().keys(), need)
    }

    fn writer_mutex(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a write in flight and holds off new ones while the guard lives (as the
    /// index's files are removed).
    pub(crate) fn hold_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer_mutex()
    }

    /// Marks the handle's index deleted: every later write is `IndexNotFound`.
    pub(crate) fn mark_deleted(&self) {
        self.inner.deleted.store(true, Ordering::SeqCst);
    }

    /// The manifest epoch the next commit gets (writers hold the writer lock, so it cannot
    /// move before they commit).
    fn next_epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst) + 1
    }

    /// The manifest's current clear header.
    pub(crate) fn header(&self) -> ManifestHeader {
        self.read().header().clone()
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// Whether this process may write through the handle as its writer: not read-only,
    /// and not inherited through `fork`.
    fn is_own_writer(&self) -> bool {
        !self.inner.read_only.load(Ordering::SeqCst) && self.inner.opened_here()
    }

    /// The handle behind `weak` if it lives and was opened by this process (one inherited
    /// through `fork` holds the parent's writer lock: the `Database` does not hand it out).
    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<EncryptedIndex> {
        weak.upgrade()
            .filter(|inner| inner.opened_here())
            .map(|inner| EncryptedIndex { inner })
    }

    /// The index name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration the index was created with (with full text on once
    /// [`EncryptedIndex::enable_full_text`] turned it on).
    pub fn config(&self) -> &IndexConfig {
        self.inner
            .full_text_config
            .get()
            .unwrap_or(&self.inner.config)
    }

    /// Records that full text is now on (see `config`).
    fn note_full_text(&self) {
        if !self.inner.config.is_full_text() {
            let _ = self
                .inner
                .full_text_config
                .set(self.inner.config.clone().full_text(true));
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the index holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every decrypted vector is held in memory (see
    /// [`DatabaseOptions::cache_budget`](crate::DatabaseOptions)); `false` means lists
    /// (`ivf_flat`) or re-ranked vectors (quantized types) are decrypted on demand.
    pub fn is_resident(&self) -> bool {
        self.read().is_resident()
    }

    /// Number of trained lists (0 before training).
    pub fn n_lists(&self) -> usize {
        self.read().quantizer().map_or(0, Quantizer::n_lists)
    }

    /// Whether [`train`](Self::train) has run.
    pub fn is_trained(&self) -> bool {
        self.read().quantizer().is_some()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn dim(&self) -> usize {
        self.inner.config.dimension()
    }

    fn metric(&self) -> Metric {
        self.inner.config.distance_metric()
    }

    /// Sealed bytes that queries have read from storage (test hook, see `internals`).
    #[cfg(feature = "internals")]
    pub(crate) fn storage_reads(&self) -> u64 {
        self.inner.storage_reads.load(Ordering::Relaxed)
    }

    /// Ranged requests and bytes this index's store fetched so far (its database's read
    /// cache: zero for local stores); see `internals`.
    #[cfg(feature = "internals")]
    pub(crate) fn store_fetches(&self) -> (u64, u64) {
        let stats = self.inner.store.read_stats();
        (stats.requests, stats.bytes)
    }

    /// Decrypted bytes held in memory: (lists, item table); see `internals`.
    #[cfg(feature = "internals")]
    pub(crate) fn decrypted_bytes(&self) -> (usize, usize) {
        self.read().decrypted_bytes()
    }

    /// Whether this is an `ivf_sq8` or `ivf_pq` index (vectors stored apart from lists).
    fn is_quantized(&self) -> bool {
        self.inner.config.is_quantized()
    }

    /// Whether this is an `ivf_pq` index (whose default list and probe counts differ).
    fn is_pq(&self) -> bool {
        matches!(self.inner.config.index_type(), IndexType::IvfPq { .. })
    }

    /// Writes a segment file, then commits a manifest that names it (as its `note` says).
    ///
    /// On failure the committed state stays the previous one: a segment that was written is
    /// removed again, and if the manifest write failed after its rename may have happened,
    /// the previous state is committed again under a newer epoch. If even that fails, the
    /// handle refuses further writes until the index is reopened.
    fn commit_segment(
        &self,
        commit: Commit<'_>,
        seq: u64,
        bytes: &[u8],
        note: &CommitNote,
    ) -> Result<ManifestBody> {
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        let Commit { keys, header, body } = commit;
        let store = &*self.inner.store;
        let file = segment::file_name(seq);
        self.inner.next_segment.store(seq + 1, Ordering::SeqCst);
        if let Err(e) = store.write_new(&file, bytes) {
            // A torn segment of ours is removed; a name another writer took (on object
            // storage, where create-only writes decide between writers) or a write refused
            // before it began (a lease taken over) leaves the other writer's segment alone.
            let ours = !matches!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::ResourceBusy
            );
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                // A segment no commit of this history named (this writer's base numbers
                // from past every named one): the next commit records it as abandoned, so
                // that opens neither apply it nor call the history forked because of it.
                self.inner
                    .abandoned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(seq);
            }
            if ours {
                best_effort(
                    store.remove(&file).map_err(Error::from),
                    "a torn segment no manifest names is removed at the next open",
                );
            }
            return Err(e.into());
        }
        let mut new_body = body.clone();
        let written = (
            seq,
            bytes.len() as u64,
            persist::segment_digest(bytes, segment::Layout::CURRENT),
        );
        // The note's epoch is this commit's (`next_epoch`, taken under the writer lock).
        persist::apply_commit(&mut new_body, written, note);
        let abandoned = std::mem::take(
            &mut *self
                .inner
                .abandoned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        persist::note_abandoned(&mut new_body, &abandoned);
        self.inner.epoch.fetch_max(note.epoch, Ordering::SeqCst);
        new_body.key_generation = new_body.key_generation.max(keys.next_generation());
        if let Err(e) = persist::write_manifest(store, header, keys, &new_body) {
            // The previous state again, as a commit of its own: a newer epoch (a reader may
            // have seen the failed one) whose parent is the previous head.
            let mut previous = body.clone();
            previous.next_segment = seq + 1;
            let epoch = self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1;
            persist::commit_manifest_only(&mut previous, epoch, header);
            persist::note_abandoned(&mut previous, &abandoned);
            previous.key_generation = new_body.key_generation;
            if persist::write_manifest(store, header, keys, &previous).is_ok() {
                best_effort(
                    store.remove(&file).map_err(Error::from),
                    "a segment no manifest names is removed at the next open",
                );
            } else {
                self.inner.poisoned.store(true, Ordering::SeqCst);
                if matches!(e, Error::Locked) {
                    // The manifest moved under another writer (a conditional write was
                    // refused): this segment can never be named, and would stand in the
                    // way of that writer's history.
                    best_effort(
                        store.remove(&file).map_err(Error::from),
                        "the other writer records it as abandoned when it finds it",
                    );
                }
            }
            return Err(e);
        }
        Ok(new_body)
    }
}

/// Failed cleanups that were safe to ignore, since the process started (for tests).
static IGNORED_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The one place where an error is dropped on purpose: cleanup whose failure leaves the
/// committed index intact and whose leftovers a later step removes. `why_safe` says why
/// (it documents the call site; it is never shown). Each such failure is counted.
pub(crate) fn best_effort(result: Result<()>, why_safe: &'static str) {
    let _ = why_safe;
    if result.is_err() {
        IGNORED_FAILURES.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many failed cleanups [`best_effort`] has ignored in this process.
#[cfg(feature = "internals")]
pub(crate) fn ignored_failures() -> u64 {
    IGNORED_FAILURES.load(Ordering::Relaxed)
}

/// What a commit is made under: the keys and header to seal and sign the manifest with, and
/// the committed body it changes.
#[derive(Clone, Copy)]
struct Commit<'a> {
    keys: &'a Keys,
    header: &'a ManifestHeader,
    body: &'a ManifestBody,
}
