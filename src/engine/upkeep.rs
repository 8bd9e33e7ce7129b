//! Self-maintenance: when an index trains itself, retrains, and splits a list; the
//! bookkeeping of its background training (what it tells the user is `model::training::TrainingStatus`).
//!
//! The rules (measured with `examples/maintenance_bench.rs` on the 50,000 sentence
//! embeddings, 384 dimensions; figures in `docs/DESIGN.md`, Self-maintenance, and
//! `docs/BENCHMARKS.md`):
//!
//! - **First training**: an untrained index trains in the background once it holds
//!   [`AUTO_TRAIN_MIN_ITEMS`] items (the floor the API promises). Below that it stays exact.
//! - **Retraining**: a trained index retrains in the background once it holds
//!   [`RETRAIN_GROWTH`] times the items it was trained at, or a [`RETRAIN_GROWTH`]th of them
//!   (and at least [`AUTO_TRAIN_MIN_ITEMS`]): its list count is then the default of a size it
//!   no longer has. Each training rewrites every item, so twice the size keeps the bytes
//!   rewritten over any growth to about twice the final size.
//! - **Catching up**: a background training that installs its lists after the writes made
//!   meanwhile grew the index by [`CATCH_UP_GROWTH`] runs again at once (fast bulk loads
//!   outpace k-means: at 50,000 the first training, of 11,000 items, ended with all 50,000
//!   written, and left the index 8% slower than trained on all).
//! - **Splits** (between trainings, indexes whose list count is automatic): a list the last
//!   write added to that holds more than [`SPLIT_FACTOR`] times the mean list length the
//!   defaults give the current item count is split in two by a 2-means of its vectors; the
//!   new half takes the slot of the shortest list (fewer than a [`RECYCLE_DIVISOR`]th of that
//!   mean), whose items merge into their nearest lists, or else a new list number. Items of
//!   the [`SPLIT_NEIGHBOURS`] lists nearest the split one move to a new centroid when it is
//!   now their nearest (SPFresh's reassignment). Each step is one commit. Trained at 52% of
//!   the sentence embeddings and grown to all of them, splits at 1.5x kept queries at
//!   0.98-1.06x the speed of one training on all (910 lists against 894; 0.83-0.93x without
//!   them), recall@10 0.966 against 0.971; at 2x they kept 0.92x.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::ivf;

/// The fewest items at which an untrained index trains itself (never fewer: smaller indexes
/// stay exact unless `train` is called).
pub(crate) const AUTO_TRAIN_MIN_ITEMS: usize = 10_000;

/// A trained index retrains once its item count has grown (or shrunk) by this factor since
/// its training.
pub(crate) const RETRAIN_GROWTH: usize = 2;

/// A background training runs again at once when the index grew by this factor while it ran.
pub(crate) const CATCH_UP_GROWTH: f64 = 1.1;

/// A list splits once it holds more than this many times the mean list length of an index
/// trained at the current item count.
pub(crate) const SPLIT_FACTOR: f64 = 1.5;

/// A list shorter than the mean list length divided by this gives its slot to the new half
/// of a split list (its items move to their nearest lists).
pub(crate) const RECYCLE_DIVISOR: f64 = 4.0;

/// The fewest items a list must hold to be split (so that each half has enough points for
/// its centroid to mean something).
pub(crate) const MIN_SPLIT_LEN: usize = 64;

/// The most lists one maintenance step splits, so that a step stays a short pause of the
/// write that triggers it.
pub(crate) const MAX_SPLITS_PER_STEP: usize = 16;

/// Lists near a split list whose items may move to one of its halves.
pub(crate) const SPLIT_NEIGHBOURS: usize = 8;

/// What self-maintenance should do after a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing: maintenance is off, or nothing is out of bounds.
    Nothing,
    /// Train (or retrain) in the background.
    Train,
    /// Split the lists that grew past [`split_above`].
    Balance,
}

/// What is due for an index of `items` items, trained at `trained_at` items if trained
/// (`None`: not trained), whose lists are automatic (`auto_lists`: the configuration fixes
/// no list count, so splits may add lists).
pub(crate) fn due(items: usize, trained_at: Option<usize>, auto_lists: bool) -> Due {
    match trained_at {
        None if items >= AUTO_TRAIN_MIN_ITEMS => Due::Train,
        None => Due::Nothing,
        Some(at) => {
            let outgrown = items >= at.max(1).saturating_mul(RETRAIN_GROWTH)
                || items.saturating_mul(RETRAIN_GROWTH) <= at;
            if outgrown && items >= AUTO_TRAIN_MIN_ITEMS {
                Due::Train
            } else if auto_lists {
                Due::Balance
            } else {
                Due::Nothing
            }
        }
    }
}

/// After a background training installed lists trained at `trained_at` items while writes
/// went on: whether the index, now of `items` items, already outgrew them by
/// [`CATCH_UP_GROWTH`], so that another training runs at once (writes outpaced it).
pub(crate) fn catch_up_due(items: usize, trained_at: usize) -> bool {
    items >= AUTO_TRAIN_MIN_ITEMS && items as f64 >= CATCH_UP_GROWTH * trained_at as f64
}

/// The item count at which the next automatic training starts as the index grows, for an
/// index trained at `trained_at` items (`None`: untrained).
pub(crate) fn next_training_at(trained_at: Option<usize>) -> usize {
    match trained_at {
        None => AUTO_TRAIN_MIN_ITEMS,
        Some(at) => at
            .max(1)
            .saturating_mul(RETRAIN_GROWTH)
            .max(AUTO_TRAIN_MIN_ITEMS),
    }
}

/// The mean list length of an index trained with the default list count at `items` items.
pub(crate) fn mean_list_len(items: usize, pq: bool) -> f64 {
    items as f64 / ivf::auto_n_lists(items, pq) as f64
}

/// The length past which a list splits in an index of `items` items.
pub(crate) fn split_above(items: usize, pq: bool) -> usize {
    ((SPLIT_FACTOR * mean_list_len(items, pq)).ceil() as usize).max(MIN_SPLIT_LEN)
}

/// The length below which a list gives its slot to a split list's new half.
pub(crate) fn recycle_below(items: usize, pq: bool) -> usize {
    (mean_list_len(items, pq) / RECYCLE_DIVISOR).floor() as usize
}

/// The background training of one handle, and the counters its status reports.
#[derive(Default)]
pub(crate) struct Upkeep {
    state: Mutex<UpkeepState>,
    /// Signalled when a background training ends.
    idle: Condvar,
    /// Whole rewrites (training, compaction, rotation) so far: they renumber the item table,
    /// so a background training whose snapshot predates one starts over.
    rewrites: AtomicU64,
    /// Where a test holds the background training (`internals::hold_training`).
    #[cfg(feature = "internals")]
    hold: Mutex<Option<Hold>>,
}

/// A point where a background training can be held by a test (`internals`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The snapshot has read its first chunk of items and goes on reading.
    Reading,
    /// The snapshot's items are sealed into the new segment; the install comes next.
    Sealed,
}

/// A test's hold on a background training: it reports each [`Stage`] reached on `reached`
/// and waits for a message on `go`.
#[cfg(feature = "internals")]
pub(crate) struct Hold {
    pub reached: std::sync::mpsc::Sender<Stage>,
    pub go: std::sync::mpsc::Receiver<()>,
}

/// What [`Upkeep`] guards.
#[derive(Default)]
pub(crate) struct UpkeepState {
    /// A background training thread runs.
    pub running: bool,
    /// Installed background trainings.
    pub trainings: u64,
    /// Lists split.
    pub splits: u64,
    /// The last failure of a background step.
    pub last_error: Option<String>,
    /// After a failed background training: the item count before which it is not retried
    /// (so that a failing storage does not make every write start a training).
    pub retry_at: usize,
    /// Lists whose last split attempt found no two halves worth keeping, with their length
    /// then: tried again only once twice as long.
    pub unsplittable: HashMap<u32, usize>,
    /// The epoch of the commit that installed the last background training: while it is the
    /// newest commit, no write came after that training (see `train_with`).
    pub trained_epoch: Option<u64>,
}

impl Upkeep {
    /// Counts a whole rewrite of the index (see `rewrites`).
    pub(crate) fn note_rewrite(&self) {
        self.rewrites.fetch_add(1, Ordering::SeqCst);
    }

    /// Whole rewrites so far.
    pub(crate) fn rewrites(&self) -> u64 {
        self.rewrites.load(Ordering::SeqCst)
    }

    /// The guarded state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, UpkeepState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks a background training started; `false` if one already runs.
    pub(crate) fn try_start(&self) -> bool {
        let mut s = self.lock();
        if s.running {
            return false;
        }
        s.running = true;
        true
    }

    /// Marks the background training ended and wakes whoever waits for it.
    pub(crate) fn finish(&self) {
        self.lock().running = false;
        self.idle.notify_all();
    }

    /// At `stage` of a background training: waits while a test holds it there (a no-op
    /// unless a test installed a hold; the caller holds no lock of the index).
    pub(crate) fn pause_at(&self, stage: Stage) {
        #[cfg(feature = "internals")]
        {
            let hold = self
                .hold
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(h) = hold.as_ref()
                && h.reached.send(stage).is_ok()
            {
                let _ = h.go.recv();
            }
        }
        let _ = stage;
    }

    /// Installs a test's hold (see [`Upkeep::pause_at`]).
    #[cfg(feature = "internals")]
    pub(crate) fn set_hold(&self, hold: Hold) {
        *self
            .hold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hold);
    }

    /// Waits until no background training runs.
    pub(crate) fn wait_idle(&self) {
        let mut s = self.lock();
        while s.running {
            s = self
                .idle
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_indexes_stay_exact_and_grown_ones_retrain() {
        assert_eq!(due(9_999, None, true), Due::Nothing);
        assert_eq!(due(10_000, None, true), Due::Train);
        // Trained early (explicitly): lists follow the data until the threshold...
        assert_eq!(due(5_000, Some(1_000), true), Due::Balance);
        // ... then the index retrains at twice its training size.
        assert_eq!(due(19_999, Some(10_000), true), Due::Balance);
        assert_eq!(due(20_000, Some(10_000), true), Due::Train);
        assert_eq!(due(10_000, Some(1_000), true), Due::Train);
        // Shrunk to half, but not below the threshold.
        assert_eq!(due(20_000, Some(40_000), true), Due::Train);
        assert_eq!(due(9_000, Some(40_000), true), Due::Balance);
        // A fixed list count is retrained, never split.
        assert_eq!(due(15_000, Some(10_000), false), Due::Nothing);
        assert_eq!(due(25_000, Some(10_000), false), Due::Train);
        // A training outpaced by the writes runs again.
        assert!(!catch_up_due(10_999, 10_000));
        assert!(catch_up_due(11_000, 10_000));
        assert!(!catch_up_due(9_000, 1_000));
        assert_eq!(next_training_at(None), 10_000);
        assert_eq!(next_training_at(Some(10_000)), 20_000);
        assert_eq!(next_training_at(Some(1_000)), 10_000);
    }

    #[test]
    fn split_bounds_follow_the_default_list_length() {
        // 50,000 items: 894 default lists of about 56 items.
        assert_eq!(split_above(50_000, false), 84);
        assert_eq!(recycle_below(50_000, false), 13);
        // Small indexes: at least MIN_SPLIT_LEN (1,000 items: 25 lists of 40).
        assert_eq!(split_above(1_000, false), MIN_SPLIT_LEN);
        // PQ lists are 4x longer.
        assert!(split_above(1_000_000, true) > 3 * split_above(1_000_000, false));
    }
}
