//! Objects read by range from a [`Store`], through a bounded cache of their (encrypted)
//! bytes: how an index in object storage is opened without downloading its segments whole
//! and queried without a network round trip per probed list once warm.
//!
//! Segment objects are immutable (written once, names never reused), so a cached range can
//! never go stale. The cache holds aligned chunks of [`CHUNK`] bytes; a read fetches the
//! chunks it misses, each run of adjacent missing chunks in one ranged request. What it
//! holds is exactly what the store holds: ciphertext and clear headers.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::store::Store;

/// Bytes per cached chunk: small enough that a cold read of one list's records fetches
/// little beyond them, large enough that an open's contiguous reads take few requests
/// (adjacent chunks are fetched in one request anyway).
pub(crate) const CHUNK: u64 = 16 << 10;

/// The most chunks one request fetches (4 MiB): a longer run is split into requests that go
/// out together, each short enough for the store's per-request timeout (a resident open of a
/// 560 MiB segment was one request of it all and timed out).
const MAX_RUN: u64 = 256;

/// Adds chunk `c` (at least the last one added) to `runs` of adjacent chunks of at most
/// [`MAX_RUN`].
fn add_to_runs(runs: &mut Vec<Range<u64>>, c: u64) {
    match runs.last_mut() {
        Some(r) if r.end == c && r.end - r.start < MAX_RUN => r.end += 1,
        _ => runs.push(c..c + 1),
    }
}

/// A bounded, least-recently-used cache of object chunks, shared by every object of a store.
pub(crate) struct ChunkCache {
    limit: u64,
    inner: Mutex<CacheInner>,
}

/// A chunk's name: its object's and its number.
type ChunkKey = (Arc<str>, u64);

#[derive(Default)]
struct CacheInner {
    /// Chunk -> (bytes, last use).
    chunks: HashMap<ChunkKey, (Arc<[u8]>, u64)>,
    /// Last use -> chunk: the eviction order.
    by_use: BTreeMap<u64, ChunkKey>,
    bytes: u64,
    clock: u64,
    /// Requests and bytes fetched from the store (for benchmarks and tests).
    requests: u64,
    fetched: u64,
}

/// What a cache fetched from its store so far.
#[cfg(any(test, feature = "internals"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReadStats {
    /// Ranged requests made.
    pub requests: u64,
    /// Bytes those requests returned.
    pub bytes: u64,
}

impl ChunkCache {
    /// A cache of at most `limit` bytes.
    pub(crate) fn new(limit: u64) -> ChunkCache {
        ChunkCache {
            limit,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests and bytes fetched so far.
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn stats(&self) -> ReadStats {
        let inner = self.inner();
        ReadStats {
            requests: inner.requests,
            bytes: inner.fetched,
        }
    }

    fn get(&self, key: &ChunkKey) -> Option<Arc<[u8]>> {
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        let (bytes, used) = inner.chunks.get_mut(key)?;
        let (bytes, old) = (bytes.clone(), std::mem::replace(used, now));
        inner.by_use.remove(&old);
        inner.by_use.insert(now, key.clone());
        Some(bytes)
    }

    /// Drops every cached chunk of the objects whose names start with `prefix` (an index
    /// deleted: a new one of the same name reuses its object names).
    pub(crate) fn forget(&self, prefix: &str) {
        let mut inner = self.inner();
        let gone: Vec<(ChunkKey, u64)> = inner
            .chunks
            .iter()
            .filter(|(k, _)| k.0.starts_with(prefix))
            .map(|(k, (_, used))| (k.clone(), *used))
            .collect();
        for (key, used) in gone {
            if let Some((bytes, _)) = inner.chunks.remove(&key) {
                inner.bytes -= bytes.len() as u64;
            }
            inner.by_use.remove(&used);
        }
    }

    fn contains(&self, key: &ChunkKey) -> bool {
        self.inner().chunks.contains_key(key)
    }

    fn count_fetch(&self, bytes: u64) {
        let mut inner = self.inner();
        inner.requests += 1;
        inner.fetched += bytes;
    }

    fn insert(&self, key: ChunkKey, bytes: Arc<[u8]>) {
        let size = bytes.len() as u64;
        if size > self.limit {
            return;
        }
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, used)) = inner.chunks.insert(key.clone(), (bytes, now)) {
            inner.bytes -= old.len() as u64;
            inner.by_use.remove(&used);
        }
        inner.by_use.insert(now, key);
        inner.bytes += size;
        while inner.bytes > self.limit {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = inner.chunks.remove(&oldest) {
                inner.bytes -= evicted.len() as u64;
            }
        }
    }
}

/// One immutable object of a store, read by range through the store's chunk cache.
pub(crate) struct RemoteObject {
    store: Arc<dyn Store>,
    name: Arc<str>,
    len: u64,
    cache: Arc<ChunkCache>,
}

impl RemoteObject {
    /// The object `name` of `store`, `len` bytes long as the manifest says (a shorter object
    /// shows when a read reaches past its end).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        name: String,
        len: u64,
        cache: Arc<ChunkCache>,
    ) -> RemoteObject {
        RemoteObject {
            store,
            name: name.into(),
            len,
            cache,
        }
    }

    /// Puts the object's bytes (just written) into the cache, as far as they fit: the
    /// writer then reads back what it wrote without fetching it.
    pub(crate) fn seed(&self, bytes: &[u8]) {
        let fits = (self.cache.limit / CHUNK) as usize;
        for (c, piece) in bytes.chunks(CHUNK as usize).enumerate().take(fits) {
            self.cache
                .insert((self.name.clone(), c as u64), piece.into());
        }
    }

    /// Drops this object's cached chunks (they were found stale: see `persist::read_segment`).
    pub(crate) fn forget_cached(&self) {
        self.cache.forget(&self.name);
    }

    /// The whole object, in one request, past the cache.
    pub(crate) fn download(&self) -> io::Result<Vec<u8>> {
        let bytes = self.store.get(&self.name)?;
        self.cache.count_fetch(bytes.len() as u64);
        Ok(bytes)
    }

    /// The object's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes `range` of the object (within its length: callers check).
    pub(crate) fn read(&self, range: Range<u64>) -> io::Result<Cow<'static, [u8]>> {
        if range.is_empty() {
            return Ok(Cow::Borrowed(&[]));
        }
        let chunks = self.fetch(range.start / CHUNK..(range.end - 1) / CHUNK + 1)?;
        let base = (range.start / CHUNK) * CHUNK;
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for (i, chunk) in chunks.iter().enumerate() {
            let chunk_start = base + i as u64 * CHUNK;
            let from = range.start.saturating_sub(chunk_start) as usize;
            let to = (range.end - chunk_start).min(chunk.len() as u64) as usize;
            out.extend_from_slice(&chunk[from..to]);
        }
        Ok(Cow::Owned(out))
    }

    /// Fetches into the cache every chunk the `ranges` touch that it lacks: each run of
    /// adjacent missing chunks in one request, the runs together ([`Store::get_ranges`]).
    pub(crate) fn prefetch(&self, ranges: &[Range<u64>]) -> io::Result<()> {
        let mut wanted: Vec<u64> = ranges
            .iter()
            .filter(|r| !r.is_empty())
            .flat_map(|r| r.start / CHUNK..(r.end - 1) / CHUNK + 1)
            .filter(|&c| !self.cache.contains(&(self.name.clone(), c)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut runs: Vec<Range<u64>> = Vec::new();
        for c in wanted {
            add_to_runs(&mut runs, c);
        }
        self.fetch_runs(&runs).map(|_| ())
    }

    /// Chunks `chunks` (numbers), from the cache or fetched: the runs of missing chunks
    /// together, each in one ranged request.
    fn fetch(&self, chunks: Range<u64>) -> io::Result<Vec<Arc<[u8]>>> {
        let mut out: Vec<Option<Arc<[u8]>>> = chunks
            .clone()
            .map(|c| self.cache.get(&(self.name.clone(), c)))
            .collect();
        let mut runs: Vec<Range<u64>> = Vec::new();
        for (i, c) in chunks.clone().enumerate() {
            if out[i].is_none() {
                add_to_runs(&mut runs, c);
            }
        }
        for (c, piece) in self.fetch_runs(&runs)? {
            out[(c - chunks.start) as usize] = Some(piece);
        }
        out.into_iter()
            .map(|c| c.ok_or_else(|| io::Error::other("a chunk was not fetched")))
            .collect()
    }

    /// Fetches chunk runs `runs` (each in one request, all in one [`Store::get_ranges`]
    /// call), caches their chunks and returns them with their numbers.
    fn fetch_runs(&self, runs: &[Range<u64>]) -> io::Result<Vec<(u64, Arc<[u8]>)>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let byte_ranges: Vec<Range<u64>> = runs
            .iter()
            .map(|r| r.start * CHUNK..(r.end * CHUNK).min(self.len))
            .collect();
        let fetched = self.store.get_ranges(&self.name, &byte_ranges)?;
        let mut out = Vec::new();
        for ((run, range), bytes) in runs.iter().zip(&byte_ranges).zip(fetched) {
            self.cache.count_fetch(bytes.len() as u64);
            if bytes.len() as u64 != range.end - range.start {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the object is shorter than the manifest says",
                ));
            }
            for (k, piece) in bytes.chunks(CHUNK as usize).enumerate() {
                let piece: Arc<[u8]> = piece.into();
                let c = run.start + k as u64;
                self.cache.insert((self.name.clone(), c), piece.clone());
                out.push((c, piece));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    fn object(len: usize, cache: u64) -> (Vec<u8>, RemoteObject, Arc<ChunkCache>) {
        let store = MemoryStore::new();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        store.put_new("x/seg", &bytes).unwrap();
        let cache = Arc::new(ChunkCache::new(cache));
        let store: Arc<dyn Store> = Arc::new(store);
        let obj = RemoteObject::new(store, "x/seg".into(), len as u64, cache.clone());
        (bytes, obj, cache)
    }

    #[test]
    fn ranges_equal_the_object_and_warm_reads_fetch_nothing() {
        let len = 5 * CHUNK as usize + 123;
        let (bytes, obj, cache) = object(len, u64::MAX);
        let ranges = [
            0..1,
            0..len as u64,
            CHUNK - 3..CHUNK + 3,
            len as u64 - 10..len as u64,
            2 * CHUNK..3 * CHUNK,
            17..17,
        ];
        for r in ranges.clone() {
            let got = obj.read(r.clone()).unwrap();
            assert_eq!(&got[..], &bytes[r.start as usize..r.end as usize], "{r:?}");
        }
        let cold = cache.stats();
        for r in ranges {
            obj.read(r).unwrap();
        }
        assert_eq!(cache.stats(), cold, "warm reads fetch nothing");
        assert_eq!(cold.bytes, len as u64, "each byte fetched once");
    }

    #[test]
    fn prefetch_fetches_each_run_of_chunks_in_one_request() {
        let len = 10 * CHUNK as usize;
        let (_, obj, cache) = object(len, u64::MAX);
        // Chunks 0-1, 3 and 8-9: three runs.
        obj.prefetch(&[
            0..10,
            CHUNK + 1..CHUNK + 2,
            3 * CHUNK..3 * CHUNK + 1,
            8 * CHUNK..len as u64,
        ])
        .unwrap();
        assert_eq!(cache.stats().requests, 3);
        obj.read(0..2 * CHUNK).unwrap();
        assert_eq!(cache.stats().requests, 3);
    }

    #[test]
    fn a_long_run_goes_out_in_requests_of_at_most_max_run_chunks() {
        let chunks = 2 * MAX_RUN + 3;
        let len = (chunks * CHUNK) as usize;
        let (bytes, obj, cache) = object(len, u64::MAX);
        let everything = 0..len as u64;
        obj.prefetch(std::slice::from_ref(&everything)).unwrap();
        assert_eq!(cache.stats().requests, 3);
        assert_eq!(cache.stats().bytes, len as u64);
        assert_eq!(&obj.read(0..len as u64).unwrap()[..], &bytes[..]);
        assert_eq!(cache.stats().requests, 3, "all of it was cached");
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_reads_stay_right() {
        let len = 8 * CHUNK as usize;
        let (bytes, obj, _) = object(len, 2 * CHUNK);
        for round in 0..3 {
            for c in 0..8u64 {
                let r = c * CHUNK + 5..c * CHUNK + 50;
                assert_eq!(
                    &obj.read(r.clone()).unwrap()[..],
                    &bytes[r.start as usize..r.end as usize],
                    "{round}"
                );
            }
        }
        let inner = obj.cache.inner();
        assert!(inner.bytes <= 2 * CHUNK && inner.chunks.len() <= 2);
    }

    #[test]
    fn forgetting_an_object_refetches_it_and_keeps_the_others() {
        let len = 3 * CHUNK as usize;
        let (bytes, obj, cache) = object(len, u64::MAX);
        obj.read(0..len as u64).unwrap();
        cache.insert(("y/other".into(), 0), Arc::from(&b"kept"[..]));
        let before = cache.stats();
        obj.forget_cached();
        assert!(cache.contains(&("y/other".into(), 0)));
        assert_eq!(&obj.read(5..50).unwrap()[..], &bytes[5..50]);
        assert_eq!(cache.stats().requests, before.requests + 1);
        assert_eq!(cache.inner().bytes, CHUNK + 4);
    }

    #[test]
    fn a_shorter_object_is_invalid_data() {
        let store = MemoryStore::new();
        store.put_new("x/seg", &[1u8; 100]).unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let obj = RemoteObject::new(
            store,
            "x/seg".into(),
            200,
            Arc::new(ChunkCache::new(1 << 20)),
        );
        let e = obj.read(150..160).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        );
    }
}
