//! The S3 store against a real S3 API (moto's server on loopback, started by
//! `scripts/test_s3.sh`, which sets `CIPHERVEC_TEST_S3_URL` and the `AWS_*` environment).
//! Compiled only with the `s3` feature; without the server they fail (never pass unseen).
//!
//! Several roles run in child processes (this test binary started again with one ignored
//! test selected): a writer that builds an index and exits, and two writers racing.
#![cfg(feature = "s3")]

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use ciphervec::{Database, DatabaseOptions, Error, Include, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

fn base_url() -> String {
    // Compiled only with the `s3` feature, which only scripts/test_s3.sh turns on after it
    // started the server: a missing server is a failure here, never a pass.
    std::env::var("CIPHERVEC_TEST_S3_URL")
        .expect("CIPHERVEC_TEST_S3_URL is not set: run scripts/test_s3.sh, which starts the server")
}

/// A location of its own for each test.
fn location(test: &str) -> String {
    format!("{}/{test}", base_url())
}

/// Deterministic 16-dimensional vectors.
fn vector(i: usize) -> Vec<f32> {
    let mut s = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..16)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5 + (i % 7) as f32
        })
        .collect()
}

fn item(i: usize) -> Item {
    Item::new(format!("id-{i}"), vector(i))
        .with_contents(format!("private contents {i}"))
        .with_metadata(json!({"group": i % 5}))
}

/// Creates the `ivf_flat` index "docs" of 16 dimensions at `url`.
fn create_docs(url: &str, key: &IndexKey) -> ciphervec::EncryptedIndex {
    Database::open_url(url)
        .unwrap()
        .create_index("docs", key, IndexConfig::ivf_flat(16))
        .unwrap()
}

/// Answers to fixed queries, exactly (ids and distance bits), one line each.
fn answers(index: &ciphervec::EncryptedIndex) -> Vec<String> {
    (0..20)
        .map(|q| {
            let hits = index
                .query(
                    &Query::new(vector(q * 97 + 3))
                        .top_k(5)
                        .filter(json!({"group": {"$ne": 2}})),
                )
                .unwrap();
            hits.iter()
                .map(|h| format!("{}:{:08x}", h.id, h.distance.to_bits()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Runs the ignored test `name` of this binary in a child process with `env`.
fn child(name: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn key_from_env() -> IndexKey {
    IndexKey::from_hex(&std::env::var("CHILD_KEY").unwrap()).unwrap()
}

fn hex(key_bytes: &[u8; 32]) -> String {
    key_bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
#[ignore = "child process of build_in_one_process_read_in_another"]
fn child_builds_and_records_answers() {
    let url = std::env::var("CHILD_URL").unwrap();
    let db = Database::open_url(&url).unwrap();
    let index = db
        .create_index("docs", &key_from_env(), IndexConfig::ivf_flat(16))
        .unwrap();
    index.upsert((0..1500).map(item)).unwrap();
    index.train().unwrap();
    index.upsert((1500..2000).map(item)).unwrap();
    index.delete(&["id-7"]).unwrap();
    std::fs::write(
        std::env::var("CHILD_OUT").unwrap(),
        answers(&index).join("\n"),
    )
    .unwrap();
}

#[test]
fn build_in_one_process_read_in_another() {
    let url = location("cross-process");
    let key_bytes: [u8; 32] = std::array::from_fn(|i| (i * 7 + 1) as u8);
    let key = IndexKey::from_bytes(&key_bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("answers.txt");
    let status = child(
        "child_builds_and_records_answers",
        &[
            ("CHILD_URL", url.clone()),
            ("CHILD_KEY", hex(&key_bytes)),
            ("CHILD_OUT", out.display().to_string()),
        ],
    )
    .wait()
    .unwrap();
    assert!(status.success());
    let theirs: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();

    let index = Database::open_url(&url)
        .unwrap()
        .open_index_read_only("docs", &key)
        .unwrap();
    assert_eq!(index.len(), 1999);
    assert_eq!(
        answers(&index),
        theirs,
        "a reader in another process answers the same"
    );

    // The same objects copied into a local directory: the directory store answers the same.
    let objects = ciphervec::internals::s3_objects(&url).unwrap();
    let local = dir.path().join("db");
    for (name, bytes) in &objects {
        if name.ends_with("/LOCK") {
            continue;
        }
        let path = local.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let copy = Database::open(&local)
        .unwrap()
        .open_index("docs", &key)
        .unwrap();
    assert_eq!(
        answers(&copy),
        theirs,
        "a local copy of the objects answers the same"
    );

    // Every object: no id, contents, metadata key, or 16-byte window of a vector.
    assert!(objects.len() >= 2);
    for (name, bytes) in &objects {
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!holds(b"private contents"), "{name}");
        assert!(!holds(b"group"), "{name}");
        for i in (0..2000).step_by(13) {
            assert!(!holds(format!("id-{i}").as_bytes()), "{name}");
            let raw: Vec<u8> = vector(i).iter().flat_map(|f| f.to_le_bytes()).collect();
            for w in raw.chunks_exact(16) {
                assert!(!holds(w), "{name}: vector bytes");
            }
        }
    }
}

#[test]
#[ignore = "child process of racing_writers_never_lose_an_acknowledged_write"]
fn child_writer() {
    let url = std::env::var("CHILD_URL").unwrap();
    let me = std::env::var("CHILD_NAME").unwrap();
    let key = key_from_env();
    let db = Database::open_url(&url).unwrap();
    let mut acked = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(std::env::var("CHILD_OUT").unwrap())
        .unwrap();
    let (mut done, mut locked) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while done < 50 && Instant::now() < deadline {
        match db.open_index("race", &key) {
            Ok(index) => {
                let id = format!("{me}-{done}");
                index.upsert([Item::new(id.clone(), vector(done))]).unwrap();
                writeln!(acked, "{id}").unwrap();
                acked.flush().unwrap();
                done += 1;
            }
            Err(Error::Locked) => {
                locked += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{me}: {e}"),
        }
    }
    println!("{me}: {done} writes, {locked} times locked out");
    assert_eq!(done, 50);
}

#[test]
#[ignore = "child process of a_crashed_writers_lease_expires_and_is_taken_over"]
fn child_crashing_writer() {
    let url = std::env::var("CHILD_URL").unwrap();
    let lease: u64 = std::env::var("CHILD_LEASE_SECONDS")
        .unwrap()
        .parse()
        .unwrap();
    let options = DatabaseOptions::default().lease_duration(Duration::from_secs(lease));
    let index = Database::open_url_with(&url, options)
        .unwrap()
        .open_index("lease", &key_from_env())
        .unwrap();
    index
        .upsert([Item::new("before-crash", vector(1))])
        .unwrap();
    // Dies holding the lease: no destructor runs.
    std::process::exit(0);
}

/// A writer process that dies holding its lease (here with a 2 s lease) keeps others out
/// until the lease expires; then the next writer takes it over through a conditional
/// replace (`If-Match`) of the lease object, and writes.
#[test]
fn a_crashed_writers_lease_expires_and_is_taken_over() {
    let url = location("lease");
    let key_bytes: [u8; 32] = std::array::from_fn(|i| (i * 7 + 1) as u8);
    let key = IndexKey::from_bytes(&key_bytes).unwrap();
    let db = Database::open_url(&url).unwrap();
    db.create_index("lease", &key, IndexConfig::ivf_flat(16))
        .unwrap();
    let crashed = child(
        "child_crashing_writer",
        &[
            ("CHILD_URL", url.clone()),
            ("CHILD_KEY", hex(&key_bytes)),
            ("CHILD_LEASE_SECONDS", "2".to_owned()),
        ],
    )
    .wait()
    .unwrap();
    assert!(crashed.success());
    let start = Instant::now();
    assert!(matches!(db.open_index("lease", &key), Err(Error::Locked)));
    let index = loop {
        match db.open_index("lease", &key) {
            Ok(index) => break index,
            Err(Error::Locked) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    };
    println!("lease taken over after {:?}", start.elapsed());
    index.upsert([Item::new("after-crash", vector(2))]).unwrap();
    let mut ids = index.list_ids().unwrap();
    ids.sort();
    assert_eq!(ids, ["after-crash", "before-crash"]);
}

/// Two creators of one index on one bucket at once (two `Database`s, each with its own S3
/// client and lease), 20 rounds: exactly one wins, the other gets `IndexExists` or
/// `Locked`, and the winner's acknowledged create and upsert are there.
#[test]
fn of_two_racing_creators_on_a_bucket_exactly_one_wins() {
    let base = location("create-race");
    let key = IndexKey::generate();
    for round in 0..20 {
        let url = format!("{base}/{round}");
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<Result<String, Error>> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|who| {
                    let db = Database::open_url(&url).unwrap();
                    let (key, barrier) = (&key, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let index = db.create_index("x", key, IndexConfig::ivf_flat(16))?;
                        let id = format!("from-{who}");
                        index.upsert([Item::new(id.clone(), vector(who))])?;
                        Ok(id)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        for o in &outcomes {
            assert!(
                matches!(o, Ok(_) | Err(Error::IndexExists | Error::Locked)),
                "round {round}: {o:?}"
            );
        }
        let index = Database::open_url(&url)
            .unwrap()
            .open_index_read_only("x", &key)
            .unwrap();
        assert_eq!(
            index.list_ids().unwrap(),
            vec![won[0].clone()],
            "round {round}"
        );
    }
}

#[test]
fn racing_writers_never_lose_an_acknowledged_write() {
    let url = location("race");
    let key_bytes: [u8; 32] = std::array::from_fn(|i| (i * 3 + 5) as u8);
    let key = IndexKey::from_bytes(&key_bytes).unwrap();
    Database::open_url(&url)
        .unwrap()
        .create_index("race", &key, IndexConfig::ivf_flat(16))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acked.txt");
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            child(
                "child_writer",
                &[
                    ("CHILD_URL", url.clone()),
                    ("CHILD_KEY", hex(&key_bytes)),
                    ("CHILD_NAME", (*name).to_owned()),
                    ("CHILD_OUT", out.display().to_string()),
                ],
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let acked: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(acked.len(), 100);
    let index = Database::open_url(&url)
        .unwrap()
        .open_index("race", &key)
        .unwrap();
    let mut ids = index.list_ids().unwrap();
    ids.sort();
    let mut want = acked.clone();
    want.sort();
    assert_eq!(ids, want, "every acknowledged write is there, nothing else");
    index.verify().unwrap();
}

#[test]
fn a_reader_follows_commits_and_survives_compaction() {
    let url = location("refresh");
    let key = IndexKey::generate();
    let writer = create_docs(&url, &key);
    writer.upsert((0..600).map(item)).unwrap();
    let reader = Database::open_url(&url)
        .unwrap()
        .open_index_read_only("docs", &key)
        .unwrap();
    assert!(!reader.refresh().unwrap());
    writer.upsert((600..900).map(item)).unwrap();
    writer.train().unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 900);
    assert_eq!(answers(&reader), answers(&writer));
    writer.delete(&["id-1", "id-2"]).unwrap();
    writer.compact().unwrap();
    // Before refreshing, the reader still answers from the epoch it holds (its segments
    // are in memory), contents included.
    let before = reader
        .query(&Query::new(vector(1)).top_k(1).include(Include::CONTENTS))
        .unwrap();
    assert_eq!(before[0].id, "id-1");
    assert_eq!(
        before[0].contents.as_deref(),
        Some(&b"private contents 1"[..])
    );
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 898);
    assert_eq!(answers(&reader), answers(&writer));
}

/// Index names may hold characters S3 advises against in keys (`#`, `~`, `%`, `[`...),
/// which the object store escapes, and a prefix may have empty or `.` parts, which it drops
/// or escapes: every such index opens again, from a new database too, and is listed by its
/// own name (an index named `a#1` used to be written and then never found again).
#[test]
fn names_and_prefixes_the_object_store_escapes_are_found_again() {
    let base = base_url();
    let key = IndexKey::generate();
    let names = ["a#1", "b~x", "c%20", "d[e]{f}^`", "plain"];
    for url in [
        format!("{base}/escaped-names"),
        format!("{base}//odd/./prefix~/"),
    ] {
        let db = Database::open_url(&url).unwrap();
        for (i, name) in names.iter().enumerate() {
            let index = db
                .create_index(name, &key, IndexConfig::ivf_flat(16))
                .unwrap();
            index.upsert((0..=i).map(item)).unwrap();
        }
        let again = Database::open_url(&url).unwrap();
        let mut listed = again.list_indexes().unwrap();
        listed.sort();
        assert_eq!(listed, names, "{url}");
        for (i, name) in names.iter().enumerate() {
            let index = again.open_index(name, &key).unwrap();
            assert_eq!(index.len(), i + 1, "{url} {name}");
        }
        again.delete_index("a#1", &key).unwrap();
        assert_eq!(again.list_indexes().unwrap().len(), names.len() - 1);
    }
}

/// A bucket that does not exist is an I/O error of kind `NotFound` that says so, at once,
/// not `Unavailable` ("storage unavailable after retries": the server answered).
#[test]
fn a_bucket_that_does_not_exist_is_named_not_unavailable() {
    base_url();
    let db = Database::open_url("s3://ciphervec-no-such-bucket/prefix").unwrap();
    match db.list_indexes() {
        Err(Error::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
            assert!(e.to_string().contains("bucket does not exist"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let err = db
        .create_index("docs", &IndexKey::generate(), IndexConfig::ivf_flat(16))
        .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

#[test]
fn a_changed_or_truncated_object_is_corrupted() {
    let url = location("damage");
    let key = IndexKey::generate();
    {
        let index = create_docs(&url, &key);
        index.upsert((0..300).map(item)).unwrap();
    }
    let objects = ciphervec::internals::s3_objects(&url).unwrap();
    let (name, bytes) = objects
        .iter()
        .find(|(n, _)| n.contains("seg-"))
        .cloned()
        .unwrap();
    for damaged in [
        {
            let mut b = bytes.clone();
            b[bytes.len() / 2] ^= 1;
            b
        },
        bytes[..bytes.len() - 100].to_vec(),
    ] {
        ciphervec::internals::s3_put(&url, &name, &damaged).unwrap();
        let err = Database::open_url(&url)
            .unwrap()
            .open_index("docs", &key)
            .unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    }
    ciphervec::internals::s3_put(&url, &name, &bytes).unwrap();
    let index = Database::open_url(&url)
        .unwrap()
        .open_index("docs", &key)
        .unwrap();
    assert_eq!(index.len(), 300);
}

#[test]
#[ignore = "child process of an_unreachable_store_is_unavailable"]
fn child_opens_an_unreachable_store() {
    let started = Instant::now();
    let err = Database::open_url(&std::env::var("CHILD_URL").unwrap())
        .unwrap()
        .open_index("docs", &IndexKey::generate())
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
    println!("unavailable after {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn an_unreachable_store_is_unavailable() {
    let url = location("unreachable");
    // The same location through an endpoint nobody listens on (a child process, since the
    // endpoint comes from the environment).
    let status = child(
        "child_opens_an_unreachable_store",
        &[
            ("CHILD_URL", url),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
        ],
    )
    .wait()
    .unwrap();
    assert!(status.success());
}

/// The moto server's process id, as `scripts/s3_server.sh` recorded it.
fn server_pid() -> Option<String> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/target/s3-server/moto.pid");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A reader that fetches lists per query (`cache_budget(0)`) while the server stops
/// answering (the process paused): the query is `Error::Unavailable` after the store's
/// bounded retries, nothing is damaged, and once the server answers again the same query
/// gives the answers of before.
#[test]
#[ignore = "pauses the shared server: scripts/test_s3.sh runs it alone, after the others"]
fn a_server_that_stops_mid_use_is_unavailable_and_nothing_breaks() {
    let url = location("pause");
    let pid = server_pid().expect("no server pid file: run scripts/test_s3.sh");
    let key = IndexKey::generate();
    {
        let index = create_docs(&url, &key);
        index.upsert((0..3000).map(item)).unwrap();
        index.train().unwrap();
    }
    let options = ciphervec::DatabaseOptions::default().cache_budget(0);
    let open_reader = || {
        Database::open_url_with(&url, options.clone())
            .unwrap()
            .open_index_read_only("docs", &key)
            .unwrap()
    };
    // The answers of a reader like the paused one (its own database: its own cache).
    let want = answers(&open_reader());
    let reader = open_reader();
    let signal = |sig: &str| {
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let started = Instant::now();
    let result = reader.query(&Query::new(vector(3)).top_k(5));
    signal("-CONT");
    assert!(matches!(result, Err(Error::Unavailable)), "{result:?}");
    println!("unavailable after {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(answers(&reader), want);
    reader.verify().unwrap();
}
