//! Damaged files never panic and never serve wrong data: every single-bit flip in every file
//! of a small index, truncations every 64 bytes, and zeroed 4 KiB sectors each give a typed
//! error at open (or at query), or the committed state with oracle-equal results.

use std::path::{Path, PathBuf};

use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

use super::common::*;

struct Fixture {
    dir: tempfile::TempDir,
    key: IndexKey,
    data: Vec<Vec<f32>>,
    expected: Vec<Vec<ciphervec::Hit>>,
    queries: Vec<Query>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(5);
    let data = clustered(&mut rng, 120, 4, 4);
    let queries: Vec<Query> = (0..4)
        .map(|i| {
            Query::new(data[i * 30].clone())
                .top_k(5)
                .include(Include::ALL)
        })
        .collect();
    let expected = {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("c", &key, IndexConfig::ivf_flat(4))
            .unwrap();
        let with_fields: Vec<Item> = items(&data)
            .into_iter()
            .enumerate()
            .map(|(i, it)| {
                it.with_metadata(json!({"i": i}))
                    .with_contents(vec![i as u8; 3])
            })
            .collect();
        index.upsert(with_fields[..60].to_vec()).unwrap();
        index
            .train_with(ciphervec::TrainOptions {
                n_lists: 4,
                ..Default::default()
            })
            .unwrap();
        index.upsert(with_fields[60..].to_vec()).unwrap();
        index.delete(&["item-3"]).unwrap();
        index.query_batch(&queries).unwrap()
    };
    Fixture {
        dir,
        key,
        data,
        expected,
        queries,
    }
}

fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("c"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .collect();
    files.sort();
    files
}

#[derive(Default, Debug)]
struct Outcomes {
    typed_error: usize,
    unchanged: usize,
}

/// Opens the damaged index; it must give a typed error or exactly the committed results.
fn check(f: &Fixture, outcomes: &mut Outcomes, what: &str) {
    let db = Database::open(f.dir.path()).unwrap();
    match db.open_index("c", &f.key) {
        Err(Error::Corrupted { .. } | Error::WrongKey | Error::IndexNotFound) => {
            outcomes.typed_error += 1;
        }
        Err(e) => panic!("{what}: unexpected error {e:?}"),
        Ok(index) => match index.query_batch(&f.queries) {
            Err(Error::Corrupted { .. }) => outcomes.typed_error += 1,
            Err(e) => panic!("{what}: unexpected query error {e:?}"),
            Ok(got) => {
                assert_eq!(got, f.expected, "{what}: wrong results served");
                assert_eq!(index.len(), 119, "{what}");
                outcomes.unchanged += 1;
            }
        },
    }
}

fn with_damage(f: &Fixture, file: &Path, damaged: &[u8], outcomes: &mut Outcomes, what: &str) {
    let original = std::fs::read(file).unwrap();
    std::fs::write(file, damaged).unwrap();
    check(f, outcomes, what);
    std::fs::write(file, &original).unwrap();
}

#[test]
fn every_bit_flip_truncation_and_zeroed_sector_is_caught() {
    let f = fixture();
    let _ = &f.data;
    let mut outcomes = Outcomes::default();
    let mut cases = 0;
    for file in index_files(f.dir.path()) {
        let original = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for bit in 0..original.len() * 8 {
            let mut d = original.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            with_damage(&f, &file, &d, &mut outcomes, &format!("{name} bit {bit}"));
            cases += 1;
        }
        for cut in (0..original.len()).step_by(64) {
            with_damage(
                &f,
                &file,
                &original[..cut],
                &mut outcomes,
                &format!("{name} cut {cut}"),
            );
            cases += 1;
        }
        for sector in (0..original.len()).step_by(4096) {
            let mut d = original.clone();
            let end = (sector + 4096).min(d.len());
            d[sector..end].fill(0);
            with_damage(
                &f,
                &file,
                &d,
                &mut outcomes,
                &format!("{name} sector {sector}"),
            );
            cases += 1;
        }
    }
    // Undamaged, it still opens with the same results.
    check(&f, &mut outcomes, "intact");
    println!("{cases} damaged states: {outcomes:?}");
    assert!(cases > 1000);
    assert_eq!(outcomes.typed_error + outcomes.unchanged, cases + 1);
}

#[test]
fn an_older_manifest_copied_back_is_refused_or_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("c", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    let old_manifest = std::fs::read(dir.path().join("c/MANIFEST")).unwrap();
    index.train().unwrap();
    index.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    drop(index);
    // Training removed the segment the old manifest names, but its own segment and the
    // upsert's prove the newer state: the open rolls them forward.
    std::fs::write(dir.path().join("c/MANIFEST"), &old_manifest).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let index = db.open_index("c", &key).unwrap();
    assert!(index.is_trained());
    assert_eq!(index.list_ids().unwrap(), vec!["a", "b"]);
}

#[test]
fn a_manifest_rolled_back_over_appended_segments_is_rolled_forward() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("c", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    let old_manifest = std::fs::read(dir.path().join("c/MANIFEST")).unwrap();
    index.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    index.upsert([Item::new("c", vec![1.0, 1.0])]).unwrap();
    drop(index);
    std::fs::write(dir.path().join("c/MANIFEST"), &old_manifest).unwrap();
    let files = || {
        let mut f: Vec<String> = std::fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f != "MANIFEST")
            .collect();
        f.sort();
        f
    };
    let before = files();
    // Read-only and writer opens serve the newest state the segments prove; no segment is
    // removed.
    let db = Database::open(dir.path()).unwrap();
    let reader = db.open_index_read_only("c", &key).unwrap();
    assert_eq!(reader.list_ids().unwrap(), vec!["a", "b", "c"]);
    drop(reader);
    assert_eq!(files(), before);
    let index = db.open_index("c", &key).unwrap();
    assert_eq!(index.list_ids().unwrap(), vec!["a", "b", "c"]);
    assert_eq!(files(), before);
    // A gap in the newer segments is refused, and nothing is removed.
    drop(index);
    drop(db);
    std::fs::write(dir.path().join("c/MANIFEST"), &old_manifest).unwrap();
    let middle = before
        .iter()
        .filter(|f| f.ends_with(".cvs"))
        .nth(1)
        .unwrap()
        .clone();
    let kept = std::fs::read(dir.path().join("c").join(&middle)).unwrap();
    std::fs::remove_file(dir.path().join("c").join(&middle)).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        db.open_index("c", &key),
        Err(Error::Corrupted { .. })
    ));
    assert_eq!(files().len(), before.len() - 1);
    std::fs::write(dir.path().join("c").join(&middle), kept).unwrap();
}

#[test]
fn a_segment_from_another_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    for name in ["x", "y"] {
        let index = db
            .create_index(name, &key, IndexConfig::ivf_flat(2))
            .unwrap();
        index.upsert([Item::new(name, vec![1.0, 0.0])]).unwrap();
    }
    drop(db);
    let seg = |n: &str| {
        std::fs::read_dir(dir.path().join(n))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "cvs"))
            .unwrap()
    };
    std::fs::copy(seg("x"), seg("y")).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        db.open_index("y", &key),
        Err(Error::Corrupted { .. })
    ));
    assert_eq!(db.open_index("x", &key).unwrap().len(), 1);
}
