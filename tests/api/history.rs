//! The history chain (format 8): a commit binds the one it extends, so a storage attacker
//! who puts an older `MANIFEST` back and lets a writer go on from it makes a fork that every
//! anchor and every reader of the abandoned history calls `RolledBack`; two histories are
//! never served together; a rotation put back on a store is rolled forward, never deleted.
//! Each case here was a confirmed hole of format 7 (issue 39).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ciphervec::{
    Database, DatabaseOptions, Error, IndexConfig, IndexKey, Item, MemoryStore, Store,
};

use super::common::*;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Puts the folder back as `backup` had it: its files rewritten, newer ones removed.
fn restore(dir: &Path, backup: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in backup {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    for name in files(dir).keys() {
        if !backup.contains_key(name) && name != "LOCK" {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
    }
}

fn batch(data: &[Vec<f32>], from: usize, n: usize) -> Vec<Item> {
    (from..from + n)
        .map(|i| Item::new(format!("item-{i}"), data[i].clone()))
        .collect()
}

fn sorted_ids(index: &ciphervec::EncryptedIndex) -> Vec<String> {
    let mut ids = index.list_ids().unwrap();
    ids.sort();
    ids
}

/// The fork: the epoch-2 state put back (MANIFEST and files), a writer that checks no anchor
/// appends three commits past the anchor's epoch. The anchor, a fresh open and the reader
/// that served epoch 4 all see that storage no longer holds epoch 4's commit; the reader
/// keeps serving its state.
#[test]
fn a_fork_from_an_older_state_is_rolled_back_for_anchors_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("f");
    let key = IndexKey::generate();
    let mut rng = Rng::new(39);
    let data = clustered(&mut rng, 40, 8, 2);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("f", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(batch(&data, 0, 4)).unwrap();
    let at_two = files(&folder);
    index.upsert(batch(&data, 4, 4)).unwrap();
    index.upsert(batch(&data, 8, 4)).unwrap();
    let anchor = index.anchor();
    assert_eq!(anchor.epoch(), 4);
    let served = sorted_ids(&index);
    drop(index);
    drop(db);
    // A reader in another process's place (another Database) serving epoch 4.
    let reader_db = Database::open(dir.path()).unwrap();
    let reader = reader_db.open_index_read_only("f", &key).unwrap();
    assert_eq!(sorted_ids(&reader), served);

    restore(&folder, &at_two);
    let db = Database::open(dir.path()).unwrap();
    let writer = db.open_index("f", &key).unwrap();
    for i in 0..3 {
        writer.upsert(batch(&data, 20 + 4 * i, 4)).unwrap();
    }
    assert!(writer.anchor().epoch() > anchor.epoch());
    assert!(matches!(
        writer.check_anchor(&anchor),
        Err(Error::RolledBack)
    ));
    let fresh = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("f", &key)
        .unwrap();
    assert!(matches!(
        fresh.check_anchor(&anchor),
        Err(Error::RolledBack)
    ));
    // The reader: RolledBack every time, never adopting the fork; it serves epoch 4.
    for _ in 0..2 {
        assert!(matches!(reader.refresh(), Err(Error::RolledBack)));
        assert_eq!(sorted_ids(&reader), served);
        assert!(matches!(
            reader.check_anchor(&anchor),
            Err(Error::RolledBack)
        ));
    }
    // The writer's own history is intact: its anchor holds, and a later one follows it.
    let own = writer.anchor();
    writer.upsert(batch(&data, 36, 2)).unwrap();
    writer.check_anchor(&own).unwrap();
    fresh.refresh().unwrap();
    fresh.check_anchor(&own).unwrap();
}

/// The splice: after the fork's first commit, the abandoned history's newest segment put
/// back under its own number. It does not extend the fork's head, so no open serves the
/// two histories together; a refused open removes nothing.
#[test]
fn segments_of_an_abandoned_history_are_never_served_with_the_fork() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("s");
    let key = IndexKey::generate();
    let mut rng = Rng::new(40);
    let data = clustered(&mut rng, 40, 8, 2);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("s", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(batch(&data, 0, 4)).unwrap();
    let at_two = files(&folder);
    index.upsert(batch(&data, 4, 4)).unwrap();
    index.upsert(batch(&data, 8, 4)).unwrap();
    drop(index);
    drop(db);
    let abandoned = files(&folder);
    let newest = abandoned
        .keys()
        .filter(|n| n.starts_with("seg-"))
        .max()
        .unwrap()
        .clone();

    restore(&folder, &at_two);
    let db = Database::open(dir.path()).unwrap();
    let writer = db.open_index("s", &key).unwrap();
    writer.upsert(batch(&data, 20, 4)).unwrap();
    let fork = sorted_ids(&writer);
    drop(writer);
    drop(db);
    assert!(!folder.join(&newest).exists());
    std::fs::write(folder.join(&newest), &abandoned[&newest]).unwrap();
    let before = files(&folder);
    for write in [false, true] {
        let db = Database::open(dir.path()).unwrap();
        let opened = if write {
            db.open_index("s", &key)
        } else {
            db.open_index_read_only("s", &key)
        };
        match opened {
            Err(Error::Corrupted { what }) => {
                assert!(what.contains("another history"), "{what}");
                assert_eq!(files(&folder), before, "a refused open changed files");
            }
            Ok(index) => panic!("served {:?} (the fork is {fork:?})", sorted_ids(&index)),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// On a store with a grace period, the `MANIFEST` of before a `rotate_data_key` put back:
/// the rotation's segment shows its data key wrapped by the index key, so the open rolls
/// the rotation forward; no object is removed, and the next write is sealed under the new
/// data key (its segment header shows the rotation's wrapped key), never the retired one.
#[test]
fn a_rotation_put_back_on_a_store_rolls_forward_and_removes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let key = IndexKey::generate();
    let mut rng = Rng::new(41);
    let data = clustered(&mut rng, 30, 8, 2);
    let db = Database::with_store_options(store.clone(), DatabaseOptions::default());
    let index = db
        .create_index("r", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(batch(&data, 0, 10)).unwrap();
    let before_rotation = store.get("r/MANIFEST").unwrap();
    let old_segment = newest_segment(&*store);
    index.rotate_data_key().unwrap();
    let rotation = newest_segment(&*store);
    assert_ne!(rotation, old_segment);
    let ids = sorted_ids(&index);
    drop(index);
    drop(db);
    // The shown keys: bytes 16..112 of a format-8 segment header.
    let shown = |name: &str| store.get(name).unwrap()[16..112].to_vec();
    let (retired, current) = (shown(&old_segment), shown(&rotation));
    assert_ne!(retired, current);

    store.put("r/MANIFEST", &before_rotation).unwrap();
    let objects: Vec<String> = store.list("r/").unwrap();
    let db = Database::with_store_options(store.clone(), DatabaseOptions::default());
    let index = db.open_index("r", &key).unwrap();
    assert_eq!(sorted_ids(&index), ids);
    for name in &objects {
        assert!(
            store.get(name).is_ok() || name.ends_with("LOCK") || name.contains("lease"),
            "{name} removed"
        );
    }
    assert!(
        store.get(&rotation).is_ok(),
        "the rotation's segment was removed"
    );
    index.upsert(batch(&data, 10, 5)).unwrap();
    let written = newest_segment(&*store);
    assert_ne!(written, rotation);
    assert_eq!(
        shown(&written),
        current,
        "a write under the retired data key"
    );
    assert_eq!(index.len(), 15);
}

fn newest_segment(store: &dyn Store) -> String {
    store
        .list("r/")
        .unwrap()
        .into_iter()
        .filter(|n| n.contains("seg-"))
        .max()
        .unwrap()
}

/// Two creators of one index at once, 20 rounds, over a folder (two `Database`s) and over
/// one object store (two `Database`s with leases): exactly one wins, the other gets
/// `IndexExists` or `Locked`, and the winner's acknowledged create and upsert are there.
#[test]
fn of_two_racing_creators_exactly_one_wins_and_nothing_acknowledged_is_lost() {
    for on_store in [false, true] {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(MemoryStore::new());
            let open = || {
                if on_store {
                    Database::with_store_options(store.clone(), DatabaseOptions::default())
                } else {
                    Database::open(dir.path()).unwrap()
                }
            };
            let key = IndexKey::generate();
            let barrier = std::sync::Barrier::new(2);
            let outcomes: Vec<Result<String, Error>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..2)
                    .map(|who| {
                        let (db, key, barrier) = (open(), &key, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let index = db.create_index("x", key, IndexConfig::ivf_flat(2))?;
                            let id = format!("from-{who}");
                            index.upsert([Item::new(id.clone(), vec![who as f32, 1.0])])?;
                            Ok(id)
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let won: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
            assert_eq!(won.len(), 1, "round {round} store={on_store}: {outcomes:?}");
            for o in &outcomes {
                assert!(
                    matches!(o, Ok(_) | Err(Error::IndexExists | Error::Locked)),
                    "round {round}: {o:?}"
                );
            }
            let index = open().open_index_read_only("x", &key).unwrap();
            assert_eq!(
                index.list_ids().unwrap(),
                vec![won[0].clone()],
                "round {round}"
            );
        }
    }
}

/// A segment in the writer's way (a stalled writer's whose manifest never landed; here an
/// authentic segment of the same base put at the number the writer uses next): the write
/// that meets it fails, the next one succeeds past it and records it as abandoned, and
/// every later open serves this history, neither applying the segment nor deleting it.
#[test]
fn a_segment_in_the_writers_way_is_abandoned_not_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("w");
    let key = IndexKey::generate();
    let mut rng = Rng::new(42);
    let data = clustered(&mut rng, 30, 8, 2);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("w", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(batch(&data, 0, 4)).unwrap();
    let base = files(&folder);
    index.upsert(batch(&data, 4, 4)).unwrap();
    drop(index);
    drop(db);
    let stalled: Vec<(String, Vec<u8>)> = files(&folder)
        .into_iter()
        .filter(|(n, _)| n.starts_with("seg-") && !base.contains_key(n))
        .collect();
    assert_eq!(stalled.len(), 1);
    let (name, bytes) = &stalled[0];
    restore(&folder, &base);

    let db = Database::open(dir.path()).unwrap();
    let writer = db.open_index("w", &key).unwrap();
    std::fs::write(folder.join(name), bytes).unwrap();
    assert!(writer.upsert(batch(&data, 10, 4)).is_err());
    writer.upsert(batch(&data, 10, 4)).unwrap();
    let want = sorted_ids(&writer);
    assert_eq!(want.len(), 8);
    drop(writer);
    drop(db);
    for write in [true, false] {
        let db = Database::open(dir.path()).unwrap();
        let index = if write {
            db.open_index("w", &key).unwrap()
        } else {
            db.open_index_read_only("w", &key).unwrap()
        };
        assert_eq!(sorted_ids(&index), want);
        assert!(
            folder.join(name).exists(),
            "the abandoned segment was deleted"
        );
    }
}

/// A store whose objects are files of one folder, so that a child process made by `fork`
/// and its parent see the same objects (a `MemoryStore` would be copied). Versions are the
/// content's hash; the compare-and-swap is not atomic, which one process at a time needs not.
#[cfg(unix)]
struct FolderStore(std::path::PathBuf);

#[cfg(unix)]
impl FolderStore {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name.replace('/', "%2F"))
    }
    fn version(bytes: &[u8]) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        format!("{:x}", h.finish())
    }
}

#[cfg(unix)]
impl Store for FolderStore {
    fn get(&self, name: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }
    fn put_new(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(name))?;
        f.write_all(data)
    }
    fn put(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let tmp = self.0.join(".tmp");
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, self.path(name))
    }
    fn delete(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_dir(&self.0)?
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .into_string()
                    .unwrap()
                    .replace("%2F", "/")
            })
            .filter(|n| n.starts_with(prefix) && n != ".tmp")
            .collect())
    }
    fn get_versioned(&self, name: &str) -> std::io::Result<(Vec<u8>, Option<String>)> {
        let bytes = self.get(name)?;
        let version = FolderStore::version(&bytes);
        Ok((bytes, Some(version)))
    }
    fn put_if_version(
        &self,
        name: &str,
        data: &[u8],
        version: &str,
    ) -> std::io::Result<Option<String>> {
        match self.get(name) {
            Ok(bytes) if FolderStore::version(&bytes) == version => {
                self.put(name, data)?;
                Ok(Some(FolderStore::version(data)))
            }
            _ => Ok(None),
        }
    }
}

/// A child made by `fork` that drops the writer handle it inherited releases nothing of its
/// parent's: the lease stays, so another writer is still `Locked` out while the parent
/// writes on (before, the child's drop deleted the lease object).
#[cfg(unix)]
#[test]
fn a_forked_child_does_not_release_its_parents_lease() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let store = || FolderStore(dir.path().to_path_buf());
    let index = Database::with_store(store())
        .create_index("f", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    let objects_before = store().list("").unwrap().len();
    // SAFETY: fork has no memory-safety precondition; the child only drops the inherited
    // handle and exits with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(index);
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child made above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(store().list("").unwrap().len(), objects_before);
    assert!(matches!(
        Database::with_store(store()).open_index("f", &key),
        Err(Error::Locked)
    ));
    index.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    drop(index);
    let reopened = Database::with_store(store()).open_index("f", &key).unwrap();
    assert_eq!(reopened.len(), 2);
}
