//! Durability: every I/O call of a commit failed in turn (EIO, ENOSPC) leaves the previous
//! state; crashes at every call, with unsynced files torn, recover to a consistent state that
//! holds every acknowledged write; a writer killed with SIGKILL loses nothing it acknowledged
//! and releases its lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ciphervec::internals::{FaultyFs, open_database_with_fs};
use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Query};

use super::common::*;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
const DIM: usize = 4;

/// A new index "d" in `dir` whose file system fails (or crashes, with `crash`) with `errno`
/// when told to; the database is returned to keep it open.
fn faulty_index(
    dir: &Path,
    key: &IndexKey,
    errno: i32,
    crash: bool,
) -> (Arc<FaultyFs>, Database, ciphervec::EncryptedIndex) {
    let fs = Arc::new(FaultyFs::new(usize::MAX, errno, crash));
    let db = open_database_with_fs(dir, fs.clone()).unwrap();
    let index = db
        .create_index("d", key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    (fs, db, index)
}

/// A deterministic operation sequence over a small id space.
#[derive(Clone, Debug)]
enum Op {
    Upsert(Vec<(String, Vec<f32>)>),
    Delete(Vec<String>),
    Train,
}

fn ops(seed: u64, count: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|n| match rng.below(10) {
            0..=5 => Op::Upsert(
                (0..1 + rng.below(6))
                    .map(|_| {
                        let id = format!("id-{}", rng.below(40));
                        let v = (0..DIM).map(|_| rng.f32() * 10.0).collect();
                        (id, v)
                    })
                    .collect(),
            ),
            6..=8 => Op::Delete(
                (0..1 + rng.below(3))
                    .map(|_| format!("id-{}", rng.below(40)))
                    .collect(),
            ),
            _ if n > 0 => Op::Train,
            _ => Op::Delete(vec!["none".into()]),
        })
        .collect()
}

/// The state a sequence of operations leads to: id -> vector.
type Model = BTreeMap<String, Vec<f32>>;

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Upsert(items) => {
            for (id, v) in items {
                model.insert(id.clone(), v.clone());
            }
        }
        Op::Delete(ids) => {
            for id in ids {
                model.remove(id);
            }
        }
        Op::Train => {}
    }
}

fn run(index: &ciphervec::EncryptedIndex, op: &Op) -> ciphervec::Result<()> {
    match op {
        Op::Upsert(items) => {
            index.upsert(items.iter().map(|(id, v)| Item::new(id.clone(), v.clone())))
        }
        Op::Delete(ids) => {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            index.delete(&ids).map(|_| ())
        }
        Op::Train => match index.train() {
            Err(Error::InvalidArgument { .. }) => Ok(()), // empty index: nothing to train
            other => other,
        },
    }
}

/// The index's full contents.
fn contents(index: &ciphervec::EncryptedIndex) -> Model {
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index
        .get(&refs, Include::VECTOR)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.vector.unwrap()))
        .collect()
}

/// Contents equal the model, and an exact query equals the brute-force oracle over it.
fn assert_state(index: &ciphervec::EncryptedIndex, model: &Model, what: &str) {
    assert_eq!(&contents(index), model, "{what}");
    if model.is_empty() {
        return;
    }
    let q = vec![1.0; DIM];
    let hits = index
        .query(&Query::new(q.clone()).top_k(5).n_probes(usize::MAX))
        .unwrap();
    let mut want: Vec<(&String, f32)> = model
        .iter()
        .map(|(id, v)| (id, distance(ciphervec::Metric::Euclidean, &q, v)))
        .collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    for (h, (_, d)) in hits.iter().zip(&want) {
        assert!(
            (h.distance - d).abs() <= 1e-3 * d.max(1.0),
            "{what}: query differs"
        );
    }
    assert_eq!(hits.len(), want.len().min(5), "{what}");
}

#[test]
fn every_failed_io_call_of_a_commit_leaves_the_previous_state() {
    let key = IndexKey::generate();
    let seq = ops(3, 12);
    let mut points = 0;
    for (n, op) in seq.iter().enumerate() {
        // Count the calls of this commit on a clean run.
        let count_calls = {
            let dir = tempfile::tempdir().unwrap();
            let (fs, _db, index) = faulty_index(dir.path(), &key, EIO, false);
            seq[..n].iter().for_each(|o| run(&index, o).unwrap());
            let before = fs.calls();
            run(&index, op).unwrap();
            fs.calls() - before
        };
        for k in 0..count_calls {
            for errno in [EIO, ENOSPC] {
                let dir = tempfile::tempdir().unwrap();
                let (fs, _db, index) = faulty_index(dir.path(), &key, errno, false);
                let mut model = Model::new();
                for o in &seq[..n] {
                    run(&index, o).unwrap();
                    apply(&mut model, o);
                }
                fs.fail_after(k);
                let result = run(&index, op);
                fs.never_fail();
                let what = format!("op {n} ({op:?}) call {k} errno {errno}");
                match result {
                    Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(errno), "{what}"),
                    // Removing an obsolete file after training is best effort.
                    Ok(()) if matches!(op, Op::Train) => apply(&mut model, op),
                    other => panic!("{what}: expected an I/O error, got {other:?}"),
                }
                assert_state(&index, &model, &what);
                drop(index);
                let index = Database::open(dir.path())
                    .unwrap()
                    .open_index("d", &key)
                    .unwrap();
                assert_state(&index, &model, &format!("{what}, reopened"));
                points += 1;
            }
        }
    }
    println!("{points} injection points, all left the previous state");
    assert!(points > 100);
}

#[test]
fn crashes_at_every_call_recover_to_an_acknowledged_state() {
    let key = IndexKey::generate();
    let states: usize = std::env::var("CIPHERVEC_CRASH_STATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut rng = Rng::new(77);
    let mut run_states = 0;
    let mut seed = 0;
    while run_states < states {
        seed += 1;
        let seq = ops(seed, 6);
        let total_calls = {
            let dir = tempfile::tempdir().unwrap();
            let (fs, _db, index) = faulty_index(dir.path(), &key, EIO, true);
            let start = fs.calls();
            seq.iter().for_each(|o| run(&index, o).unwrap());
            fs.calls() - start
        };
        for crash_at in 0..total_calls {
            let dir = tempfile::tempdir().unwrap();
            let (fs, db, index) = faulty_index(dir.path(), &key, EIO, true);
            fs.fail_after(crash_at);
            let mut acked = Model::new();
            let mut in_flight = None;
            for op in &seq {
                if run(&index, op).is_ok() {
                    apply(&mut acked, op);
                } else {
                    in_flight = Some(op.clone());
                    break;
                }
            }
            drop(index);
            drop(db);
            tear_unsynced(&fs.log(), &mut rng);
            let index = Database::open(dir.path())
                .unwrap()
                .open_index("d", &key)
                .unwrap();
            let got = contents(&index);
            let mut with_op = acked.clone();
            if let Some(op) = &in_flight {
                apply(&mut with_op, op);
            }
            let what = format!("seed {seed} crash at {crash_at}");
            if got == acked {
                assert_state(&index, &acked, &what);
            } else {
                assert_state(&index, &with_op, &what);
            }
            run_states += 1;
        }
    }
    println!("{run_states} crash states recovered");
}

/// The child of the kill -9 harness: opens the index in `CIPHERVEC_KILL_DIR`, then runs the
/// operations of seed `CIPHERVEC_KILL_SEED`, printing `CV:BEGIN n` before and `CV:ACK n`
/// after each one returns. Run only by the harness.
#[test]
#[ignore = "child process of the kill -9 harness"]
fn kill_child() {
    use std::io::Write as _;
    let (Ok(dir), Ok(seed)) = (
        std::env::var("CIPHERVEC_KILL_DIR"),
        std::env::var("CIPHERVEC_KILL_SEED"),
    ) else {
        return;
    };
    let key = IndexKey::from_hex(&std::env::var("CIPHERVEC_KILL_KEY").unwrap()).unwrap();
    let db = Database::open(&dir).unwrap();
    let index = match db.open_index("k", &key) {
        Ok(i) => i,
        Err(Error::IndexNotFound) => db
            .create_index("k", &key, IndexConfig::ivf_flat(DIM))
            .unwrap(),
        Err(e) => panic!("child open: {e:?}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "CV:READY").unwrap();
    out.flush().unwrap();
    for (n, op) in ops(seed.parse().unwrap(), 10_000).iter().enumerate() {
        writeln!(out, "CV:BEGIN {n}").unwrap();
        out.flush().unwrap();
        run(&index, op).unwrap();
        writeln!(out, "CV:ACK {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_minus_nine_loses_no_acknowledged_write() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let cycles: usize = std::env::var("CIPHERVEC_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    // The child needs the key: it gets it as hex in its environment.
    let mut rng = Rng::new(99);
    let raw: Vec<u8> = (0..32).map(|_| rng.below(256) as u8).collect();
    let key = IndexKey::from_bytes(&raw).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut model = Model::new();
    let (mut acked_total, mut locked_refusals) = (0usize, 0usize);
    for cycle in 0..cycles {
        let seed = 1000 + cycle as u64;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "api::durability::kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CIPHERVEC_KILL_DIR", dir.path())
            .env("CIPHERVEC_KILL_SEED", seed.to_string())
            .env("CIPHERVEC_KILL_KEY", &hex)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test <name> ... " before the first line of output.
                if let Some(at) = line.find("CV:") {
                    let line = &line[at + 3..];
                    if line == "READY" {
                        let _ = ready_tx.send(());
                    }
                    lines.push(line.to_string());
                }
            }
            lines
        });
        // Once the child holds the index (a loaded machine may take longer than the random
        // while below to start it), let it work a random while; meanwhile a second writer
        // must be refused.
        ready
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("cycle {cycle}: the child did not start"));
        std::thread::sleep(Duration::from_millis(20 + rng.below(60) as u64));
        match Database::open(dir.path()).unwrap().open_index("k", &key) {
            Err(Error::Locked) => locked_refusals += 1,
            Err(Error::IndexNotFound) => {} // the child has not created it yet
            Ok(_) => panic!("cycle {cycle}: a second writer got the index"),
            Err(e) => panic!("cycle {cycle}: {e:?}"),
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        // The lock is released by the kernel: a new writer gets in within a second.
        let start = Instant::now();
        let index = loop {
            match Database::open(dir.path()).unwrap().open_index("k", &key) {
                Ok(i) => break Some(i),
                Err(Error::IndexNotFound) => break None,
                Err(Error::Locked) if start.elapsed() < Duration::from_secs(1) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("cycle {cycle}: reopen failed: {e:?}"),
            }
        };
        let seq = ops(seed, 10_000);
        let mut acked = model.clone();
        let mut in_flight = None;
        for line in &lines {
            if let Some(n) = line.strip_prefix("ACK ") {
                apply(&mut acked, &seq[n.parse::<usize>().unwrap()]);
                acked_total += 1;
                in_flight = None;
            } else if let Some(n) = line.strip_prefix("BEGIN ") {
                in_flight = Some(seq[n.parse::<usize>().unwrap()].clone());
            }
        }
        let Some(index) = index else {
            assert!(acked.is_empty(), "cycle {cycle}: index lost");
            continue;
        };
        let got = contents(&index);
        let mut with_op = acked.clone();
        if let Some(op) = &in_flight {
            apply(&mut with_op, op);
        }
        let what = format!("cycle {cycle}");
        model = if got == acked { acked } else { with_op };
        assert_state(&index, &model, &what);
    }
    println!(
        "{cycles} kill -9 cycles, {acked_total} acknowledged operations, 0 lost, {locked_refusals} second writers refused"
    );
    assert!(acked_total > cycles, "the child made too little progress");
}

/// The child of the rotation kill test: alternately rotates the index key A -> B -> A and
/// the data key, printing `CV:BEGIN n` / `CV:ACK n`.
#[test]
#[ignore = "child process of the rotation kill test"]
fn rotation_child() {
    use std::io::Write as _;
    let Ok(dir) = std::env::var("CIPHERVEC_ROTATE_DIR") else {
        return;
    };
    let keys = [
        IndexKey::from_bytes(&[1; 32]).unwrap(),
        IndexKey::from_bytes(&[2; 32]).unwrap(),
    ];
    let db = Database::open(&dir).unwrap();
    let mut current = match std::env::var("CIPHERVEC_ROTATE_CURRENT").as_deref() {
        Ok("1") => 1,
        _ => 0,
    };
    let mut out = std::io::stdout().lock();
    for n in 0.. {
        writeln!(out, "CV:BEGIN {n}").unwrap();
        out.flush().unwrap();
        if n % 3 == 2 {
            let index = db.open_index("r", &keys[current]).unwrap();
            index.rotate_data_key().unwrap();
        } else {
            db.rotate_index_key("r", &keys[current], &keys[1 - current])
                .unwrap();
            current = 1 - current;
        }
        writeln!(out, "CV:ACK {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_minus_nine_during_key_rotation_leaves_exactly_one_key_valid() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let keys = [
        IndexKey::from_bytes(&[1; 32]).unwrap(),
        IndexKey::from_bytes(&[2; 32]).unwrap(),
    ];
    let mut rng = Rng::new(5);
    let data = clustered(&mut rng, 300, DIM, 5);
    let model: Model = items(&data)
        .into_iter()
        .map(|i| (i.id().to_string(), i.vector().to_vec()))
        .collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("r", &keys[0], IndexConfig::ivf_flat(DIM))
            .unwrap();
        index.upsert(items(&data)).unwrap();
    }
    let mut current = 0usize;
    let mut previous: Vec<String> = Vec::new();
    let (mut rotations, cycles) = (0usize, 40);
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "api::durability::rotation_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CIPHERVEC_ROTATE_DIR", dir.path())
            .env("CIPHERVEC_ROTATE_CURRENT", current.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.find("CV:").map(|at| l[at + 3..].to_string()))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(5 + rng.below(40) as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        // Which key is valid per the acknowledged rotations (index-key rotations are the ops
        // with n % 3 != 2).
        let mut expected = current;
        let mut in_flight_key_rotation = false;
        for line in &lines {
            if let Some(n) = line.strip_prefix("ACK ") {
                let n: usize = n.parse().unwrap();
                if n % 3 != 2 {
                    expected = 1 - expected;
                    rotations += 1;
                }
                in_flight_key_rotation = false;
            } else if let Some(n) = line.strip_prefix("BEGIN ") {
                in_flight_key_rotation = n.parse::<usize>().unwrap() % 3 != 2;
            }
        }
        let db = Database::open(dir.path()).unwrap();
        let outcomes: Vec<bool> = keys
            .iter()
            .map(|k| match db.open_index("r", k) {
                Ok(index) => {
                    assert_state(&index, &model, &format!("cycle {cycle}"));
                    true
                }
                Err(Error::WrongKey) => false,
                Err(e) => panic!("cycle {cycle}: {e:?}"),
            })
            .collect();
        assert_eq!(
            outcomes.iter().filter(|&&ok| ok).count(),
            1,
            "cycle {cycle}: exactly one key must work"
        );
        let valid = outcomes.iter().position(|&ok| ok).unwrap();
        assert!(
            valid == expected || in_flight_key_rotation,
            "cycle {cycle}: an acknowledged rotation was lost (start {current}, valid {valid}, lines {lines:?}, previous {previous:?})"
        );
        current = valid;
        previous = lines;
    }
    println!(
        "{cycles} kills during rotation, {rotations} acknowledged index-key rotations, data intact"
    );
    assert!(rotations > 0);
}

#[test]
fn a_handle_whose_rollback_also_failed_refuses_writes_as_poisoned() {
    let key = IndexKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let (fs, _db, index) = faulty_index(dir.path(), &key, EIO, true);
    index
        .upsert([Item::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .unwrap();
    // Where a clean upsert first touches the manifest: from there on, every call fails, so
    // the manifest write and the rollback's manifest write both fail.
    let before = fs.calls();
    index
        .upsert([Item::new("b", vec![0.0, 1.0, 0.0, 0.0])])
        .unwrap();
    let first_manifest_call = fs.log()[before..]
        .iter()
        .position(|c| format!("{c:?}").contains("MANIFEST"))
        .expect("an upsert writes the manifest");
    fs.fail_after(first_manifest_call);
    let failed = index.upsert([Item::new("c", vec![0.0, 0.0, 1.0, 0.0])]);
    assert!(matches!(failed, Err(Error::Io(_))), "{failed:?}");
    fs.never_fail();
    let refused = index.upsert([Item::new("d", vec![0.0, 0.0, 0.0, 1.0])]);
    assert!(matches!(refused, Err(Error::Poisoned)), "{refused:?}");
    // Reopening reads what is committed: the acknowledged writes, never "d".
    drop(index);
    let reopened = Database::open(dir.path())
        .unwrap()
        .open_index("d", &key)
        .unwrap();
    let ids = reopened.list_ids().unwrap();
    assert!(ids.contains(&"a".to_owned()) && ids.contains(&"b".to_owned()));
    assert!(!ids.contains(&"d".to_owned()));
}
