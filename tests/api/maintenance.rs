//! Compaction, key rotation and key providers: data unchanged, space given back, the right
//! key works and only it.

use ciphervec::{
    Database, EnvKey, Error, Include, IndexConfig, IndexKey, Item, KeyFile, KeyProvider, Query,
    StaticKey,
};
use serde_json::json;

use super::common::*;

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn setup(dir: &std::path::Path, key: &IndexKey, n: usize) -> (Vec<Vec<f32>>, Vec<Query>) {
    setup_in_batches(dir, key, n, 200)
}

fn setup_in_batches(
    dir: &std::path::Path,
    key: &IndexKey,
    n: usize,
    batch: usize,
) -> (Vec<Vec<f32>>, Vec<Query>) {
    let mut rng = Rng::new(41);
    let data = clustered(&mut rng, n, 8, 10);
    let db = manual_compaction(dir);
    let index = db.create_index("m", key, IndexConfig::ivf_flat(8)).unwrap();
    for chunk in items(&data)
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            it.with_metadata(json!({"i": i}))
                .with_contents(vec![i as u8; 5])
        })
        .collect::<Vec<_>>()
        .chunks(batch)
    {
        index.upsert(chunk.to_vec()).unwrap();
    }
    index.train().unwrap();
    let queries = (0..10)
        .map(|i| {
            Query::new(data[i * 37].clone())
                .top_k(6)
                .include(Include::ALL)
        })
        .collect();
    (data, queries)
}

/// A database whose indexes compact only when asked.
fn manual_compaction(dir: &std::path::Path) -> Database {
    use ciphervec::DatabaseOptions;
    Database::open_with(dir, DatabaseOptions::default().auto_compact(None)).unwrap()
}

#[test]
fn compaction_reclaims_space_and_keeps_results() {
    compaction_case(3000, 200);
}

#[test]
fn compaction_of_100k_items_after_deleting_90_percent() {
    compaction_case(100_000, 10_000);
}

/// Upsert `n` (in batches), delete 90%, overwrite one, compact: the same answers before and
/// after (and after reopen), and at most 1.2x the bytes of an index built from the live 10%.
fn compaction_case(n: usize, batch: usize) {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let (data, queries) = setup_in_batches(dir.path(), &key, n, batch);
    let db = manual_compaction(dir.path());
    let index = db.open_index("m", &key).unwrap();
    // Delete 90%, overwrite some of the rest.
    let gone: Vec<String> = (0..n)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("item-{i}"))
        .collect();
    let gone_refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    assert_eq!(index.delete(&gone_refs).unwrap(), n - n / 10);
    index
        .upsert([Item::new("item-0", data[0].clone()).with_contents("new")])
        .unwrap();
    let before = index.query_batch(&queries).unwrap();
    let bytes_before = dir_bytes(&dir.path().join("m"));
    index.compact().unwrap();
    let bytes_after = dir_bytes(&dir.path().join("m"));
    assert_eq!(index.query_batch(&queries).unwrap(), before);
    assert_eq!(index.len(), n / 10);
    // An index built from the live 10% alone, for comparison.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Database::open(fresh_dir.path()).unwrap();
    let live = fresh
        .create_index("m", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    live.upsert(
        index
            .get(&refs, Include::ALL)
            .unwrap()
            .into_iter()
            .map(|r| {
                let mut it = Item::new(r.id, r.vector.unwrap());
                if let Some(m) = r.metadata {
                    it = it.with_metadata(m);
                }
                if let Some(c) = r.contents {
                    it = it.with_contents(c);
                }
                it
            }),
    )
    .unwrap();
    live.train().unwrap();
    let live_bytes = dir_bytes(&fresh_dir.path().join("m"));
    println!("before {bytes_before} after {bytes_after} live-only {live_bytes}");
    assert!(bytes_after * 4 < bytes_before);
    assert!((bytes_after as f64) <= 1.2 * live_bytes as f64);
    drop(index);
    let index = db.open_index("m", &key).unwrap();
    assert_eq!(index.query_batch(&queries).unwrap(), before);
}

#[test]
fn rotating_the_index_key_rewraps_only() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (IndexKey::generate(), IndexKey::generate());
    let (_, queries) = setup(dir.path(), &old, 500);
    let db = Database::open(dir.path()).unwrap();
    let before = db
        .open_index("m", &old)
        .unwrap()
        .query_batch(&queries)
        .unwrap();
    let segments_before: Vec<_> = std::fs::read_dir(dir.path().join("m"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".cvs"))
        .collect();
    // Open in this process: the handle keeps working and adopts the new key.
    let index = db.open_index("m", &old).unwrap();
    assert!(matches!(
        db.rotate_index_key("m", &new, &old),
        Err(Error::WrongKey)
    ));
    db.rotate_index_key("m", &old, &new).unwrap();
    index.upsert([Item::new("after", vec![0.5; 8])]).unwrap();
    drop(index);
    assert!(matches!(db.open_index("m", &old), Err(Error::WrongKey)));
    let index = db.open_index("m", &new).unwrap();
    assert_eq!(index.len(), 501);
    index.delete(&["after"]).unwrap();
    assert_eq!(index.query_batch(&queries).unwrap(), before);
    drop(index);
    // Not open anywhere: rotate back.
    db.rotate_index_key("m", &new, &old).unwrap();
    assert!(db.open_index("m", &old).is_ok());
    let segments_after: Vec<_> = std::fs::read_dir(dir.path().join("m"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".cvs"))
        .collect();
    // No data rewritten: the original segments are still there.
    assert!(segments_before.iter().all(|s| segments_after.contains(s)));
}

#[test]
fn rotating_the_data_key_reencrypts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let (_, queries) = setup(dir.path(), &key, 800);
    let db = Database::open(dir.path()).unwrap();
    let index = db.open_index("m", &key).unwrap();
    let before = index.query_batch(&queries).unwrap();
    let old_files: Vec<Vec<u8>> = std::fs::read_dir(dir.path().join("m"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cvs"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    index.rotate_data_key().unwrap();
    assert_eq!(index.query_batch(&queries).unwrap(), before);
    // Ids still resolve (item tokens follow the new data key).
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(index.get(&refs, Include::ALL).unwrap().len(), 800);
    assert_eq!(
        index.get(&["item-3"], Include::CONTENTS).unwrap()[0].contents,
        Some(vec![3; 5])
    );
    index.upsert([Item::new("x", vec![1.0; 8])]).unwrap();
    drop(index);
    let index = db.open_index("m", &key).unwrap();
    assert_eq!(index.len(), 801);
    index.delete(&["x"]).unwrap();
    assert_eq!(index.query_batch(&queries).unwrap(), before);
    // The old ciphertext is gone: no old segment survives.
    for p in std::fs::read_dir(dir.path().join("m"))
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !old_files.contains(&bytes),
            "old segment {p:?} still present"
        );
    }
}

#[test]
fn key_providers() {
    let key = IndexKey::generate();
    let db = Database::in_memory();
    db.create_index("p", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    assert!(
        db.open_index_with("p", &StaticKey::new(key.clone()))
            .is_ok()
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_key.txt");
    std::fs::write(&path, format!("{}\n", key.to_base64().as_str())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyFile::new(&path).index_key(),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(
            KeyFile::new(&path)
                .allow_shared_permissions()
                .index_key()
                .unwrap(),
            key
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(db.open_index_with("p", &KeyFile::new(&path)).is_ok());
    for (name, body) in [("empty", ""), ("short", "AAAA\n"), ("text", "not a key\n")] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(
            matches!(KeyFile::new(&p).index_key(), Err(Error::InvalidKey)),
            "{name}"
        );
    }
    assert!(matches!(
        KeyFile::new(dir.path().join("missing")).index_key(),
        Err(Error::Io(_))
    ));
    #[cfg(unix)]
    {
        // A symbolic link to a good key file: refused by the checked provider (the check
        // runs on the handle that is read, so the link cannot be swapped in between) and by
        // `from_base64_file`, read with shared permissions allowed (mounted secrets).
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            KeyFile::new(&link).index_key(),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(
            KeyFile::new(&link)
                .allow_shared_permissions()
                .index_key()
                .unwrap(),
            key
        );
        assert!(matches!(
            IndexKey::from_base64_file(&link),
            Err(Error::InvalidArgument { .. })
        ));
        // A FIFO never blocks the read; a huge file is not read.
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            KeyFile::new(&fifo).index_key(),
            Err(Error::InvalidKey)
        ));
        assert!(matches!(
            IndexKey::from_base64_file(&fifo),
            Err(Error::InvalidKey)
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'A'; 1 << 20]).unwrap();
        assert!(matches!(
            IndexKey::from_base64_file(&big),
            Err(Error::InvalidKey)
        ));
    }
    assert!(matches!(
        EnvKey::new("CIPHERVEC_TEST_KEY_UNSET").index_key(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.open_index_with("p", &StaticKey::new(IndexKey::generate())),
        Err(Error::WrongKey)
    ));
}

#[test]
fn compaction_runs_by_itself_when_most_bytes_are_dead() {
    use ciphervec::DatabaseOptions;
    let mut rng = Rng::new(43);
    let data = clustered(&mut rng, 20_000, 64, 20);
    let doomed: Vec<String> = (0..20_000)
        .filter(|i| i % 10 < 6)
        .map(|i| format!("item-{i}"))
        .collect();
    let doomed: Vec<&str> = doomed.iter().map(String::as_str).collect();
    let mut sizes = Vec::new();
    for options in [
        DatabaseOptions::default(),
        DatabaseOptions::default().auto_compact(None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        let db = Database::open_with(dir.path(), options).unwrap();
        let index = db
            .create_index("a", &key, IndexConfig::ivf_flat(64))
            .unwrap();
        index.upsert(items(&data)).unwrap();
        let full = dir_bytes(&dir.path().join("a"));
        assert_eq!(index.delete(&doomed).unwrap(), 12_000);
        assert_eq!(index.len(), 8_000);
        // Results equal brute force over the live items, compacted or not.
        let live: Vec<(usize, Vec<f32>)> = data
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| i % 10 >= 6)
            .collect();
        let vectors: Vec<Vec<f32>> = live.iter().map(|(_, v)| v.clone()).collect();
        let hits = index
            .query(&Query::new(data[3].clone()).top_k(5).n_probes(usize::MAX))
            .unwrap();
        let want: Vec<(usize, f32)> =
            brute_force(ciphervec::Metric::Euclidean, &vectors, &data[3], 5)
                .into_iter()
                .map(|(j, d)| (live[j].0, d))
                .collect();
        assert_matches_oracle(&hits, &want);
        sizes.push(dir_bytes(&dir.path().join("a")) as f64 / full as f64);
    }
    println!(
        "size after deleting 60%: auto {:.2}, off {:.2}",
        sizes[0], sizes[1]
    );
    assert!(sizes[0] < 0.5, "automatic compaction did not run");
    assert!(sizes[1] > 0.9, "compaction ran although turned off");
}

/// An index written one item at a time gains a segment per write: automatic compaction also
/// runs once more than 1,024 segments are live (for an index this small), so the files (and
/// the manifest every commit rewrites) stay bounded; everything written is still there, and
/// reopens the same. Turned off, the segments pile up (the old behaviour, which grew
/// without bound whatever the dead share).
#[test]
fn compaction_bounds_the_segments_of_single_item_writes() {
    use ciphervec::DatabaseOptions;
    let mut rng = Rng::new(44);
    let n = 1_100;
    let data = clustered(&mut rng, n, 8, 5);
    let mut files = Vec::new();
    for options in [
        DatabaseOptions::default(),
        DatabaseOptions::default().auto_compact(None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        let db = Database::open_with(dir.path(), options.clone()).unwrap();
        let index = db
            .create_index("one", &key, IndexConfig::ivf_flat(8))
            .unwrap();
        let mut most = 0;
        for (i, v) in data.iter().enumerate() {
            index
                .upsert([Item::new(format!("item-{i}"), v.clone())])
                .unwrap();
            if i % 50 == 0 || i == n - 1 {
                most = most.max(std::fs::read_dir(dir.path().join("one")).unwrap().count());
            }
        }
        files.push(most);
        drop(index);
        let again = Database::open_with(dir.path(), options)
            .unwrap()
            .open_index("one", &key)
            .unwrap();
        assert_eq!(again.len(), n);
        let ids: Vec<String> = (0..n).map(|i| format!("item-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let got = again.get(&ids, Include::VECTOR).unwrap();
        assert!(
            got.iter()
                .zip(&data)
                .all(|(r, v)| r.vector.as_ref() == Some(v))
        );
    }
    // Segments, plus MANIFEST and LOCK.
    assert!(files[0] <= 1_024 + 3, "automatic: {} files", files[0]);
    assert!(files[1] > n, "turned off: {} files", files[1]);
}

/// The dead-share estimate counts each item's id and fields record as items come and go
/// (kept as a running sum, not a walk of the item table after every write): replacing
/// items that had large contents by ones without makes most stored bytes dead, and
/// automatic compaction gives them back; every item reads back as last written.
#[test]
fn replaced_contents_count_as_dead_bytes() {
    let mut rng = Rng::new(45);
    let data = clustered(&mut rng, 2_000, 8, 4);
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("f", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    let with_contents = |i: usize| {
        Item::new(format!("item-{i}"), data[i].clone())
            .with_contents(vec![b'x'; 4096])
            .with_metadata(json!({"i": i}))
    };
    index.upsert((0..2_000).map(with_contents)).unwrap();
    let full = dir_bytes(&dir.path().join("f"));
    for chunk in (0..2_000).collect::<Vec<_>>().chunks(500) {
        index
            .upsert(
                chunk
                    .iter()
                    .map(|&i| Item::new(format!("item-{i}"), data[i].clone())),
            )
            .unwrap();
    }
    let after = dir_bytes(&dir.path().join("f"));
    println!("{full} -> {after} bytes");
    assert!(
        (after as f64) < 0.5 * full as f64,
        "no compaction: {after} of {full} bytes"
    );
    let got = index.get(&["item-7", "item-1999"], Include::ALL).unwrap();
    assert!(
        got.iter()
            .all(|r| r.contents.is_none() && r.metadata.is_none())
    );
    assert_eq!(got[1].vector.as_ref(), Some(&data[1999]));
}
