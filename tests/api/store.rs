//! A user-provided `Store`: the whole lifecycle through `Database::with_store`, the store
//! contract, writer locks across databases, failures that leave the index as it was, and no
//! plaintext in any object.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ciphervec::{
    Database, Error, Include, IndexConfig, IndexKey, Item, MemoryStore, Metric, Query, Store,
};
use serde_json::json;

use super::common::*;

/// A store written here, as a user would: objects in a `MemoryStore`, with a switch that
/// makes the n-th write from now fail, and a count of calls.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_write_in: AtomicUsize,
    calls: AtomicUsize,
}

impl FlakyStore {
    fn write_allowed(&self) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.fail_write_in.load(Ordering::SeqCst) {
            0 => Ok(()),
            1 => {
                self.fail_write_in.store(0, Ordering::SeqCst);
                Err(io::Error::other("injected failure"))
            }
            n => {
                self.fail_write_in.store(n - 1, Ordering::SeqCst);
                Ok(())
            }
        }
    }
}

impl Store for FlakyStore {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.get(name)
    }
    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.write_allowed()?;
        self.inner.put_new(name, data)
    }
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.write_allowed()?;
        self.inner.put(name, data)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
}

#[test]
fn the_memory_store_keeps_the_contract() {
    let s = MemoryStore::new();
    assert_eq!(s.get("a/x").unwrap_err().kind(), io::ErrorKind::NotFound);
    s.put_new("a/x", b"one").unwrap();
    assert_eq!(
        s.put_new("a/x", b"two").unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(s.get("a/x").unwrap(), b"one");
    s.put("a/x", b"three").unwrap();
    s.put("b/y", b"four").unwrap();
    assert_eq!(s.get_range("a/x", 1..4).unwrap(), b"hre");
    assert_eq!(
        s.get_range("a/x", 3..9).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    assert_eq!(s.list("a/").unwrap(), ["a/x"]);
    assert_eq!(s.list("").unwrap().len(), 2);
    assert!(s.lock("a/LOCK").unwrap());
    assert!(!s.lock("a/LOCK").unwrap());
    s.unlock("a/LOCK").unwrap();
    assert!(s.lock("a/LOCK").unwrap());
    s.delete("a/x").unwrap();
    s.delete("a/x").unwrap();
    assert_eq!(s.list("a/").unwrap(), ["a/LOCK"]);
}

#[test]
fn an_index_lives_its_whole_life_in_a_user_store() {
    let store = Arc::new(FlakyStore::default());
    let key = IndexKey::generate();
    let mut rng = Rng::new(21);
    let data = clustered(&mut rng, 800, 8, 6);
    let batch: Vec<Item> = items(&data)
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            it.with_metadata(json!({"item_number": i}))
                .with_contents(format!("secret text {i}"))
        })
        .collect();
    {
        let db = Database::with_store(store.clone());
        let index = db
            .create_index("docs", &key, IndexConfig::ivf_sq8(8))
            .unwrap();
        index.upsert(batch[..500].to_vec()).unwrap();
        index.train().unwrap();
        index.upsert(batch[500..].to_vec()).unwrap();
        assert_eq!(index.delete(&["item-3"]).unwrap(), 1);
        // A second database over the same store is another writer: locked out.
        let other = Database::with_store(store.clone());
        assert!(matches!(other.open_index("docs", &key), Err(Error::Locked)));
        assert_eq!(other.list_indexes().unwrap(), ["docs"]);
        index.compact().unwrap();
        let reader = other.open_index_read_only("docs", &key).unwrap();
        assert_eq!(reader.len(), 799);
    }
    // The writer handle is gone: its lock with it.
    let db = Database::with_store(store.clone());
    assert!(matches!(
        db.open_index("docs", &IndexKey::generate()),
        Err(Error::WrongKey)
    ));
    let index = db.open_index("docs", &key).unwrap();
    assert_eq!(index.len(), 799);
    for qi in [0, 250, 777] {
        let q = &data[qi];
        let hits = index
            .query(
                &Query::new(q.clone())
                    .top_k(5)
                    .n_probes(1000)
                    .filter(json!({"item_number": {"$ne": 3}})),
            )
            .unwrap();
        let mut want = brute_force(Metric::Euclidean, &data, q, 6);
        want.retain(|(i, _)| *i != 3);
        want.truncate(5);
        assert_matches_oracle(&hits, &want);
    }
    let got = index.get(&["item-9"], Include::CONTENTS).unwrap();
    assert_eq!(got[0].contents.as_deref(), Some(&b"secret text 9"[..]));
    // No plaintext in any object (needles long enough that ciphertext does not hold them
    // by chance: a 3-byte one matched a segment now and then).
    for name in store.inner.list("").unwrap() {
        let bytes = store.inner.get(&name).unwrap();
        for needle in [&b"secret text"[..], b"item-9", b"\"item_number\""] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{name}");
        }
    }
    drop(index);
    db.delete_index("docs", &key).unwrap();
    assert!(store.inner.list("docs/").unwrap().is_empty());
    assert!(db.list_indexes().unwrap().is_empty());
}

#[test]
fn a_failing_store_write_leaves_the_index_as_it_was() {
    let store = Arc::new(FlakyStore::default());
    let key = IndexKey::generate();
    let mut rng = Rng::new(5);
    let data = clustered(&mut rng, 300, 4, 3);
    let db = Database::with_store(store.clone());
    let index = db
        .create_index("f", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    index.upsert(items(&data[..200])).unwrap();
    // Fail the first and then the second write of each further upsert.
    for n in 1..=2 {
        store.fail_write_in.store(n, Ordering::SeqCst);
        let err = index.upsert(items(&data)[200..].to_vec()).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        assert_eq!(index.len(), 200);
    }
    drop(index);
    let index = Database::with_store(store.clone())
        .open_index("f", &key)
        .unwrap();
    assert_eq!(index.len(), 200);
    index.upsert(items(&data)[200..].to_vec()).unwrap();
    assert_eq!(index.len(), 300);
    assert!(store.calls.load(Ordering::Relaxed) > 0);
}

#[test]
fn the_memory_store_replaces_only_the_version_it_was_given() {
    let s = MemoryStore::new();
    s.put_new("a/m", b"one").unwrap();
    let (bytes, v1) = s.get_versioned("a/m").unwrap();
    assert_eq!(bytes, b"one");
    let v1 = v1.expect("the memory store has versions");
    let v2 = s.put_if_version("a/m", b"two", &v1).unwrap().unwrap();
    assert_ne!(v1, v2);
    // The old version no longer matches; nothing is written.
    assert_eq!(s.put_if_version("a/m", b"three", &v1).unwrap(), None);
    assert_eq!(s.get("a/m").unwrap(), b"two");
    // Any write moves the version on; a missing object matches no version.
    s.put("a/m", b"four").unwrap();
    assert_eq!(s.put_if_version("a/m", b"five", &v2).unwrap(), None);
    assert_eq!(s.put_if_version("a/gone", b"x", &v2).unwrap(), None);
    assert_eq!(s.get("a/m").unwrap(), b"four");
}

/// Items `from..to` of `data`, with their ids.
fn range_items(data: &[Vec<f32>], from: usize, to: usize) -> Vec<Item> {
    (from..to)
        .map(|i| Item::new(format!("item-{i}"), data[i].clone()))
        .collect()
}

/// A writer that dies without releasing its lease blocks others only until the lease
/// expires; then the next writer takes it over and writes.
#[test]
fn a_dead_writers_lease_expires_and_another_writer_takes_over() {
    let lease = std::time::Duration::from_millis(400);
    let store = Arc::new(MemoryStore::with_lease_duration(lease));
    let key = IndexKey::generate();
    let data = clustered(&mut Rng::new(5), 20, 4, 2);
    let db = Database::with_store(store.clone());
    let first = db
        .create_index("l", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    first.upsert(range_items(&data, 0, 10)).unwrap();
    // The process dies: nothing releases its lease.
    std::mem::forget(first);
    let other = Database::with_store(store.clone());
    assert!(matches!(other.open_index("l", &key), Err(Error::Locked)));
    std::thread::sleep(lease + std::time::Duration::from_millis(100));
    let second = other.open_index("l", &key).unwrap();
    second.upsert(range_items(&data, 10, 20)).unwrap();
    assert_eq!(second.len(), 20);
    // Its lease holds others off while it lives, and is released when it is dropped.
    assert!(matches!(
        Database::with_store(store.clone()).open_index("l", &key),
        Err(Error::Locked)
    ));
    drop(second);
    let third = Database::with_store(store).open_index("l", &key).unwrap();
    assert_eq!(third.len(), 20);
}

/// A writer idle for more than half its lease (so that it may have expired) releases it on
/// drop by marking it expired: the next writer need not wait for the expiry.
#[test]
fn an_idle_writer_releases_its_lease_on_drop() {
    let lease = std::time::Duration::from_secs(2);
    let store = Arc::new(MemoryStore::with_lease_duration(lease));
    let key = IndexKey::generate();
    let idle = Database::with_store(store.clone())
        .create_index("i", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    std::thread::sleep(lease * 3 / 5);
    drop(idle);
    // Unreleased, the lease would hold for most of a second more, and the open (which waits
    // 100 ms for a lock) would be `Locked`.
    Database::with_store(store).open_index("i", &key).unwrap();
}

/// A writer that stalls past its lease loses it to another writer: its next write is
/// refused with `Locked`, writes nothing, and removes nothing of the new writer's, although
/// both would use the same next segment number.
#[test]
fn a_stalled_writer_whose_lease_was_taken_over_cannot_write() {
    let lease = std::time::Duration::from_millis(300);
    let store = Arc::new(MemoryStore::with_lease_duration(lease));
    let key = IndexKey::generate();
    let data = clustered(&mut Rng::new(6), 30, 4, 2);
    let stalled = Database::with_store(store.clone())
        .create_index("s", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    stalled.upsert(range_items(&data, 0, 10)).unwrap();
    std::thread::sleep(lease + std::time::Duration::from_millis(100));
    let taker = Database::with_store(store.clone())
        .open_index("s", &key)
        .unwrap();
    taker.upsert(range_items(&data, 10, 20)).unwrap();
    assert!(matches!(
        stalled.upsert(range_items(&data, 20, 30)),
        Err(Error::Locked)
    ));
    assert!(matches!(stalled.delete(&["item-0"]), Err(Error::Locked)));
    taker.upsert(range_items(&data, 20, 25)).unwrap();
    drop(taker);
    drop(stalled);
    let reader = Database::with_store(store)
        .open_index_read_only("s", &key)
        .unwrap();
    let mut ids = reader.list_ids().unwrap();
    ids.sort();
    let mut expected: Vec<String> = (0..25).map(|i| format!("item-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "every acknowledged write, nothing else");
}

/// The manifest is replaced only over the version its writer read: a manifest changed
/// behind the writer (a race the lease should have prevented) makes its commit fail with
/// `Locked`, and the stored index stays what the other change made it.
#[test]
fn a_manifest_changed_behind_the_writer_refuses_its_commit() {
    let store = Arc::new(MemoryStore::new());
    let key = IndexKey::generate();
    let data = clustered(&mut Rng::new(7), 20, 4, 2);
    let writer = Database::with_store(store.clone())
        .create_index("m", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    writer.upsert(range_items(&data, 0, 10)).unwrap();
    // Another party rewrites the manifest (same bytes, a new version).
    let manifest = store.get("m/MANIFEST").unwrap();
    store.put("m/MANIFEST", &manifest).unwrap();
    assert!(matches!(
        writer.upsert(range_items(&data, 10, 20)),
        Err(Error::Locked)
    ));
    assert_eq!(store.get("m/MANIFEST").unwrap(), manifest);
    drop(writer);
    let reader = Database::with_store(store)
        .open_index_read_only("m", &key)
        .unwrap();
    // The refused commit's segment may be rolled forward (it is authentic and newer), as
    // after a crash between segment and manifest; nothing else changed.
    let n = reader.len();
    assert!(n == 10 || n == 20, "{n}");
}

/// A store that counts what it serves: whole-object reads of segments, and bytes by range.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    whole_segment_reads: AtomicUsize,
    range_bytes: AtomicUsize,
    /// Whole-object reads with a version (the manifest) that set no bound.
    unbounded_reads: AtomicUsize,
}

impl Store for CountingStore {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        if name.contains("seg-") {
            self.whole_segment_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> io::Result<Vec<u8>> {
        let bytes = self.inner.get_range(name, range)?;
        self.range_bytes.fetch_add(bytes.len(), Ordering::Relaxed);
        Ok(bytes)
    }
    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put_new(name, data)
    }
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put(name, data)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        self.unbounded_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_versioned(name)
    }
    fn get_versioned_at_most(&self, name: &str, max: u64) -> io::Result<(Vec<u8>, Option<String>)> {
        self.inner.get_versioned_at_most(name, max)
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.size(name)
    }
    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        self.inner.put_if_version(name, data, version)
    }
}

/// Objects planted in a store are never read whole: a manifest longer than any index
/// writes is `Corrupted` without being read (the store refuses it from its length), and a
/// large segment no manifest names is read by range (its head and footer), not downloaded.
#[test]
fn planted_large_objects_are_refused_or_read_by_range() {
    let store = Arc::new(CountingStore::default());
    let key = IndexKey::generate();
    let index = Database::with_store(store.clone())
        .create_index("docs", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    index
        .upsert(vec![Item::new("a", vec![1.0, 2.0, 3.0, 4.0])])
        .unwrap();
    drop(index);
    let segments = store.inner.list("docs/seg-").unwrap();
    let next = segments.len() as u64 + 1;
    let planted = format!("docs/seg-{next:016x}.cvs");
    store.inner.put_new(&planted, &vec![7u8; 32 << 20]).unwrap();
    store.range_bytes.store(0, Ordering::SeqCst);
    store.unbounded_reads.store(0, Ordering::SeqCst);
    let reader = Database::with_store(store.clone())
        .open_index_read_only("docs", &key)
        .unwrap();
    assert_eq!(reader.list_ids().unwrap(), vec!["a"]);
    assert_eq!(store.whole_segment_reads.load(Ordering::SeqCst), 0);
    assert!(store.range_bytes.load(Ordering::SeqCst) < 1 << 20);
    store.inner.delete(&planted).unwrap();
    let manifest = store.inner.get("docs/MANIFEST").unwrap();
    let mut huge = manifest.clone();
    huge.resize((64 << 20) + 1, 0);
    store.inner.put("docs/MANIFEST", &huge).unwrap();
    for write in [false, true] {
        let db = Database::with_store(store.clone());
        let opened = if write {
            db.open_index("docs", &key)
        } else {
            db.open_index_read_only("docs", &key)
        };
        assert!(
            matches!(&opened, Err(Error::Corrupted { what }) if what.contains("larger")),
            "{:?}",
            opened.err()
        );
    }
    assert_eq!(store.unbounded_reads.load(Ordering::SeqCst), 0);
    store.inner.put("docs/MANIFEST", &manifest).unwrap();
    let index = Database::with_store(store.clone())
        .open_index("docs", &key)
        .unwrap();
    assert_eq!(index.len(), 1);
}

/// Opening an index from a store reads its segments by range, and only the records the
/// item table needs (with `cache_budget(0)`, no `ivf_flat` vectors); queries fetch their
/// lists on demand, once (the read cache holds them); every answer equals that of a
/// directory holding the same objects; a truncated segment object is `Corrupted`.
#[test]
fn an_index_in_a_store_opens_by_range_and_answers_as_a_directory_copy() {
    let store = Arc::new(CountingStore::default());
    let key = IndexKey::generate();
    let mut rng = Rng::new(5);
    let dim = 64;
    let data = clustered(&mut rng, 4000, dim, 12);
    {
        let index = Database::with_store(store.clone())
            .create_index("docs", &key, IndexConfig::ivf_flat(dim))
            .unwrap();
        index.upsert(range_items(&data, 0, 1000)).unwrap();
        index.train().unwrap();
        for from in (1000..4000).step_by(1000) {
            index.upsert(range_items(&data, from, from + 1000)).unwrap();
        }
    }
    let objects: Vec<(String, Vec<u8>)> = store
        .inner
        .list("docs/")
        .unwrap()
        .into_iter()
        .filter(|n| !n.ends_with("LOCK"))
        .map(|n| (n.clone(), store.inner.get(&n).unwrap()))
        .collect();
    // The first segment, superseded by training, stays for readers for a grace period;
    // the live ones are the others (names sort by number).
    let first = objects
        .iter()
        .filter(|(n, _)| n.contains("seg-"))
        .map(|(n, _)| n.clone())
        .min()
        .unwrap();
    let live: Vec<&(String, Vec<u8>)> = objects
        .iter()
        .filter(|(n, _)| n.contains("seg-") && *n != first)
        .collect();
    let segment_bytes: usize = live.iter().map(|(_, b)| b.len()).sum();
    // The same objects as a directory database.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    for (name, bytes) in &objects {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let local = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("docs", &key)
        .unwrap();

    store.whole_segment_reads.store(0, Ordering::SeqCst);
    store.range_bytes.store(0, Ordering::SeqCst);
    let options = ciphervec::DatabaseOptions::default().cache_budget(0);
    let remote = Database::with_store_options(store.clone(), options.clone())
        .open_index_read_only("docs", &key)
        .unwrap();
    let opened = store.range_bytes.load(Ordering::SeqCst);
    assert_eq!(store.whole_segment_reads.load(Ordering::SeqCst), 0);
    assert!(
        opened * 3 < segment_bytes,
        "the open fetched {opened} of {segment_bytes} segment bytes"
    );
    assert_eq!(remote.len(), local.len());
    for qi in (0..4000).step_by(397) {
        let query = Query::new(data[qi].clone()).top_k(10).n_probes(3);
        let before = store.range_bytes.load(Ordering::SeqCst);
        let hits = remote.query(&query).unwrap();
        let cold = store.range_bytes.load(Ordering::SeqCst) - before;
        let again = remote.query(&query).unwrap();
        let warm = store.range_bytes.load(Ordering::SeqCst) - before - cold;
        let want = local.query(&query).unwrap();
        let ids = |h: &[ciphervec::Hit]| {
            h.iter()
                .map(|h| (h.id.clone(), h.distance.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&hits), ids(&want), "query {qi}");
        assert_eq!(ids(&again), ids(&want), "query {qi}");
        assert_eq!(warm, 0, "a repeated query fetched {warm} bytes");
    }
    assert_eq!(store.whole_segment_reads.load(Ordering::SeqCst), 0);
    remote.verify().unwrap();

    // A flipped byte among a segment's vectors: a lazy open does not read it, `verify` does.
    let (name, bytes) = live[0];
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 3] ^= 1;
    store.inner.put(name, &damaged).unwrap();
    let reopened = Database::with_store_options(store.clone(), options)
        .open_index_read_only("docs", &key)
        .unwrap();
    let err = reopened.verify().unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");

    // A truncated segment object: the open says Corrupted.
    store.inner.put(name, &bytes[..bytes.len() - 100]).unwrap();
    let err = Database::with_store(store.clone())
        .open_index_read_only("docs", &key)
        .unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
}

/// A reader that reads lists on demand keeps answering from the state it holds after the
/// writer compacts (the superseded segments stay in the store for a grace period), then
/// `refresh` moves it to the compacted state.
#[test]
fn a_lazy_reader_survives_a_compaction_until_it_refreshes() {
    let store = Arc::new(MemoryStore::new());
    let key = IndexKey::generate();
    let mut rng = Rng::new(8);
    let data = clustered(&mut rng, 2000, 16, 8);
    let writer = Database::with_store(store.clone())
        .create_index("docs", &key, IndexConfig::ivf_flat(16))
        .unwrap();
    writer.upsert(range_items(&data, 0, 1000)).unwrap();
    writer.train().unwrap();
    writer.upsert(range_items(&data, 1000, 2000)).unwrap();
    let options = ciphervec::DatabaseOptions::default().cache_budget(0);
    let reader = Database::with_store_options(store.clone(), options)
        .open_index_read_only("docs", &key)
        .unwrap();
    let queries: Vec<Query> = (0..2000)
        .step_by(199)
        .map(|i| Query::new(data[i].clone()).top_k(5).n_probes(2))
        .collect();
    let ids = |index: &ciphervec::EncryptedIndex| -> Vec<Vec<String>> {
        queries
            .iter()
            .map(|q| index.query(q).unwrap().into_iter().map(|h| h.id).collect())
            .collect()
    };
    let before = ids(&writer);
    writer.delete(&["item-0", "item-1"]).unwrap();
    writer.compact().unwrap();
    // The reader has fetched nothing of most lists yet: it reads them now, from the
    // superseded segments.
    assert_eq!(ids(&reader), before);
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 1998);
    assert_eq!(ids(&reader), ids(&writer));
}

/// Leftovers of a creation that crashed before its manifest are removed at once when the
/// index is created again (its first segment takes the same name), unlike segments a
/// commit superseded, which stay for readers.
#[test]
fn a_crashed_creations_leftover_segment_does_not_block_the_new_index() {
    let store = Arc::new(MemoryStore::new());
    store
        .put_new("docs/seg-0000000000000001.cvs", b"torn")
        .unwrap();
    let key = IndexKey::generate();
    let index = Database::with_store(store.clone())
        .create_index("docs", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    index
        .upsert(vec![Item::new("a", vec![1.0, 2.0, 3.0, 4.0])])
        .unwrap();
    assert_eq!(index.len(), 1);
}

/// A store over a shared `MemoryStore` that runs a hook (once) when it is next asked for a
/// listing: a reader's refresh lists the store after reading the manifest, so the hook's
/// writes land between the two, as a writer in another process may.
struct ListHookStore {
    inner: Arc<MemoryStore>,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Store for ListHookStore {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> io::Result<Vec<u8>> {
        self.inner.get_range(name, range)
    }
    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put_new(name, data)
    }
    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.put(name, data)
    }
    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.list(prefix)
    }
    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        self.inner.get_versioned(name)
    }
    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        self.inner.put_if_version(name, data, version)
    }
}

/// A writer that rotates the data key and writes again between a reader's read of the
/// manifest and its listing: the new segments do not open under the keys of the manifest
/// the reader read. That is a commit racing the reader, not damage: `refresh`,
/// `check_anchor` and `verify` read the new manifest and go on (they answered `Corrupted`).
#[test]
fn a_reader_racing_a_writers_rotation_reads_the_new_commit() {
    let shared = Arc::new(MemoryStore::new());
    let key = IndexKey::generate();
    let mut rng = Rng::new(12);
    let data = clustered(&mut rng, 300, 8, 4);
    let writer = Database::with_store(shared.clone())
        .create_index("docs", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    writer.upsert(range_items(&data, 0, 100)).unwrap();
    let hooked = Arc::new(ListHookStore {
        inner: shared.clone(),
        hook: Default::default(),
    });
    let reader = Database::with_store(hooked.clone())
        .open_index_read_only("docs", &key)
        .unwrap();
    let race = |from: usize| -> Box<dyn FnOnce() + Send> {
        let (writer, items) = (writer.clone(), range_items(&data, from, from + 100));
        Box::new(move || {
            writer.rotate_data_key().unwrap();
            writer.upsert(items).unwrap();
        })
    };
    *hooked.hook.lock().unwrap() = Some(race(100));
    assert!(reader.refresh().unwrap());
    assert!(hooked.hook.lock().unwrap().is_none(), "the race ran");
    assert_eq!(reader.len(), 200);
    assert_eq!(reader.anchor(), writer.anchor());

    *hooked.hook.lock().unwrap() = Some(race(200));
    reader.check_anchor(&reader.anchor()).unwrap();
    assert!(hooked.hook.lock().unwrap().is_none(), "the race ran");
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 300);
    let query = Query::new(data[250].clone()).top_k(3).n_probes(4);
    assert_eq!(reader.query(&query).unwrap(), writer.query(&query).unwrap());
}
