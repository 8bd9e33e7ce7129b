//! Rollback: for the last k = 1, 2, 3 commits of each kind, the `MANIFEST` from before them
//! put back; writer and read-only opens either serve the newest state the remaining segments
//! prove (rolled forward) or refuse, never serve an older state unnoticed: an anchor taken
//! after the last commit turns every older state served into `RolledBack`. A refused open
//! changes no file.

use std::collections::BTreeMap;
use std::path::Path;

use ciphervec::{Anchor, Database, EncryptedIndex, Error, IndexConfig, IndexKey, Item, Query};

use super::common::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Upsert,
    Delete,
    Train,
    Compact,
    RotateIndexKey,
    RotateDataKey,
}

/// What an open serves: its ids, whether it is trained, and its answer to one query.
fn observe(index: &EncryptedIndex) -> (Vec<String>, bool, Vec<String>) {
    let hits = index
        .query(&Query::new(vec![0.5; 4]).top_k(5))
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    (index.list_ids().unwrap(), index.is_trained(), hits)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (name, bytes)
        })
        .collect()
}

/// Opens with each key in `keys` (writer or read-only) and returns the first open that works,
/// else the error of the key that opens the manifest (`WrongKey` if none does).
fn open(db: &Database, keys: &[IndexKey], writer: bool) -> Result<EncryptedIndex, Error> {
    let mut error = Error::WrongKey;
    for key in keys {
        match if writer {
            db.open_index("r", key)
        } else {
            db.open_index_read_only("r", key)
        } {
            Ok(index) => return Ok(index),
            Err(Error::WrongKey) => {}
            Err(e) => error = e,
        }
    }
    Err(error)
}

#[test]
fn rolled_back_manifests_are_rolled_forward_refused_or_caught_by_the_anchor() {
    let mut rng = Rng::new(5);
    let data = clustered(&mut rng, 120, 4, 3);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for kind in [
        Kind::Upsert,
        Kind::Delete,
        Kind::Train,
        Kind::Compact,
        Kind::RotateIndexKey,
        Kind::RotateDataKey,
    ] {
        for k in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let folder = dir.path().join("r");
            let keys: Vec<IndexKey> = (0..4).map(|_| IndexKey::generate()).collect();
            let db = Database::open(dir.path()).unwrap();
            let index = db
                .create_index("r", &keys[0], IndexConfig::ivf_flat(4))
                .unwrap();
            index.upsert(items(&data[..100])).unwrap();
            index.train().unwrap();
            let old_manifest = std::fs::read(folder.join("MANIFEST")).unwrap();
            for i in 0..k {
                match kind {
                    Kind::Upsert => index
                        .upsert(items(&data[100 + 5 * i..105 + 5 * i]))
                        .unwrap(),
                    Kind::Delete => {
                        let id = format!("item-{i}");
                        assert_eq!(index.delete(&[id.as_str()]).unwrap(), 1);
                    }
                    Kind::Train => index.train().unwrap(),
                    Kind::Compact => index.compact().unwrap(),
                    Kind::RotateIndexKey => {
                        db.rotate_index_key("r", &keys[i], &keys[i + 1]).unwrap();
                    }
                    Kind::RotateDataKey => index.rotate_data_key().unwrap(),
                }
            }
            let newest = observe(&index);
            let anchor: Anchor = index.anchor().to_string().parse().unwrap();
            drop(index);
            drop(db);
            std::fs::write(folder.join("MANIFEST"), &old_manifest).unwrap();
            for writer in [false, true] {
                let what = format!("{kind:?} k={k} writer={writer}");
                let before = files(&folder);
                let db = Database::open(dir.path()).unwrap();
                let outcome = match open(&db, &keys, writer) {
                    Err(e) => {
                        println!("{what}: {e}");
                        assert!(
                            matches!(e, Error::Corrupted { .. } | Error::WrongKey),
                            "{what}: {e:?}"
                        );
                        assert_eq!(
                            files(&folder),
                            before,
                            "{what}: a refused open changed files"
                        );
                        "refused"
                    }
                    Ok(index) => {
                        let served = observe(&index);
                        match index.check_anchor(&anchor) {
                            Ok(()) => {
                                assert_eq!(
                                    served, newest,
                                    "{what}: an older state passed the anchor"
                                );
                                "newest state"
                            }
                            Err(Error::RolledBack) => "older state, anchor says RolledBack",
                            Err(e) => panic!("{what}: {e:?}"),
                        }
                    }
                };
                *outcomes.entry(format!("{kind:?}: {outcome}")).or_default() += 1;
            }
        }
    }
    println!("{outcomes:#?}");
    // What the segments prove is rolled forward; the rest is caught.
    assert_eq!(outcomes.get("Upsert: newest state"), Some(&6));
    assert_eq!(outcomes.get("Delete: newest state"), Some(&6));
    assert_eq!(outcomes.get("Train: newest state"), Some(&6));
    assert_eq!(outcomes.get("Compact: newest state"), Some(&6));
    assert_eq!(
        outcomes.get("RotateIndexKey: older state, anchor says RolledBack"),
        Some(&6)
    );
    // A rotation's segment shows the data key it is sealed under, wrapped by the index key:
    // the rotation rolls forward too (format 8; format 7 refused to open instead).
    assert_eq!(outcomes.get("RotateDataKey: newest state"), Some(&6));
}

#[test]
fn anchors_catch_a_folder_restored_from_a_backup_and_name_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("a", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("x", vec![1.0, 0.0])]).unwrap();
    let backup = files(&dir.path().join("a"));
    index.delete(&["x"]).unwrap();
    let anchor = index.anchor();
    assert_eq!(anchor.epoch(), index.anchor().epoch());
    index.check_anchor(&anchor).unwrap();
    let reader = db.open_index_read_only("a", &key).unwrap();
    reader.check_anchor(&anchor).unwrap();
    drop((index, reader));
    // The whole folder put back as the backup had it: consistent, older, caught.
    for (name, bytes) in &backup {
        std::fs::write(dir.path().join("a").join(name), bytes).unwrap();
    }
    for f in files(&dir.path().join("a")).keys() {
        if !backup.contains_key(f) {
            std::fs::remove_file(dir.path().join("a").join(f)).unwrap();
        }
    }
    let index = db.open_index("a", &key).unwrap();
    assert_eq!(index.list_ids().unwrap(), vec!["x"]);
    assert!(matches!(
        index.check_anchor(&anchor),
        Err(Error::RolledBack)
    ));
    let reader = db.open_index_read_only("a", &key).unwrap();
    assert!(matches!(
        reader.check_anchor(&anchor),
        Err(Error::RolledBack)
    ));
    // Another index's anchor.
    let other = db
        .create_index("b", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    assert!(matches!(
        index.check_anchor(&other.anchor()),
        Err(Error::Corrupted { .. })
    ));
}
