//! Integrity: `verify` checks every byte of every live file (a flipped byte anywhere is
//! `Corrupted` naming the file); a flipped byte of the manifest's clear header is
//! `Corrupted`, not `WrongKey`; two indexes under one key cannot be swapped; every clear
//! byte of a segment depends only on its padded size; `rotate_keys` replaces both keys so
//! that an old `MANIFEST` with the old key no longer opens the data; an open reads only what
//! the item table needs and still serves nothing damaged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

use super::common::*;

fn live_files(dir: &Path) -> Vec<String> {
    let mut f: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "LOCK")
        .collect();
    f.sort();
    f
}

#[test]
fn verify_checks_every_byte_of_every_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(9);
    let data = clustered(&mut rng, 60, 8, 3);
    let db = Database::open(dir.path()).unwrap();
    for (name, config) in [
        ("flat", IndexConfig::ivf_flat(8)),
        ("pq", IndexConfig::ivf_pq(8, 4)),
    ] {
        let index = db.create_index(name, &key, config).unwrap();
        index
            .upsert(items(&data).into_iter().enumerate().map(|(i, it)| {
                it.with_metadata(json!({"i": i}))
                    .with_contents(vec![i as u8; 3])
            }))
            .unwrap();
        index.train().unwrap();
        index.upsert(items(&data[..5])).unwrap();
        index.delete(&["item-7"]).unwrap();
        let report = index.verify().unwrap();
        let folder = dir.path().join(name);
        let files = live_files(&folder);
        assert_eq!(report.segments, files.len() - 1, "{files:?}");
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(folder.join(f)).unwrap().len())
            .sum();
        assert_eq!(report.bytes, total);
        // Manifest body, per segment footer and directory, the training segment's list
        // blocks, fields and (pq) vector records, tombstones.
        assert!(report.records > 60 + 2 * report.segments, "{report:?}");
        // A flipped byte at a sweep of positions in every file: verify names that file.
        for file in &files {
            let path = folder.join(file);
            let original = std::fs::read(&path).unwrap();
            let step = (original.len() / 97).max(1);
            for pos in (0..original.len()).step_by(step) {
                let mut bad = original.clone();
                bad[pos] ^= 0x40;
                std::fs::write(&path, &bad).unwrap();
                match index.verify() {
                    Err(Error::Corrupted { what }) => {
                        assert!(what.contains(file.as_str()), "{file} byte {pos}: {what}");
                    }
                    other => panic!("{file} byte {pos}: {other:?}"),
                }
            }
            std::fs::write(&path, &original).unwrap();
        }
        assert_eq!(index.verify().unwrap(), report);
    }
}

/// An open reads what the item table needs, not whole segments: with a cache budget of 0, an
/// `ivf_flat` index opens although bytes of its vectors records are damaged, and then every
/// query that reads the damaged list, and `verify`, report `Corrupted`. No damaged byte is
/// ever served: an open that succeeds answers every query exactly as the intact index does,
/// or refuses it.
#[test]
fn a_lazy_open_reads_no_vectors_and_still_serves_nothing_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(21);
    let data = clustered(&mut rng, 48, 64, 4);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("lazy", &key, IndexConfig::ivf_flat(64))
        .unwrap();
    index.upsert(items(&data)).unwrap();
    index
        .train_with(ciphervec::TrainOptions {
            n_lists: 4,
            ..Default::default()
        })
        .unwrap();
    let queries: Vec<Query> = data
        .iter()
        .step_by(5)
        .map(|v| Query::new(v.clone()).top_k(5).n_probes(4))
        .collect();
    let expected = index.query_batch(&queries).unwrap();
    drop(index);
    let folder = dir.path().join("lazy");
    let segment = live_files(&folder)
        .into_iter()
        .find(|f| f.starts_with("seg-"))
        .unwrap();
    let path = folder.join(&segment);
    let original = std::fs::read(&path).unwrap();
    let lazy_db = Database::open_with(
        dir.path(),
        ciphervec::DatabaseOptions::default().cache_budget(0),
    )
    .unwrap();
    let (mut opened, mut refused) = (0, 0);
    for pos in (0..original.len()).step_by(7) {
        let mut bad = original.clone();
        bad[pos] ^= 0x08;
        std::fs::write(&path, &bad).unwrap();
        match lazy_db.open_index_read_only("lazy", &key) {
            Ok(index) => {
                opened += 1;
                match index.query_batch(&queries) {
                    Ok(got) => assert_eq!(got, expected, "byte {pos}: damaged data served"),
                    Err(Error::Corrupted { .. }) => {}
                    Err(e) => panic!("byte {pos}: {e:?}"),
                }
                assert!(
                    matches!(index.verify(), Err(Error::Corrupted { .. })),
                    "byte {pos}: verify missed it"
                );
            }
            Err(Error::Corrupted { .. }) => refused += 1,
            Err(e) => panic!("byte {pos}: {e:?}"),
        }
    }
    std::fs::write(&path, &original).unwrap();
    // Most of an `ivf_flat` segment is vectors, which the open does not read.
    assert!(opened > refused, "opened {opened}, refused {refused}");
    let index = lazy_db.open_index_read_only("lazy", &key).unwrap();
    assert_eq!(index.query_batch(&queries).unwrap(), expected);
}

#[test]
fn a_flipped_clear_header_byte_is_corrupted_not_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    db.create_index("h", &key, IndexConfig::ivf_flat(2))
        .unwrap()
        .upsert([Item::new("a", vec![1.0, 0.0])])
        .unwrap();
    drop(db);
    let path = dir.path().join("h/MANIFEST");
    let original = std::fs::read(&path).unwrap();
    // Magic, version, reserved, salt, index id, key-check value, wrapped key, checksum,
    // body length: every byte of the clear header.
    for pos in 0..192 {
        let mut bad = original.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let db = Database::open(dir.path()).unwrap();
        for result in [
            db.open_index("h", &key).map(|_| ()),
            db.open_index_read_only("h", &key).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(Error::Corrupted { .. })),
                "byte {pos}: {result:?}"
            );
        }
    }
    std::fs::write(&path, &original).unwrap();
    // A genuinely wrong key is still WrongKey.
    let db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        db.open_index("h", &IndexKey::generate()),
        Err(Error::WrongKey)
    ));
    assert!(db.open_index("h", &key).is_ok());
}

#[test]
fn indexes_sharing_a_key_cannot_be_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    for name in ["public", "secret"] {
        db.create_index(name, &key, IndexConfig::ivf_flat(2))
            .unwrap()
            .upsert([Item::new(format!("{name}-doc"), vec![1.0, 0.0])])
            .unwrap();
    }
    drop(db);
    let (public, secret, tmp) = (
        dir.path().join("public"),
        dir.path().join("secret"),
        dir.path().join("swap"),
    );
    std::fs::rename(&public, &tmp).unwrap();
    std::fs::rename(&secret, &public).unwrap();
    std::fs::rename(&tmp, &secret).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut opened = 0;
    for name in ["public", "secret"] {
        for result in [
            db.open_index(name, &key).map(|_| ()),
            db.open_index_read_only(name, &key).map(|_| ()),
        ] {
            match result {
                Ok(()) => opened += 1,
                Err(e) => assert!(matches!(e, Error::Corrupted { .. }), "{e:?}"),
            }
        }
        assert!(matches!(
            db.delete_index(name, &key),
            Err(Error::Corrupted { .. })
        ));
    }
    assert_eq!(opened, 0);
}

#[test]
fn clear_segment_bytes_depend_only_on_the_padded_size() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("s", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    let mut rng = Rng::new(3);
    let mut n = 0;
    // One-item upserts with and without fields, and batches of 1 to 64.
    let mut batches: Vec<Vec<Item>> = Vec::new();
    for with_fields in [false, true] {
        for size in (1..=64).step_by(7).chain([1, 2, 3]) {
            let batch = (0..size)
                .map(|_| {
                    n += 1;
                    let item = Item::new(format!("id-{n}"), (0..4).map(|_| rng.f32()).collect());
                    if with_fields {
                        item.with_metadata(json!({"n": n})).with_contents("text")
                    } else {
                        item
                    }
                })
                .collect();
            batches.push(batch);
        }
    }
    let folder = dir.path().join("s");
    let mut headers: BTreeMap<u64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for batch in batches {
        index.upsert(batch).unwrap();
        for f in live_files(&folder).iter().filter(|f| f.ends_with(".cvs")) {
            let bytes = std::fs::read(folder.join(f)).unwrap();
            // The clear header, and the zeros before the footer are covered by the digest;
            // here: the first 32 bytes.
            headers
                .entry(bytes.len() as u64)
                .or_default()
                .insert(bytes[..32].to_vec());
        }
    }
    assert!(headers.len() > 1);
    let distinct: BTreeSet<Vec<u8>> = headers.values().flatten().cloned().collect();
    assert_eq!(distinct.len(), 1, "clear headers differ: {headers:?}");
}

#[test]
fn rotate_keys_replaces_both_keys_and_retires_old_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (IndexKey::generate(), IndexKey::generate());
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("k", &old, IndexConfig::ivf_flat(2))
        .unwrap();
    index
        .upsert([
            Item::new("a", vec![1.0, 0.0]).with_contents("alpha"),
            Item::new("b", vec![0.0, 1.0]),
        ])
        .unwrap();
    let old_manifest = std::fs::read(dir.path().join("k/MANIFEST")).unwrap();
    assert!(matches!(
        db.rotate_keys("k", &new, &old),
        Err(Error::WrongKey)
    ));
    db.rotate_keys("k", &old, &new).unwrap();
    // The open handle keeps working, and writes under the new keys.
    index.upsert([Item::new("c", vec![0.5, 0.5])]).unwrap();
    assert_eq!(
        index.query(&Query::new(vec![1.0, 0.0]).top_k(1)).unwrap()[0].id,
        "a"
    );
    drop(index);
    assert!(matches!(db.open_index("k", &old), Err(Error::WrongKey)));
    let again = db.open_index("k", &new).unwrap();
    assert_eq!(again.list_ids().unwrap(), vec!["a", "b", "c"]);
    again.verify().unwrap();
    drop(again);
    // A backup's manifest with the old key: its data key no longer opens anything stored.
    std::fs::write(dir.path().join("k/MANIFEST"), &old_manifest).unwrap();
    assert!(matches!(
        db.open_index_read_only("k", &old),
        Err(Error::Corrupted { .. })
    ));
    // Without an open handle too.
    let db2 = Database::open(dir.path().join("other")).unwrap();
    db2.create_index("z", &old, IndexConfig::ivf_flat(2))
        .unwrap()
        .upsert([Item::new("z", vec![1.0, 1.0])])
        .unwrap();
    db2.rotate_keys("z", &old, &new).unwrap();
    assert!(matches!(db2.open_index("z", &old), Err(Error::WrongKey)));
    assert_eq!(
        db2.open_index("z", &new).unwrap().list_ids().unwrap(),
        vec!["z"]
    );
}

/// `verify` through a read-only handle whose index is gone: deleted (its folder removed) is
/// `IndexNotFound`, as `refresh` says; a folder that lost only its `MANIFEST` is damage,
/// `Corrupted` naming it. (A deleted index was reported as damaged storage.)
#[test]
fn verify_tells_a_deleted_index_from_a_lost_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    for name in ["deleted", "damaged"] {
        let index = db
            .create_index(name, &key, IndexConfig::ivf_flat(2))
            .unwrap();
        index.upsert([Item::new("a", vec![1.0, 2.0])]).unwrap();
    }
    let other = Database::open(dir.path()).unwrap();
    let deleted = other.open_index_read_only("deleted", &key).unwrap();
    let damaged = other.open_index_read_only("damaged", &key).unwrap();
    deleted.verify().unwrap();
    damaged.verify().unwrap();

    db.delete_index("deleted", &key).unwrap();
    std::fs::remove_file(dir.path().join("damaged").join("MANIFEST")).unwrap();
    assert!(matches!(deleted.verify(), Err(Error::IndexNotFound)));
    assert!(matches!(deleted.refresh(), Err(Error::IndexNotFound)));
    match damaged.verify() {
        Err(Error::Corrupted { what }) => assert!(what.contains("MANIFEST"), "{what}"),
        other => panic!("{other:?}"),
    }
}
