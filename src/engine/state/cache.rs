//! [`ListCache`]: the byte-bounded, least-recently-used cache of lists decrypted on demand
//! (an `ivf_flat` index whose vectors do not fit the cache budget).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::MemList;

/// Decrypted lists of a non-resident index, bounded in bytes, least recently used evicted.
pub(crate) struct ListCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    lists: HashMap<u32, (Arc<MemList>, u64)>,
    bytes: usize,
    clock: u64,
}

impl ListCache {
    /// An empty cache of at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> ListCache {
        ListCache {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The most bytes the cache holds.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `list` is cached (without marking it used).
    pub(crate) fn contains(&self, list: u32) -> bool {
        self.lock().lists.contains_key(&list)
    }

    /// A cached list, marked as recently used.
    pub(crate) fn get(&self, list: u32) -> Option<Arc<MemList>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.lists.get_mut(&list).map(|(l, used)| {
            *used = now;
            l.clone()
        })
    }

    /// Caches a list, evicting the least recently used ones past the budget (a list larger
    /// than the whole budget is not kept).
    pub(crate) fn put(&self, list: u32, decoded: Arc<MemList>) {
        let size = decoded.bytes();
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.lists.insert(list, (decoded, now)) {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((&victim, _)) = inner.lists.iter().min_by_key(|(_, (_, used))| *used) else {
                break;
            };
            if let Some((old, _)) = inner.lists.remove(&victim) {
                inner.bytes -= old.bytes();
            }
        }
    }

    /// Drops a list whose contents changed. Takes the cache exclusively (the state's writer
    /// holds it so), which needs no lock: a load or a write calls this for every item it
    /// inserts, where a lock and a hash of the list number per item were 6% of an open.
    pub(crate) fn invalidate(&mut self, list: u32) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.lists.is_empty() {
            return;
        }
        if let Some((old, _)) = inner.lists.remove(&list) {
            inner.bytes -= old.bytes();
        }
    }

    /// Bytes held.
    #[cfg(feature = "internals")]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rows: usize) -> Arc<MemList> {
        let mut l = MemList::default();
        for r in 0..rows {
            l.push(r as u64, Some(&[1.0, 2.0]), &[]);
        }
        Arc::new(l)
    }

    #[test]
    fn cache_evicts_least_recently_used_within_budget() {
        let one = list(10).bytes();
        let mut cache = ListCache::new(3 * one);
        for l in 0..3 {
            cache.put(l, list(10));
        }
        assert_eq!(cache.bytes(), 3 * one);
        assert!(cache.get(0).is_some()); // 0 is now the most recent
        cache.put(3, list(10)); // evicts 1, the least recently used
        assert!(cache.get(1).is_none());
        assert!(cache.get(0).is_some() && cache.get(2).is_some() && cache.get(3).is_some());
        assert_eq!(cache.bytes(), 3 * one);
        cache.invalidate(0);
        assert!(cache.get(0).is_none());
        assert_eq!(cache.bytes(), 2 * one);
        cache.put(9, list(100)); // larger than the whole budget: not kept
        assert!(cache.get(9).is_none());
    }
}
