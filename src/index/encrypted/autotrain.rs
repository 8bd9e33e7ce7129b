//! Automatic training: what runs after every write (a background training when one is due,
//! else a split step, then compaction), the thread a background training runs on, and what
//! [`EncryptedIndex::training_status`] reports.
//!
//! A background training runs on a thread of its own with a rayon pool of its own (one
//! thread fewer than the cores, at least one), so that it neither waits for nor holds up the
//! global pool that queries and writes run on. What it does is in `retrain`. It holds only a
//! weak reference to the index between its steps, so dropping every handle ends it (at its
//! next step) and releases the writer lock.

use std::sync::{Arc, Weak};

use super::retrain::{self, Attempt};
use super::*;
use crate::engine::upkeep::{self, Due, Upkeep};
use crate::ivf;
use crate::model::training::TrainingStatus;

/// Times a background training starts over when a rewrite (a compaction, a rotation, an
/// explicit `train`) renumbered the items it read before it could install its lists; then
/// it leaves the next write to start it again.
const RESTARTS: usize = 2;

impl EncryptedIndex {
    /// Whether a training runs in the background now (see [`IndexConfig::auto_train`]).
    /// Writes and queries go on meanwhile; its lists are installed in one commit when it
    /// ends. Always `false` through a read-only handle or one inherited through `fork` (the
    /// training, if any, is the writer's).
    pub fn is_training(&self) -> bool {
        self.is_own_writer() && self.inner.upkeep.lock().running
    }

    /// What self-maintenance is doing and has done: whether a training runs in the
    /// background, the item count of the last training, and when the next automatic one
    /// starts (see [`TrainingStatus`]).
    pub fn training_status(&self) -> TrainingStatus {
        let (items, n_lists, trained_at) = {
            let state = self.read();
            let n_lists = state.quantizer().map_or(0, Quantizer::n_lists);
            (state.len(), n_lists, trained_at(&state, self.is_pq()))
        };
        let auto = self.inner.config.is_auto_train();
        let u = self.inner.upkeep.lock();
        TrainingStatus {
            // A reader or a forked child serves what the writer committed; the writer's
            // training runs elsewhere.
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

    /// Holds this index's background trainings at each stage (`internals::hold_training`).
    #[cfg(feature = "internals")]
    pub(crate) fn hold_training(&self, hold: crate::engine::upkeep::Hold) {
        self.inner.upkeep.set_hold(hold);
    }

    /// What self-maintenance has due now.
    pub(super) fn due(&self) -> Due {
        let state = self.read();
        let trained_at = trained_at(&state, self.is_pq());
        upkeep::due(state.len(), trained_at, self.inner.config.lists() == 0)
    }

    /// Whether the index outgrew the lists a background training just installed while it
    /// ran (see [`upkeep::catch_up_due`]).
    fn catch_up_due(&self) -> bool {
        let state = self.read();
        trained_at(&state, self.is_pq()).is_some_and(|at| upkeep::catch_up_due(state.len(), at))
    }

    /// Starts a background training unless one runs.
    fn start_training(&self) {
        let upkeep = self.inner.upkeep.clone();
        if !upkeep.try_start() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("ciphervec-train".into())
            .spawn({
                let upkeep = upkeep.clone();
                move || {
                    let outcome = run_training(&weak, &upkeep);
                    let mut u = upkeep.lock();
                    match outcome {
                        Ok(0) => {}
                        Ok(_) => u.last_error = None,
                        Err(e) => {
                            // Not again before the index has grown a little (a failing
                            // storage must not make every write start a training).
                            let items = handle(&weak).map_or(0, |index| index.len());
                            u.retry_at = items.saturating_add((items / 10).max(1_000));
                            u.last_error = Some(e.to_string());
                        }
                    }
                    drop(u);
                    upkeep.finish();
                }
            });
        if spawned.is_err() {
            // No thread: the next write tries again.
            upkeep.finish();
        }
    }
}

/// The item count the lists of `state` were trained at (`None`: untrained). Indexes
/// trained before the count was stored (format 7) count as trained at the largest size
/// whose automatic list count their lists are.
pub(super) fn trained_at(state: &State, pq: bool) -> Option<usize> {
    let q = state.quantizer()?;
    Some(match state.body().trained_at_items {
        0 => ivf::lists_default_up_to(q.n_lists(), pq).min(state.len()),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    })
}

/// Runs background trainings while one is due (the index may outgrow the lists of one
/// while it runs): how many installed new lists. Stops when every handle was dropped,
/// nothing is due, or rewrites made a snapshot stale more than [`RESTARTS`] times in a row.
fn run_training(weak: &Weak<Inner>, upkeep: &Upkeep) -> Result<u64> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ciphervec-train-{i}"))
        .build()
        .map_err(|_| Error::invalid_argument("no thread for a background training"))?;
    let (mut installed, mut stale) = (0, 0);
    while handle(weak)
        .is_some_and(|index| index.due() == Due::Train || (installed > 0 && index.catch_up_due()))
    {
        match pool.install(|| retrain::attempt(weak, upkeep))? {
            Attempt::Installed => {
                installed += 1;
                stale = 0;
                let mut u = upkeep.lock();
                u.trainings += 1;
                // List numbers name other lists now.
                u.unsplittable.clear();
            }
            Attempt::Gone => break,
            Attempt::Stale if stale < RESTARTS => stale += 1,
            Attempt::Stale => break,
        }
    }
    Ok(installed)
}
