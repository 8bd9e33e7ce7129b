//! Automatic training: what runs after every write (a background training when one is due,
//! else a split step, then compaction), the background training itself, and the status.
//!
//! A background training runs on a thread of its own with a rayon pool of its own (one
//! thread fewer than the cores, at least one), so that it neither waits for nor holds up
//! the global pool that queries and writes run on. It reads the item table a chunk at a
//! time under short holds of the state's read lock (a long hold would make the writer's
//! commit wait, and queries behind it), runs k-means on a sample and assigns every item it
//! read to the new lists, all without the writer lock: writes and queries go on. It then
//! takes the writer lock and installs the lists in one rewrite, the same commit as `train`'s,
//! in which items written meanwhile (those whose version is newer than the one it read)
//! are assigned too. It holds only a weak reference to the index between those steps, so
//! dropping every handle ends it (at its next step) and releases the writer lock.

use std::sync::{Arc, Weak};

use rand::SeedableRng;
use rand::seq::index::sample;

use super::maintenance::{fit, prepare_rows, train_codec};
use super::*;
use crate::index::config::TrainOptions;
use crate::index::lists::Lists;
use crate::index::state::Coder;
use crate::index::upkeep::{self, Due, TrainingStatus, Upkeep};
use crate::ivf;

/// Items whose slots one hold of the read lock walks while a training reads the item
/// table.
const GATHER_CHUNK: u64 = 65_536;

/// Vectors read (copied or decrypted) under one hold of the read lock.
const READ_CHUNK: usize = 4_096;

/// Times a background training starts over when a rewrite (a compaction, a rotation, an
/// explicit `train`) renumbered the items it read, before it leaves the next write to start it.
const RESTARTS: usize = 2;

impl EncryptedIndex {
    /// Whether a training runs in the background now (see
    /// [`IndexConfig::auto_train`]). Writes and queries go on meanwhile; its lists are
    /// installed in one commit when it ends. Always `false` through a read-only handle or one
    /// inherited through `fork` (the training, if any, is the writer's).
    pub fn is_training(&self) -> bool {
        self.is_own_writer() && self.inner.upkeep.lock().running
    }

    /// What self-maintenance is doing and has done: whether a training runs in the
    /// background, the item count of the last training, and when the next automatic one
    /// starts (see [`TrainingStatus`]).
    pub fn training_status(&self) -> TrainingStatus {
        let (items, n_lists) = {
            let state = self.read();
            (state.len(), state.quantizer().map_or(0, Quantizer::n_lists))
        };
        let auto = self.inner.config.is_auto_train();
        let u = self.inner.upkeep.lock();
        // A reader or a forked child serves what the writer committed; the writer's training
        // runs elsewhere.
        let trained_at = if n_lists > 0 {
            u.trained_at.or(Some(items))
        } else {
            None
        };
        TrainingStatus {
            training: u.running && self.is_own_writer(),
            trained_at_items: trained_at,
            auto_train: auto,
            items,
            n_lists,
            next_training_at_items: auto.then(|| upkeep::next_training_at(trained_at)),
            background_trainings: u.trainings,
            list_splits: u.splits,
            last_error: u.last_error.clone(),
        }
    }

    /// After a committed write (writer lock held; `touched` the lists it added items to):
    /// starts a background training if one is due, else splits lists that grew too long,
    /// then compacts if due. Failures leave the index as it was (the write is committed)
    /// and are retried after a later write.
    pub(super) fn after_write(&self, touched: &[u32]) {
        if self.inner.config.is_auto_train() && self.is_own_writer() {
            let (running, retry_at) = {
                let u = self.inner.upkeep.lock();
                (u.running, u.retry_at)
            };
            match self.due() {
                Due::Train if !running && self.len() >= retry_at => self.start_training(),
                Due::Balance if !running => {
                    if let Err(e) = self.split_overfull(touched) {
                        self.inner.upkeep.lock().last_error = Some(e.to_string());
                    }
                }
                _ => {}
            }
        }
        self.maybe_compact();
    }

    /// What self-maintenance has due now.
    fn due(&self) -> Due {
        let (items, trained) = {
            let state = self.read();
            (state.len(), state.quantizer().is_some())
        };
        let trained_at = trained.then(|| self.inner.upkeep.lock().trained_at.unwrap_or(items));
        upkeep::due(items, trained_at, self.inner.config.lists() == 0)
    }

    /// Whether a (re)training is due.
    fn training_due(&self) -> bool {
        self.due() == Due::Train
    }

    /// Starts a background training unless one runs.
    fn start_training(&self) {
        let upkeep = self.inner.upkeep.clone();
        if !upkeep.try_start() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let thread = std::thread::Builder::new()
            .name("ciphervec-train".into())
            .spawn({
                let upkeep = upkeep.clone();
                move || {
                    let t0 = std::time::Instant::now();
                    let outcome = run_training(&weak, &upkeep);
                    if std::env::var_os("CV_DEBUG").is_some() {
                        eprintln!(
                            "training outcome {:?} after {:?}",
                            outcome.as_ref().map_err(|e| e.to_string()),
                            t0.elapsed()
                        );
                    }
                    let mut u = upkeep.lock();
                    match outcome {
                        Ok(Some(_)) => {
                            u.trainings += 1;
                            u.last_error = None;
                            u.unsplittable.clear();
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let items = weak
                                .upgrade()
                                .map_or(0, |inner| EncryptedIndex { inner }.len());
                            u.retry_at = items.saturating_add((items / 10).max(1_000));
                            u.last_error = Some(e.to_string());
                        }
                    }
                    drop(u);
                    upkeep.finish();
                }
            });
        if thread.is_err() {
            // No thread: the next write tries again.
            upkeep.finish();
        }
    }
}

/// The handle behind `weak`, while some handle lives.
fn handle(weak: &Weak<Inner>) -> Option<EncryptedIndex> {
    weak.upgrade().map(|inner| EncryptedIndex { inner })
}

/// Runs one background training to its end: `Ok(Some(items))` when it installed lists
/// trained at `items` items, `Ok(None)` when it had nothing to do (every handle dropped,
/// not due any more, rewritten under it too often).
fn run_training(weak: &Weak<Inner>, upkeep: &Upkeep) -> Result<Option<usize>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ciphervec-train-{i}"))
        .build()
        .map_err(|_| Error::invalid_argument("no thread for a background training"))?;
    for _ in 0..=RESTARTS {
        if !handle(weak).is_some_and(|index| index.training_due()) {
            return Ok(None);
        }
        let rewrites = upkeep.rewrites();
        let Some(fitted) = pool.install(|| prepare(weak))? else {
            return Ok(None);
        };
        if upkeep.rewrites() != rewrites {
            continue;
        }
        let Some(index) = handle(weak) else {
            return Ok(None);
        };
        // Installed on the global pool, as any write: its rewrite is the writer's work.
        match crate::index::parallel::install(|| index.install(fitted, rewrites))? {
            Installed::Yes(items) => return Ok(Some(items)),
            Installed::NotDue => return Ok(None),
            Installed::Rewritten => continue,
        }
    }
    Ok(None)
}

/// What a background training computed beside the writer.
struct Fitted {
    quantizer: Quantizer,
    coder: Option<Coder>,
    /// Per slot read: the version read (its `origin` segment; `u64::MAX` for none) and its
    /// list under the new centroids.
    read: Vec<(u64, u32)>,
}

/// The outcome of an install.
enum Installed {
    /// Lists trained at this many items were committed.
    Yes(usize),
    /// A training is no longer due (an explicit `train` ran meanwhile).
    NotDue,
    /// A rewrite renumbered the items since they were read: start over.
    Rewritten,
}

/// Reads a sample, runs k-means and the codec's training on it, and assigns every item to
/// the new lists, on the calling pool, holding the read lock a chunk at a time only.
/// `None` when every handle was dropped.
fn prepare(weak: &Weak<Inner>) -> Result<Option<Fitted>> {
    let Some(index) = handle(weak) else {
        return Ok(None);
    };
    let config = index.inner.config.clone();
    let (dim, metric) = (index.dim(), index.metric());
    let bound = index.read().slot_bound();
    drop(index);
    // The live slots and the versions of their items, a chunk at a time.
    let mut slots: Vec<(u64, u64)> = Vec::new();
    let mut start = 0;
    while start < bound {
        let Some(index) = handle(weak) else {
            return Ok(None);
        };
        let state = index.read();
        slots.extend(
            state
                .entries_in(start..start + GATHER_CHUNK)
                .map(|(s, e)| (s, e.origin)),
        );
        start += GATHER_CHUNK;
    }
    let n = slots.len();
    if n == 0 {
        return Ok(None);
    }
    let pq = matches!(config.index_type(), IndexType::IvfPq { .. });
    let n_lists = match config.lists() {
        0 => ivf::auto_n_lists(n, pq),
        l => l,
    }
    .min(n);
    // The sample k-means would draw from every vector, read instead of every vector.
    let wanted = n_lists
        .saturating_mul(ivf::auto_train_points_per_list(pq))
        .min(n);
    let mut rng = rand::rngs::StdRng::seed_from_u64(TRAINING_SEED);
    let mut picked = sample(&mut rng, n, wanted).into_vec();
    picked.sort_unstable();
    let picked: Vec<(u64, u64)> = picked.into_iter().map(|i| slots[i]).collect();
    let Some((_, mut data)) = read_vectors(weak, &picked, dim)? else {
        return Ok(None);
    };
    prepare_rows(&mut data, dim, metric);
    let options = TrainOptions::default();
    let quantizer = fit(&config, &data, n_lists, &options);
    let sample_lists = quantizer.assign_batch(&data);
    let coder = train_codec(&config, &quantizer, &data, &sample_lists, TRAINING_SEED);
    drop(data);
    // Every item read, assigned to the new lists a chunk at a time.
    let mut read = vec![(u64::MAX, u32::MAX); bound as usize];
    for chunk in slots.chunks(READ_CHUNK * 2) {
        let Some((kept, mut vectors)) = read_vectors(weak, chunk, dim)? else {
            return Ok(None);
        };
        prepare_rows(&mut vectors, dim, metric);
        for (&(slot, origin), list) in kept.iter().zip(quantizer.assign_batch(&vectors)) {
            read[slot as usize] = (origin, list);
        }
    }
    Ok(Some(Fitted {
        quantizer,
        coder,
        read,
    }))
}

/// The vectors of the items in `slots` whose versions are still those given (slot,
/// origin), a chunk at a time under the read lock: the items found and their vectors,
/// row-major. `None` when every handle was dropped.
#[allow(clippy::type_complexity)]
fn read_vectors(
    weak: &Weak<Inner>,
    slots: &[(u64, u64)],
    dim: usize,
) -> Result<Option<(Vec<(u64, u64)>, Vec<f32>)>> {
    let mut kept = Vec::with_capacity(slots.len());
    let mut out = Vec::with_capacity(slots.len() * dim);
    for chunk in slots.chunks(READ_CHUNK) {
        let Some(index) = handle(weak) else {
            return Ok(None);
        };
        let state = index.read();
        let same: Vec<(u64, u64)> = chunk
            .iter()
            .copied()
            .filter(|&(s, origin)| state.entry(s).is_some_and(|e| e.origin == origin))
            .collect();
        let wanted: Vec<u64> = same.iter().map(|&(s, _)| s).collect();
        out.extend(Lists::new(&state).vectors_of(&wanted)?);
        kept.extend(same);
    }
    Ok(Some((kept, out)))
}

impl EncryptedIndex {
    /// Installs the lists of a background training (begun when `rewrites` whole rewrites had
    /// run) in one rewrite under the writer lock: items read by the training keep the list
    /// it chose, items written since are assigned here.
    fn install(&self, fitted: Fitted, rewrites: u64) -> Result<Installed> {
        let _writer = match self.writer() {
            Ok(w) => w,
            // Deleted, or read-only: nothing to install into.
            Err(Error::IndexNotFound | Error::ReadOnly | Error::Locked) => {
                return Ok(Installed::NotDue);
            }
            Err(e) => return Err(e),
        };
        if self.inner.upkeep.rewrites() != rewrites {
            return Ok(Installed::Rewritten);
        }
        if !self.training_due() {
            return Ok(Installed::NotDue);
        }
        let state = self.read();
        let slots: Vec<u64> = state.entries().map(|(s, _)| s).collect();
        let mut assignments = Vec::with_capacity(slots.len());
        let mut pending = Vec::new();
        for (i, &s) in slots.iter().enumerate() {
            let origin = state.entry(s).map_or(u64::MAX, |e| e.origin);
            match fitted.read.get(s as usize) {
                Some(&(o, list)) if o == origin && list != u32::MAX => assignments.push(list),
                _ => {
                    assignments.push(0);
                    pending.push(i);
                }
            }
        }
        let vectors = Lists::new(&state).vectors_of(&slots)?;
        let dim = self.dim();
        if !pending.is_empty() {
            let mut rows = Vec::with_capacity(pending.len() * dim);
            for &i in &pending {
                rows.extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
            }
            prepare_rows(&mut rows, dim, self.metric());
            for (&i, list) in pending.iter().zip(fitted.quantizer.assign_batch(&rows)) {
                assignments[i] = list;
            }
        }
        let items = slots.len();
        let crypto = (state.keys().clone(), state.header().clone());
        let trained = Some((fitted.quantizer, fitted.coder));
        self.rewrite(state, &slots, &vectors, trained, &assignments, crypto)?;
        self.inner.upkeep.lock().trained_at = Some(items);
        Ok(Installed::Yes(items))
    }
}
