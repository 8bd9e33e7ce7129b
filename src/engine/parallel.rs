//! The thread pool that parallel work runs on, in a process made by `fork` too.
//!
//! Rayon's global pool is a set of threads of the process that started it. A child made by
//! `fork` (Python's `multiprocessing` forks by default on Linux before 3.14: open an index,
//! then hand it to a `Pool`) inherits the pool's bookkeeping but none of its threads, so its
//! first parallel call queues work that no thread ever takes and waits forever (measured: a
//! `query` of 64 vectors in a forked child never returned). Every operation of the facade
//! that has parallel sections (open and refresh, writes, training, compaction, rotations,
//! batch queries, full-text builds, prefetches from a remote store) runs them through
//! [`install`]: on the global pool in the process that first used the crate, and in any
//! other process on a pool of that process's own, built on first use.

use std::sync::{Arc, Mutex, OnceLock};

/// The process that first used the crate: its global pool has threads.
static FIRST_PROCESS: OnceLock<u32> = OnceLock::new();

/// The pool of a process forked from [`FIRST_PROCESS`] (or from another child), with the
/// process it was built in.
static CHILD_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// Notes the current process as the one whose global pool works, unless one was noted:
/// called when a `Database` is made, so that a process that forks after opening an index
/// but before any parallel work is known as the parent.
pub(crate) fn note_process() {
    FIRST_PROCESS.get_or_init(std::process::id);
}

/// Runs `work` (which may use rayon's parallel iterators) where they have threads to run
/// on: as it is inside a pool's thread or in the first process, else on this process's own
/// pool.
pub(crate) fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return work();
    }
    let pid = std::process::id();
    if *FIRST_PROCESS.get_or_init(|| pid) == pid {
        return work();
    }
    match child_pool(pid) {
        Some(pool) => pool.install(work),
        // No thread could be started: the work runs as before (it waits if it is parallel).
        None => work(),
    }
}

/// This process's own pool, built on first use (one thread per core, as the global pool).
fn child_pool(pid: u32) -> Option<Arc<rayon::ThreadPool>> {
    let mut slot = CHILD_POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((owner, pool)) = slot.as_ref()
        && *owner == pid
    {
        return Some(pool.clone());
    }
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().ok()?);
    // A pool inherited from the process this one forked from has no threads here: it is
    // left as it is rather than shut down.
    if let Some(stale) = slot.replace((pid, pool.clone())) {
        std::mem::forget(stale);
    }
    Some(pool)
}
