//! What the storage learns, checked through the files and an instrumented file system: one
//! segment plus the manifest per write, every stored object's size on the Padmé ladder, and
//! nothing in common between the files of two compaction epochs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ciphervec::internals::{FaultyFs, FsCall, open_database_with_fs};
use ciphervec::{Database, IndexConfig, IndexKey, Item};
use serde_json::json;

use super::common::*;

/// The Padmé ladder, written out independently of the crate's own (Nikitin et al. 2019).
fn on_padme_ladder(len: u64) -> bool {
    if len < 2 {
        return true;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    len & mask == 0
}

/// Every file of an index directory with its bytes (the empty lock file aside).
fn stored_objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn index_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one index directory");
    dirs[0].clone()
}

/// Items with contents and metadata of random sizes (what padding must hide).
fn varied_items(rng: &mut Rng, vectors: &[Vec<f32>], first: usize) -> Vec<Item> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let n = first + i;
            let contents = vec![b'c'; rng.below(3000)];
            let note = "m".repeat(rng.below(200));
            Item::new(format!("item-{n}"), v.clone())
                .with_contents(contents)
                .with_metadata(json!({"n": n, "note": note}))
        })
        .collect()
}

#[test]
fn every_stored_object_size_is_on_the_padding_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(101);
    let data = clustered(&mut rng, 3000, 16, 12);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("leak", &key, IndexConfig::ivf_pq(16, 4))
        .unwrap();
    let check = |when: &str| -> HashSet<String> {
        let mut names = HashSet::new();
        for (name, bytes) in stored_objects(&index_dir(dir.path())) {
            assert!(
                on_padme_ladder(bytes.len() as u64),
                "{when}: {name} has {} bytes, not on the ladder",
                bytes.len()
            );
            names.insert(name);
        }
        names
    };
    // Single-item writes: a segment's size must not give away one item's content size.
    let (mut content_sizes, mut segment_sizes) = (HashSet::new(), HashSet::new());
    let mut known = check("empty");
    for (i, v) in data.iter().take(40).enumerate() {
        let len = rng.below(3000);
        content_sizes.insert(len);
        let item = Item::new(format!("item-{i}"), v.clone())
            .with_contents(vec![b'c'; len])
            .with_metadata(json!({ "n": i }));
        index.upsert([item]).unwrap();
        let now = check("single upsert");
        for name in now.difference(&known).filter(|n| n.starts_with("seg-")) {
            let path = index_dir(dir.path()).join(name);
            segment_sizes.insert(std::fs::metadata(path).unwrap().len());
        }
        known = now;
    }
    // Many content sizes share a segment size.
    assert!(
        segment_sizes.len() * 4 <= content_sizes.len() * 3,
        "{} segment sizes for {} content sizes",
        segment_sizes.len(),
        content_sizes.len()
    );
    for (c, chunk) in data[40..].chunks(700).enumerate() {
        index
            .upsert(varied_items(&mut rng, chunk, 40 + c * 700))
            .unwrap();
    }
    check("batches");
    index.train().unwrap();
    check("train");
    let ids: Vec<String> = (0..500).map(|i| format!("item-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index.delete(&refs).unwrap();
    check("delete");
    index.compact().unwrap();
    check("compact");
    index.rotate_data_key().unwrap();
    check("data-key rotation");
    drop(index);
    db.rotate_index_key("leak", &key, &IndexKey::generate())
        .unwrap();
    check("index-key rotation");
}

#[test]
fn a_write_adds_one_segment_and_the_manifest_and_training_writes_no_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new(usize::MAX, 5, false));
    let db = open_database_with_fs(dir.path(), fs.clone()).unwrap();
    let key = IndexKey::generate();
    let index = db
        .create_index("w", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    let mut rng = Rng::new(7);
    let data = clustered(&mut rng, 2000, 8, 6);
    let written = |log: &[FsCall]| -> Vec<String> {
        log.iter()
            .filter_map(|c| match c {
                FsCall::Write(p) => Some(p.file_name().unwrap().to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let is_segment = |name: &str| name.starts_with("seg-") && name.ends_with(".cvs");
    for (step, chunk) in data.chunks(500).enumerate() {
        let before = fs.log().len();
        index.upsert(items(chunk)).unwrap();
        let files = written(&fs.log()[before..]);
        assert_eq!(files.len(), 2, "step {step}: {files:?}");
        assert!(is_segment(&files[0]), "{files:?}");
        assert_eq!(files[1], "MANIFEST.tmp");
    }
    let before = fs.log().len();
    index.train().unwrap();
    let files = written(&fs.log()[before..]);
    assert!(
        files.iter().all(|f| is_segment(f) || f == "MANIFEST.tmp"),
        "training wrote {files:?}"
    );
    assert_eq!(files.iter().filter(|f| is_segment(f)).count(), 1);
}

#[test]
fn two_compaction_epochs_share_no_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(3);
    let data = clustered(&mut rng, 1500, 8, 5);
    let db = Database::open(dir.path()).unwrap();
    for config in [
        IndexConfig::ivf_flat(8),
        IndexConfig::ivf_flat(8).n_lists(16),
        IndexConfig::ivf_pq(8, 2).n_lists(16),
    ] {
        let _ = db.delete_index("e", &key);
        let index = db.create_index("e", &key, config.clone()).unwrap();
        index.upsert(items(&data)).unwrap();
        if config.lists() > 0 {
            index.train().unwrap();
        }
        index.compact().unwrap();
        let first = segments_of(&index_dir(dir.path()));
        index.compact().unwrap();
        let second = segments_of(&index_dir(dir.path()));
        assert!(!first.is_empty() && !second.is_empty());
        // Compaction rewrote everything: no 16-byte window of the new segments (beyond their
        // clear 128-byte headers, which show the manifest header's key check and wrapped
        // data key and so are equal in both epochs) occurs in the old ones, so no label, token or address links
        // the two epochs. Windows holding a run of four zero bytes overlap the zero padding
        // that brings a segment to its ladder size; two such windows at the padding's edge
        // match by chance (15 zeros and one ciphertext byte: 1 in 256), so they are left out.
        // Any other window has at least 13 bytes of ciphertext.
        let has_zero_run = |w: &[u8]| w.windows(4).any(|z| z == [0; 4]);
        const HEADER: usize = 128;
        let old_windows: HashMap<&[u8], (usize, usize)> = first
            .iter()
            .enumerate()
            .flat_map(|(s, bytes)| {
                bytes[HEADER..]
                    .windows(16)
                    .enumerate()
                    .map(move |(at, w)| (w, (s, at + HEADER)))
            })
            .filter(|(w, _)| !has_zero_run(w))
            .collect();
        for (s, segment) in second.iter().enumerate() {
            for (at, w) in segment[HEADER..].windows(16).enumerate() {
                if has_zero_run(w) {
                    continue;
                }
                if let Some((old_s, old_at)) = old_windows.get(w) {
                    panic!(
                        "{config:?}: the window at {} of new segment {s} is at {old_at} of \
                         old segment {old_s}: {w:02x?}",
                        at + HEADER
                    );
                }
            }
        }
    }
}

fn segments_of(dir: &Path) -> Vec<Vec<u8>> {
    stored_objects(dir)
        .into_iter()
        .filter(|(name, _)| name.starts_with("seg-"))
        .map(|(_, bytes)| bytes)
        .collect()
}

#[test]
fn every_query_at_fixed_n_probes_reads_the_same_bytes_when_not_in_ram() {
    use ciphervec::internals::storage_bytes_read;
    use ciphervec::{DatabaseOptions, Query, TrainOptions};
    let dim = 16;
    let mut rng = Rng::new(17);
    let data = clustered(&mut rng, 4000, dim, 30);
    for (config, queries) in [
        (IndexConfig::ivf_flat(dim), 1000),
        (IndexConfig::ivf_pq(dim, 4), 300),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        {
            let db = Database::open(dir.path()).unwrap();
            let index = db.create_index("r", &key, config.clone()).unwrap();
            index.upsert(items(&data)).unwrap();
            index
                .train_with(TrainOptions {
                    n_lists: 40,
                    ..Default::default()
                })
                .unwrap();
            // A second segment, so that lists have blocks in two places and differ in size.
            index.upsert(items(&data[..700])).unwrap();
        }
        // A cache of a few lists: queries mix cache hits and decryption from storage.
        let db = Database::open_with(
            dir.path(),
            DatabaseOptions::default().cache_budget(16 << 10),
        )
        .unwrap();
        let index = db.open_index("r", &key).unwrap();
        assert!(!index.is_resident());
        for n_probes in [1, 5] {
            let mut per_query = HashSet::new();
            for _ in 0..queries {
                let q: Vec<f32> = (0..dim).map(|_| rng.f32() * 4.0 - 2.0).collect();
                let before = storage_bytes_read(&index);
                index
                    .query(&Query::new(q).top_k(5).n_probes(n_probes))
                    .unwrap();
                per_query.insert(storage_bytes_read(&index) - before);
            }
            assert_eq!(per_query.len(), 1, "n_probes {n_probes}: {per_query:?}");
            assert!(per_query.iter().all(|&b| b > 0));
        }
    }
}

/// The read volume that is *not* padded, measured as `docs/THREAT_MODEL.md` states it, for
/// an index not held in memory: a selective filter (pre-filter path) reads the lists or
/// vector records of its matches, so the bytes read grow with the number of matching items;
/// a wider filter widens the probes by `1 / selectivity^a` (DESIGN.md "Filters"); fetching contents reads one
/// fields record per hit on top of the padded search. Unfiltered queries stay constant.
#[test]
fn filtered_queries_and_result_fetches_read_what_the_threat_model_states() {
    use ciphervec::internals::storage_bytes_read;
    use ciphervec::{DatabaseOptions, Include, Query, TrainOptions};
    use serde_json::json;
    let dim = 16;
    let mut rng = Rng::new(23);
    let data = clustered(&mut rng, 4000, dim, 30);
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("f", &key, IndexConfig::ivf_pq(dim, 4))
            .unwrap();
        // Field `p` is i % 100: {"p": {"$lt": s}} matches s percent of the items.
        index
            .upsert(items(&data).into_iter().enumerate().map(|(i, it)| {
                it.with_metadata(json!({"p": i % 100}))
                    .with_contents(vec![7u8; 40])
            }))
            .unwrap();
        index
            .train_with(TrainOptions {
                n_lists: 40,
                ..Default::default()
            })
            .unwrap();
    }
    let db = Database::open_with(dir.path(), DatabaseOptions::default().cache_budget(0)).unwrap();
    let index = db.open_index("f", &key).unwrap();
    assert!(!index.is_resident());
    let read = |q: Query| {
        let before = storage_bytes_read(&index);
        index.query(&q).unwrap();
        storage_bytes_read(&index) - before
    };
    let query = || Query::new(data[11].clone()).top_k(5).n_probes(4);
    let unfiltered = read(query());
    assert_eq!(read(query()), unfiltered);
    // Pre-filter path (at most 5% match): one vector record per match, so the volume tells
    // the number of matching items.
    let one_percent = read(query().filter(json!({"p": {"$lt": 1}})));
    let two_percent = read(query().filter(json!({"p": {"$lt": 2}})));
    println!("bytes read: unfiltered {unfiltered}, 1% {one_percent}, 2% {two_percent}");
    assert_ne!(one_percent, unfiltered);
    assert_eq!(two_percent, 2 * one_percent);
    // Wider filters take the scan path: padded like unfiltered queries (codes only).
    assert_eq!(read(query().filter(json!({"p": {"$lt": 50}}))), unfiltered);
    // Contents of the hits: one fields record each, on top of the search.
    let with_contents = read(query().include(Include::CONTENTS));
    assert!(with_contents > unfiltered, "{with_contents} {unfiltered}");
}
