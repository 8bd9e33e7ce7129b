//! Self-maintenance: an index that is only written and queried trains itself in the
//! background, retrains as it grows, and keeps recall against the brute-force oracle, while
//! writes and queries go on during a training.

use ciphervec::{Database, IndexConfig, IndexKey, Item, Metric, Query};

use super::common::*;

const DIM: usize = 16;

/// Waits (polling, no time bound) until no background training runs.
fn settle(index: &ciphervec::EncryptedIndex) {
    while index.is_training() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Recall@10 of `index` at its defaults against brute force over `data` (ids `item-<i>`).
fn recall_at_10(index: &ciphervec::EncryptedIndex, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for q in queries {
        let want: Vec<String> = brute_force(Metric::Euclidean, data, q, 10)
            .into_iter()
            .map(|(i, _)| format!("item-{i}"))
            .collect();
        let hits = index.query(&Query::new(q.clone()).top_k(10)).unwrap();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn an_index_grown_13x_trains_itself_and_keeps_recall() {
    let mut rng = Rng::new(7);
    let data = clustered(&mut rng, 40_000, DIM, 60);
    let queries: Vec<Vec<f32>> = clustered(&mut rng, 200, DIM, 60);
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("grow", &key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    let all = items(&data);
    index.upsert(all[..3_000].iter().cloned()).unwrap();
    index.train().unwrap();
    assert_eq!(index.training_status().trained_at_items, Some(3_000));
    let t0 = std::time::Instant::now();
    for batch in all[3_000..].chunks(1_000) {
        index.upsert(batch.iter().cloned()).unwrap();
    }
    println!("writes took {:?}", t0.elapsed());
    settle(&index);
    let status = index.training_status();
    println!("{status:?}");
    assert!(status.background_trainings >= 1, "{status:?}");
    let recall = recall_at_10(&index, &data, &queries);
    println!("recall@10 {recall}");
    assert!(recall >= 0.95, "recall {recall}");
}

/// id -> vector: what the index must hold.
type Model = std::collections::BTreeMap<String, Vec<f32>>;

/// The index's whole contents.
fn contents(index: &ciphervec::EncryptedIndex) -> Model {
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index
        .get(&refs, ciphervec::Include::VECTOR)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.vector.unwrap()))
        .collect()
}

/// Contents equal `model`, and queries probing every list agree with brute force over it:
/// exactly for `ivf_flat`; for quantized types (whose candidates come from codes) every hit's
/// distance is its exact distance and recall@10 is at least 0.9.
fn assert_matches(index: &ciphervec::EncryptedIndex, model: &Model, metric: Metric, what: &str) {
    assert_eq!(index.len(), model.len(), "{what}: len");
    assert!(&contents(index) == model, "{what}: contents differ");
    let exact = index.config().index_type() == ciphervec::IndexType::IvfFlat;
    let (ids, vectors): (Vec<&String>, Vec<Vec<f32>>) =
        model.iter().map(|(id, v)| (id, v.clone())).unzip();
    let mut rng = Rng::new(5);
    let (mut found, mut wanted) = (0, 0);
    for _ in 0..10 {
        let q = vectors[rng.below(vectors.len())].clone();
        let want = brute_force(metric, &vectors, &q, 10);
        let hits = index
            .query(&Query::new(q.clone()).top_k(10).n_probes(usize::MAX))
            .unwrap();
        assert_eq!(hits.len(), want.len(), "{what}");
        for (h, (i, d)) in hits.iter().zip(&want) {
            let own = distance(metric, &q, &model[&h.id]);
            assert!(
                (h.distance - own).abs() <= 1e-4 * own.abs().max(1.0),
                "{what}: {} at {} is at {own}",
                h.id,
                h.distance
            );
            if exact {
                let same = &h.id == ids[*i] || (h.distance - d).abs() <= 1e-4 * d.abs().max(1.0);
                assert!(
                    same,
                    "{what}: {} at {} where {} at {d}",
                    h.id, h.distance, ids[*i]
                );
            }
        }
        found += want
            .iter()
            .filter(|(i, _)| hits.iter().any(|h| &h.id == ids[*i]))
            .count();
        wanted += want.len();
    }
    assert!(
        found as f64 >= 0.9 * wanted as f64,
        "{what}: recall {found}/{wanted}"
    );
}

/// Writes of every kind (new items, replaced vectors, deletes, a delete then an insert of
/// the same id), applied to the index and the model; `round` makes their ids and vectors
/// new.
fn write_everything(
    index: &ciphervec::EncryptedIndex,
    model: &mut Model,
    rng: &mut Rng,
    round: usize,
) {
    let fresh = clustered(rng, 700, DIM, 60);
    let new: Vec<(String, Vec<f32>)> = fresh
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("new-{round}-{i}"), v))
        .collect();
    let existing: Vec<String> = model.keys().cloned().collect();
    let pick = |n: usize, rng: &mut Rng| -> Vec<String> {
        (0..n)
            .map(|_| existing[rng.below(existing.len())].clone())
            .collect()
    };
    let replaced: Vec<(String, Vec<f32>)> = pick(150, rng)
        .into_iter()
        .map(|id| (id, (0..DIM).map(|_| rng.f32() * 3.0).collect()))
        .collect();
    let deleted = pick(200, rng);
    let back = pick(40, rng);
    let upsert = |batch: &[(String, Vec<f32>)], model: &mut Model| {
        index
            .upsert(batch.iter().map(|(id, v)| Item::new(id.clone(), v.clone())))
            .unwrap();
        for (id, v) in batch {
            model.insert(id.clone(), v.clone());
        }
    };
    upsert(&new, model);
    upsert(&replaced, model);
    let refs: Vec<&str> = deleted.iter().map(String::as_str).collect();
    index.delete(&refs).unwrap();
    for id in &deleted {
        model.remove(id);
    }
    let refs: Vec<&str> = back.iter().map(String::as_str).collect();
    index.delete(&refs).unwrap();
    for id in &back {
        model.remove(id);
    }
    let again: Vec<(String, Vec<f32>)> = back
        .into_iter()
        .map(|id| (id, (0..DIM).map(|_| rng.f32() * 3.0).collect()))
        .collect();
    upsert(&again, model);
}

/// Runs `f` on another thread and fails if it does not return within a minute: writes and
/// queries must not wait for a training that a test holds.
fn must_finish<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} waited for the held training"))
}

/// One case of the concurrency test: a training held at each stage while every kind of
/// write and query runs, then installed; the index, a reader on another handle and the
/// reopened index all hold exactly the writes.
fn writes_during_training(config: IndexConfig, options: ciphervec::DatabaseOptions, what: &str) {
    use ciphervec::internals::{TrainingStage, hold_training};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let metric = config.distance_metric();
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open_with(dir.path(), options.clone()).unwrap();
    let index = db.create_index("w", &key, config).unwrap();
    let hold = hold_training(&index);
    let mut rng = Rng::new(11);
    let data = clustered(&mut rng, 10_000, DIM, 60);
    let mut model: Model = Model::new();
    for (n, batch) in items(&data).chunks(1_000).enumerate() {
        index.upsert(batch.iter().cloned()).unwrap();
        assert_eq!(index.is_training(), n == 9, "{what}: batch {n}");
    }
    for (i, v) in data.iter().enumerate() {
        model.insert(format!("item-{i}"), v.clone());
    }
    // A reader on another handle, refreshing throughout.
    let reader_db = Database::open_with(dir.path(), options.clone()).unwrap();
    let reader = reader_db.open_index_read_only("w", &key).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader_states = Arc::new(Mutex::new(0usize));
    let reader_thread = {
        let (stop, states, reader) = (stop.clone(), reader_states.clone(), reader.clone());
        let what = what.to_owned();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if reader.refresh().unwrap() {
                    // Whatever state it serves, exact answers are those of its contents.
                    let seen = contents(&reader);
                    assert_matches(&reader, &seen, metric, &format!("{what}: reader"));
                    *states.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for (round, stage) in [TrainingStage::Reading, TrainingStage::Sealed]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            hold.reached(Duration::from_secs(300)),
            Some(stage),
            "{what}"
        );
        assert!(
            index.is_training() && index.training_status().training,
            "{what}"
        );
        let (i, m, r) = (index.clone(), model.clone(), Rng::new(100 + round as u64));
        let (m, _r) = must_finish("writes", move || {
            let (mut m, mut r) = (m, r);
            write_everything(&i, &mut m, &mut r, round);
            (m, r)
        });
        model = m;
        let (i, m) = (index.clone(), model.clone());
        must_finish("queries", move || {
            assert_matches(&i, &m, metric, "during the training");
        });
        assert!(!index.is_trained(), "{what}: installed while held");
        hold.go();
    }
    drop(hold);
    settle(&index);
    assert!(index.is_trained(), "{what}");
    let status = index.training_status();
    assert!(status.background_trainings >= 1, "{what}: {status:?}");
    assert_matches(&index, &model, metric, &format!("{what}: installed"));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    reader_thread.join().unwrap();
    assert!(reader.refresh().is_ok());
    assert_matches(
        &reader,
        &model,
        metric,
        &format!("{what}: reader at the end"),
    );
    assert!(*reader_states.lock().unwrap() >= 1, "{what}");
    index.verify().unwrap();
    drop((index, reader, db, reader_db));
    let index = Database::open_with(dir.path(), options)
        .unwrap()
        .open_index("w", &key)
        .unwrap();
    assert!(index.is_trained());
    assert_matches(&index, &model, metric, &format!("{what}: reopened"));
    index.verify().unwrap();
}

#[test]
fn writes_and_queries_go_on_while_a_training_runs_and_all_are_kept() {
    let options = ciphervec::DatabaseOptions::default();
    writes_during_training(IndexConfig::ivf_flat(DIM), options.clone(), "ivf_flat");
    writes_during_training(
        IndexConfig::ivf_flat(DIM).metric(Metric::Cosine),
        options.clone(),
        "ivf_flat cosine",
    );
    // Lists decrypted on demand (over a small cache budget).
    let mut small = ciphervec::DatabaseOptions::default();
    small.cache_budget = Some(64 << 10);
    writes_during_training(
        IndexConfig::ivf_flat(DIM),
        small.clone(),
        "ivf_flat on demand",
    );
    writes_during_training(IndexConfig::ivf_sq8(DIM), options.clone(), "ivf_sq8");
    writes_during_training(IndexConfig::ivf_pq(DIM, 4), small, "ivf_pq codes only");
}
