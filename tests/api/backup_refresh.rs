//! Backups, readers that refresh, and locations given as text: a backup taken while another
//! thread upserts opens with the same key and equals the source at one commit; a read-only
//! handle's `refresh` picks up a writer's commits (and compactions) and reports whether
//! anything changed; `open_url` takes paths, `file://` and `memory://`.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Query};

use super::common::*;

/// Items `b-<i>` for `i` in `range`.
fn named(data: &[Vec<f32>], range: Range<usize>) -> Vec<Item> {
    range
        .map(|i| Item::new(format!("b-{i}"), data[i].clone()))
        .collect()
}

#[test]
fn a_backup_taken_during_writes_opens_and_equals_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path().join("db")).unwrap();
    let index = db
        .create_index("b", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    let mut rng = Rng::new(4);
    let data = Arc::new(clustered(&mut rng, 400, 4, 4));
    index.upsert(named(&data, 0..100)).unwrap();
    index.train().unwrap();
    // Every upsert adds the next batch of 10: a consistent copy holds a prefix of whole
    // batches.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (index, stop, data) = (index.clone(), stop.clone(), data.clone());
        std::thread::spawn(move || {
            for start in (100..400).step_by(10) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                index.upsert(named(&data, start..start + 10)).unwrap();
            }
        })
    };
    let mut copies = Vec::new();
    for i in 0..5 {
        let target = dir.path().join(format!("backup-{i}"));
        index.backup_to(&target).unwrap();
        copies.push(target);
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    for target in copies {
        let copy = Database::open(&target)
            .unwrap()
            .open_index("b", &key)
            .unwrap();
        copy.verify().unwrap();
        let n = copy.len();
        assert!((100..=400).contains(&n) && n.is_multiple_of(10), "{n}");
        let mut want: Vec<String> = (0..n).map(|i| format!("b-{i}")).collect();
        want.sort();
        assert_eq!(copy.list_ids().unwrap(), want);
        assert!(copy.is_trained());
        let ids: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_eq!(
            copy.get(&ids, Include::ALL).unwrap(),
            index.get(&ids, Include::ALL).unwrap()
        );
        let q = Query::new(data[3].clone()).top_k(1).n_probes(1000);
        assert_eq!(copy.query(&q).unwrap()[0].id, "b-3");
        assert!(matches!(
            Database::open(&target)
                .unwrap()
                .open_index("b", &IndexKey::generate()),
            Err(Error::WrongKey)
        ));
        assert!(matches!(index.backup_to(&target), Err(Error::IndexExists)));
    }
}

#[test]
fn a_reader_refreshes_to_the_writers_commits_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(8);
    let data = clustered(&mut rng, 300, 4, 4);
    let writer_db = Database::open(dir.path()).unwrap();
    let writer = writer_db
        .create_index("r", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    writer.upsert(named(&data, 0..100)).unwrap();
    // Another Database stands for another process.
    let reader = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("r", &key)
        .unwrap();
    assert!(!reader.refresh().unwrap());
    assert_eq!(reader.len(), 100);
    writer.upsert(named(&data, 100..200)).unwrap();
    writer.delete(&["b-0"]).unwrap();
    assert_eq!(reader.len(), 100);
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 199);
    assert!(!reader.refresh().unwrap());
    writer.train().unwrap();
    writer.compact().unwrap();
    writer.upsert(named(&data, 200..300)).unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 299);
    assert!(reader.is_trained());
    let q = Query::new(data[250].clone()).top_k(1).n_probes(1000);
    assert_eq!(reader.query(&q).unwrap(), writer.query(&q).unwrap());
    assert!(!writer.refresh().unwrap());
}

/// A reader follows the writer's rotation of the data key (the new one is wrapped under the
/// index key it holds): `refresh` loads the new state, `verify` and `check_anchor` pass. After
/// a rotation of the index key its key no longer opens the index: `refresh` is `WrongKey`
/// (it was `Corrupted`, which says the storage is damaged), and its queries still answer.
#[test]
fn a_reader_follows_a_data_key_rotation_and_is_refused_after_an_index_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (key, next) = (IndexKey::generate(), IndexKey::generate());
    let mut rng = Rng::new(9);
    let data = clustered(&mut rng, 300, 4, 3);
    let db = Database::open(dir.path()).unwrap();
    let writer = db
        .create_index("r", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    writer.upsert(named(&data, 0..200)).unwrap();
    let reader = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("r", &key)
        .unwrap();
    writer.rotate_data_key().unwrap();
    writer.upsert(named(&data, 200..300)).unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 300);
    let q = Query::new(data[250].clone()).top_k(3);
    assert_eq!(reader.query(&q).unwrap(), writer.query(&q).unwrap());
    assert_eq!(
        reader.get(&["b-299"], Include::VECTOR).unwrap()[0].vector,
        Some(data[299].clone())
    );
    reader.verify().unwrap();
    reader.check_anchor(&writer.anchor()).unwrap();
    assert!(!reader.refresh().unwrap());
    db.rotate_index_key("r", &key, &next).unwrap();
    assert!(matches!(reader.refresh(), Err(Error::WrongKey)));
    assert_eq!(reader.query(&q).unwrap(), writer.query(&q).unwrap());
    writer.upsert(named(&data, 0..1)).unwrap();
    assert!(matches!(reader.refresh(), Err(Error::WrongKey)));
    let again = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("r", &next)
        .unwrap();
    assert_eq!(again.len(), 300);
}

/// Storage put back to an older commit (the folder restored from a copy taken earlier): a
/// reader refuses to go back (`RolledBack`) and keeps serving what it had; once storage
/// holds its commit again, it refreshes as before. (It used to load the older state.)
#[test]
fn a_reader_refuses_storage_rolled_back_to_an_older_commit() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(10);
    let data = clustered(&mut rng, 200, 4, 3);
    let folder = dir.path().join("db/r");
    let snapshot = |to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(&folder).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    let restore = |from: &std::path::Path| {
        for e in std::fs::read_dir(&folder).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "LOCK" {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), folder.join(e.file_name())).unwrap();
        }
    };
    let db = Database::open(dir.path().join("db")).unwrap();
    let writer = db
        .create_index("r", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    writer.upsert(named(&data, 0..100)).unwrap();
    snapshot(&dir.path().join("old"));
    writer.upsert(named(&data, 100..200)).unwrap();
    snapshot(&dir.path().join("new"));
    let reader = Database::open(dir.path().join("db"))
        .unwrap()
        .open_index_read_only("r", &key)
        .unwrap();
    assert_eq!(reader.len(), 200);
    restore(&dir.path().join("old"));
    let refreshed = reader.refresh();
    assert!(matches!(refreshed, Err(Error::RolledBack)), "{refreshed:?}");
    assert_eq!(reader.len(), 200);
    let q = Query::new(data[150].clone()).top_k(1);
    assert_eq!(reader.query(&q).unwrap()[0].id, "b-150");
    restore(&dir.path().join("new"));
    assert!(!reader.refresh().unwrap());
}

#[test]
fn locations_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let path = dir.path().join("plain");
    let url = format!("file://{}", dir.path().join("url").display());
    for location in [path.to_str().unwrap(), url.as_str()] {
        let db = Database::open_url(location).unwrap();
        db.create_index("u", &key, IndexConfig::ivf_flat(2))
            .unwrap()
            .upsert([Item::new("x", vec![1.0, 0.0])])
            .unwrap();
        let again = Database::open_url(location).unwrap();
        assert_eq!(again.list_indexes().unwrap(), vec!["u"]);
    }
    assert!(path.join("u/MANIFEST").exists());
    assert!(dir.path().join("url/u/MANIFEST").exists());
    let memory = Database::open_url("memory://").unwrap();
    memory
        .create_index("m", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    assert_eq!(memory.list_indexes().unwrap(), vec!["m"]);
    // As RFC 8089 and Python's `Path.as_uri()` write them: escapes decoded, `localhost` as
    // the host, any case of scheme.
    let spaced = dir.path().join("with space é");
    let escaped = spaced
        .to_str()
        .unwrap()
        .bytes()
        .map(|b| match b {
            b'/' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect::<String>();
    for url in [
        format!("file://{escaped}"),
        format!("FILE://localhost{escaped}"),
    ] {
        let db = Database::open_url(&url).unwrap();
        db.create_index(&format!("s{}", url.len()), &key, IndexConfig::ivf_flat(2))
            .unwrap();
    }
    let mut made = std::fs::read_dir(&spaced)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    made.sort();
    assert_eq!(
        made.len(),
        2,
        "both URLs name the folder {spaced:?}: {made:?}"
    );
    assert!(Database::open_url("Memory://").is_ok());
    // A file where the database should be: an i/o error that says so (`mkdir -p` alone
    // says "File exists"), and the file is left as it was.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    match Database::open(&file) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotADirectory, "{e}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    for bad in [
        "",
        "file://relative/path",
        "gopher://x",
        "file://otherhost/abs",
        "file:///bad%2escape%",
        "file:///bad%zzescape",
        "file:///bad%+fescape",
        "file:///not-utf8-%ff",
        "memory://something",
    ] {
        assert!(
            matches!(Database::open_url(bad), Err(Error::InvalidArgument { .. })),
            "{bad}"
        );
    }
}

#[test]
fn rotating_the_index_key_refuses_a_manifest_replaced_behind_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (IndexKey::generate(), IndexKey::generate());
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("e", &old, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    let older = std::fs::read(dir.path().join("e/MANIFEST")).unwrap();
    index.delete(&["a"]).unwrap();
    std::fs::write(dir.path().join("e/MANIFEST"), &older).unwrap();
    assert!(matches!(
        db.rotate_index_key("e", &old, &new),
        Err(Error::Corrupted { .. })
    ));
    // Nothing was committed: the old key still opens it; the handle's state is intact.
    assert_eq!(index.list_ids().unwrap(), Vec::<String>::new());
}

#[test]
fn a_reader_verifies_cleanly_while_a_writer_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(12);
    let data = Arc::new(clustered(&mut rng, 400, 4, 4));
    let writer = Database::open(dir.path())
        .unwrap()
        .create_index("v", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    writer.upsert(named(&data, 0..100)).unwrap();
    let reader = Database::open(dir.path())
        .unwrap()
        .open_index_read_only("v", &key)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (writer, stop, data) = (writer.clone(), stop.clone(), data.clone());
        std::thread::spawn(move || {
            let mut start = 100;
            while !stop.load(Ordering::SeqCst) && start < 400 {
                writer.upsert(named(&data, start..start + 10)).unwrap();
                writer.compact().unwrap();
                start += 10;
            }
        })
    };
    // Verify for as long as the writer commits and removes segments.
    let mut checks = 0;
    while !busy.is_finished() {
        let report = reader.verify().unwrap();
        assert!(report.segments >= 1);
        checks += 1;
    }
    stop.store(true, Ordering::SeqCst);
    busy.join().unwrap();
    println!("{checks} clean checks during 30 commits and compactions");
    assert!(checks > 0);
}
