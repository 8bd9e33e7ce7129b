//! Crashes during self-maintenance: a background training's install and a list split cut
//! at every I/O call (unsynced files torn), and a writer killed with SIGKILL at random
//! points while it trains and splits, recover to a state that holds every acknowledged
//! write, opens, verifies, and answers queries as brute force does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ciphervec::internals::{FaultyFs, TrainingStage, hold_training, open_database_with_fs};
use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Metric, Query};

use super::common::*;

const DIM: usize = 8;
const EIO: i32 = 5;

/// id -> vector: what the index must hold.
type Model = BTreeMap<String, Vec<f32>>;

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

/// Contents equal `model`, `verify` passes, and queries probing every list return the
/// brute-force distances.
fn assert_state(index: &ciphervec::EncryptedIndex, model: &Model, what: &str) {
    assert!(&contents(index) == model, "{what}: contents differ");
    index
        .verify()
        .unwrap_or_else(|e| panic!("{what}: verify: {e:?}"));
    let vectors: Vec<Vec<f32>> = model.values().cloned().collect();
    let mut rng = Rng::new(3);
    for _ in 0..5 {
        let q = vectors[rng.below(vectors.len())].clone();
        let want = brute_force(Metric::Euclidean, &vectors, &q, 10);
        let hits = index
            .query(&Query::new(q).top_k(10).n_probes(usize::MAX))
            .unwrap();
        assert_eq!(hits.len(), want.len(), "{what}");
        for (h, (_, d)) in hits.iter().zip(&want) {
            assert!(
                (h.distance - d).abs() <= 1e-4 * d.max(1.0),
                "{what}: query differs"
            );
        }
    }
}

fn settle(index: &ciphervec::EncryptedIndex) {
    while index.is_training() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn upsert(index: &ciphervec::EncryptedIndex, model: &mut Model, batch: Vec<(String, Vec<f32>)>) {
    index
        .upsert(batch.iter().map(|(id, v)| Item::new(id.clone(), v.clone())))
        .unwrap();
    model.extend(batch);
}

/// A new index "t" in `dir` whose file system crashes when told to, filled with 10,000
/// items: its background training is held at the install (writes made while it read its
/// snapshot and while it waits included). Returns the pieces and the model.
fn held_at_install(
    dir: &std::path::Path,
    key: &IndexKey,
) -> (
    Arc<FaultyFs>,
    Database,
    ciphervec::EncryptedIndex,
    ciphervec::internals::TrainingHold,
    Model,
) {
    let fs = Arc::new(FaultyFs::new(usize::MAX, EIO, true));
    let db = open_database_with_fs(dir, fs.clone()).unwrap();
    let index = db
        .create_index("t", key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    let hold = hold_training(&index);
    let mut rng = Rng::new(21);
    let data = clustered(&mut rng, 10_500, DIM, 20);
    let mut model = Model::new();
    let named = |range: std::ops::Range<usize>| -> Vec<(String, Vec<f32>)> {
        range.map(|i| (format!("i{i}"), data[i].clone())).collect()
    };
    for start in (0..10_000).step_by(1_000) {
        upsert(&index, &mut model, named(start..start + 1_000));
    }
    assert_eq!(
        hold.reached(Duration::from_secs(300)),
        Some(TrainingStage::Reading)
    );
    upsert(&index, &mut model, named(10_000..10_250));
    let gone: Vec<String> = (0..300).map(|i| format!("i{}", i * 7)).collect();
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    index.delete(&refs).unwrap();
    gone.iter().for_each(|id| {
        model.remove(id);
    });
    hold.go();
    assert_eq!(
        hold.reached(Duration::from_secs(300)),
        Some(TrainingStage::Sealed)
    );
    upsert(&index, &mut model, named(10_250..10_500));
    let replaced: Vec<(String, Vec<f32>)> = (0..100)
        .map(|i| (format!("i{}", i * 11 + 1), vec![i as f32; DIM]))
        .collect();
    upsert(&index, &mut model, replaced);
    (fs, db, index, hold, model)
}

#[test]
fn a_crash_at_every_call_of_a_training_install_recovers_every_write() {
    let key = IndexKey::generate();
    // The calls a clean install makes.
    let calls = {
        let dir = tempfile::tempdir().unwrap();
        let (fs, _db, index, hold, model) = held_at_install(dir.path(), &key);
        let before = fs.calls();
        hold.go();
        drop(hold);
        settle(&index);
        assert!(index.is_trained());
        assert_state(&index, &model, "clean install");
        fs.calls() - before
    };
    assert!(calls >= 4, "{calls} calls");
    let mut rng = Rng::new(8);
    let (mut trained, mut untrained) = (0, 0);
    for crash_at in 0..calls {
        let dir = tempfile::tempdir().unwrap();
        let (fs, db, index, hold, model) = held_at_install(dir.path(), &key);
        fs.fail_after(crash_at);
        hold.go();
        drop(hold);
        settle(&index);
        drop(index);
        drop(db);
        tear_unsynced(&fs.log(), &mut rng);
        let index = Database::open(dir.path())
            .unwrap()
            .open_index("t", &key)
            .unwrap();
        let what = format!("crash at call {crash_at} of {calls}");
        assert_state(&index, &model, &what);
        if index.is_trained() {
            trained += 1;
            assert!(index.training_status().trained_at_items.is_some());
        } else {
            untrained += 1;
        }
    }
    println!("{calls} crash points: {trained} recovered trained, {untrained} as before");
    assert!(trained > 0 && untrained > 0);
}

#[test]
fn a_crash_at_every_call_around_list_splits_recovers_every_write() {
    let key = IndexKey::generate();
    let mut rng = Rng::new(31);
    // Trained early, then grown in a skewed way: a few lists take most of the new items.
    let data = clustered(&mut rng, 1_000, DIM, 20);
    let hot = clustered(&mut rng, 3_000, DIM, 2);
    let run = |fs: &Arc<FaultyFs>, dir: &std::path::Path, crash_after: Option<usize>| {
        let db = open_database_with_fs(dir, fs.clone()).unwrap();
        let index = db
            .create_index("s", &key, IndexConfig::ivf_flat(DIM))
            .unwrap();
        let mut model = Model::new();
        upsert(
            &index,
            &mut model,
            data.iter()
                .enumerate()
                .map(|(i, v)| (format!("d{i}"), v.clone()))
                .collect(),
        );
        index.train().unwrap();
        let armed_at = fs.calls();
        if let Some(k) = crash_after {
            fs.fail_after(k);
        }
        let mut in_flight = None;
        for (n, chunk) in hot.chunks(250).enumerate() {
            let batch: Vec<(String, Vec<f32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("h{n}-{i}"), v.clone()))
                .collect();
            let result = index.upsert(batch.iter().map(|(id, v)| Item::new(id.clone(), v.clone())));
            match result {
                Ok(()) => model.extend(batch),
                Err(_) => {
                    in_flight = Some(batch);
                    break;
                }
            }
        }
        let splits = index.training_status().list_splits;
        let used = fs.calls() - armed_at;
        (db, index, model, in_flight, (splits, used))
    };
    let (calls, splits) = {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFs::new(usize::MAX, EIO, true));
        let (_db, index, model, _, (splits, used)) = run(&fs, dir.path(), None);
        assert_state(&index, &model, "clean");
        (used, splits)
    };
    assert!(splits > 0, "the writes split no list");
    let mut crash_rng = Rng::new(9);
    let mut points = 0;
    // Every call from the first write after training on (a clean run's count bounds it).
    for crash_at in 0..calls {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFs::new(usize::MAX, EIO, true));
        let (db, index, acked, in_flight, _) = run(&fs, dir.path(), Some(crash_at));
        drop(index);
        drop(db);
        tear_unsynced(&fs.log(), &mut crash_rng);
        let index = Database::open(dir.path())
            .unwrap()
            .open_index("s", &key)
            .unwrap();
        let got = contents(&index);
        let mut with_op = acked.clone();
        with_op.extend(in_flight.unwrap_or_default());
        let what = format!("crash at call {crash_at} after training");
        assert!(
            got == acked || got == with_op,
            "{what}: lost or invented writes"
        );
        assert_state(&index, &got, &what);
        points += 1;
    }
    println!("{points} crash points around {splits} list splits recovered");
}

/// The child of the kill -9 test: opens (or creates) index "k" in `CIPHERVEC_MAINT_DIR` and
/// upserts batches of `ops`, printing `CV:BEGIN n`, `CV:ACK n` and, after each, whether a
/// background training runs (`CV:TRAINING`) and how many lists it split so far.
#[test]
#[ignore = "child process of the self-maintenance kill -9 test"]
fn maintenance_kill_child() {
    use std::io::Write as _;
    let (Ok(dir), Ok(seed)) = (
        std::env::var("CIPHERVEC_MAINT_DIR"),
        std::env::var("CIPHERVEC_MAINT_SEED"),
    ) else {
        return;
    };
    let key = IndexKey::from_hex(&std::env::var("CIPHERVEC_MAINT_KEY").unwrap()).unwrap();
    let db = Database::open(&dir).unwrap();
    let index = match db.open_index("k", &key) {
        Ok(i) => i,
        Err(Error::IndexNotFound) => db
            .create_index("k", &key, IndexConfig::ivf_flat(DIM))
            .unwrap(),
        Err(e) => panic!("child open: {e:?}"),
    };
    let seed: u64 = seed.parse().unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "CV:READY").unwrap();
    out.flush().unwrap();
    for n in 0..10_000 {
        writeln!(out, "CV:BEGIN {n}").unwrap();
        out.flush().unwrap();
        let (batch, deletes) = kill_op(seed, n);
        index
            .upsert(batch.iter().map(|(id, v)| Item::new(id.clone(), v.clone())))
            .unwrap();
        if !deletes.is_empty() {
            let refs: Vec<&str> = deletes.iter().map(String::as_str).collect();
            index.delete(&refs).unwrap();
        }
        writeln!(out, "CV:ACK {n}").unwrap();
        let status = index.training_status();
        if status.training {
            writeln!(out, "CV:TRAINING").unwrap();
        }
        writeln!(out, "CV:SPLITS {}", status.list_splits).unwrap();
        out.flush().unwrap();
    }
}

/// Operation `n` of seed `seed`: 500 new items, and (every third operation) deletes of
/// items an earlier operation of the seed wrote.
fn kill_op(seed: u64, n: usize) -> (Vec<(String, Vec<f32>)>, Vec<String>) {
    let mut rng = Rng::new(seed * 100_000 + n as u64);
    let batch = clustered(&mut rng, 500, DIM, 12)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("s{seed}-{n}-{i}"), v))
        .collect();
    let deletes = if n % 3 == 2 {
        (0..50).map(|i| format!("s{seed}-{}-{i}", n - 2)).collect()
    } else {
        Vec::new()
    };
    (batch, deletes)
}

fn apply_kill_op(model: &mut Model, seed: u64, n: usize) {
    let (batch, deletes) = kill_op(seed, n);
    model.extend(batch);
    for id in deletes {
        model.remove(&id);
    }
}

#[test]
fn kill_minus_nine_while_training_and_splitting_loses_no_acknowledged_write() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let cycles: usize = std::env::var("CIPHERVEC_MAINT_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<u8> = (0..32u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(5))
        .collect();
    let key = IndexKey::from_bytes(&raw).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut rng = Rng::new(17);
    let mut model = Model::new();
    let (mut during_training, mut trained_states, mut splits) = (0, 0, 0);
    for cycle in 0..cycles {
        let seed = 1 + cycle as u64;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "api::self_maintenance_crash::maintenance_kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CIPHERVEC_MAINT_DIR", dir.path())
            .env("CIPHERVEC_MAINT_SEED", seed.to_string())
            .env("CIPHERVEC_MAINT_KEY", &hex)
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
        ready
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("cycle {cycle}: the child did not start"));
        std::thread::sleep(Duration::from_millis(100 + rng.below(700) as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut acked = model.clone();
        let mut in_flight = None;
        let mut training = false;
        let mut cycle_splits = 0u64;
        for line in &lines {
            if let Some(n) = line.strip_prefix("ACK ") {
                apply_kill_op(&mut acked, seed, n.parse().unwrap());
                in_flight = None;
                training = false;
            } else if let Some(n) = line.strip_prefix("BEGIN ") {
                in_flight = Some(n.parse::<usize>().unwrap());
            } else if line == "TRAINING" {
                training = true;
            } else if let Some(n) = line.strip_prefix("SPLITS ") {
                cycle_splits = n.parse().unwrap();
            }
        }
        splits += cycle_splits;
        during_training += usize::from(training);
        let start = std::time::Instant::now();
        let index = loop {
            match Database::open(dir.path()).unwrap().open_index("k", &key) {
                Ok(i) => break Some(i),
                Err(Error::IndexNotFound) => break None,
                Err(Error::Locked) if start.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("cycle {cycle}: reopen failed: {e:?}"),
            }
        };
        let Some(index) = index else {
            assert!(acked.is_empty(), "cycle {cycle}: index lost");
            continue;
        };
        let got = contents(&index);
        let what = format!("cycle {cycle} ({} items)", got.len());
        model = if got == acked {
            acked
        } else {
            // The write in flight (its upsert, and maybe its deletes) may have committed.
            let n = in_flight.unwrap_or_else(|| panic!("{what}: contents differ"));
            let (batch, deletes) = kill_op(seed, n);
            let mut with_upsert = acked.clone();
            with_upsert.extend(batch);
            let mut with_both = with_upsert.clone();
            for id in deletes {
                with_both.remove(&id);
            }
            assert!(
                got == with_upsert || got == with_both,
                "{what}: lost or invented writes"
            );
            got.clone()
        };
        assert_state(&index, &model, &what);
        trained_states += usize::from(index.is_trained());
    }
    println!(
        "{cycles} kill -9 cycles ({during_training} while a background training ran, {splits} lists split, {trained_states} reopened trained), {} items, 0 acknowledged writes lost",
        model.len()
    );
    assert!(during_training > 0, "no kill hit a background training");
}
