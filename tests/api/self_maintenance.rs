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

/// Recall@10 of every query at the index's defaults (one batch) against the exact top 10.
fn real_recall(index: &ciphervec::EncryptedIndex, queries: &[Vec<f32>], truth: &[Vec<i32>]) -> f64 {
    let qs: Vec<Query> = queries.iter().map(|q| Query::new(q.clone())).collect();
    let results = index.query_batch(&qs).unwrap();
    let mut found = 0;
    for (hits, t) in results.iter().zip(truth) {
        let want: std::collections::HashSet<String> =
            t[..10].iter().map(ToString::to_string).collect();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * results.len()) as f64
}

/// Percentiles of latencies in seconds, as text in milliseconds.
fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] * 1e3;
    format!(
        "{} of them, ms: p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// The sentence embeddings written in batches of 1,000 (a thread querying meanwhile), and
/// `train` never called: the index ends trained with recall@10 >= 0.95 at its defaults.
/// The latency of every upsert and query is printed (figures, not assertions: see
/// `examples/maintenance_bench.rs`).
#[test]
fn real_embeddings_written_in_batches_train_themselves() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let Some((base, queries, truth)) = super::real_data::sentence_embeddings() else {
        return;
    };
    let dim = base[0].len();
    let index = Database::in_memory()
        .create_index("auto", &IndexKey::generate(), IndexConfig::ivf_flat(dim))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reads: Arc<Mutex<Vec<(f64, bool)>>> = Arc::default();
    let reader = {
        let (index, done, reads, queries) =
            (index.clone(), done.clone(), reads.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                let training = index.is_training();
                let t = std::time::Instant::now();
                index
                    .query(&Query::new(queries[i % queries.len()].clone()))
                    .unwrap();
                reads
                    .lock()
                    .unwrap()
                    .push((t.elapsed().as_secs_f64(), training));
                i += 1;
            }
        })
    };
    let mut writes = Vec::new();
    for (n, chunk) in base.chunks(1_000).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Item::new((n * 1_000 + i).to_string(), v.clone()));
        let training = index.is_training();
        let t = std::time::Instant::now();
        index.upsert(batch).unwrap();
        writes.push((t.elapsed().as_secs_f64(), training));
    }
    settle(&index);
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    let status = index.training_status();
    assert!(index.is_trained(), "{status:?}");
    assert!(
        status.background_trainings >= 1 && status.last_error.is_none(),
        "{status:?}"
    );
    let recall = real_recall(&index, &queries, &truth);
    let reads = reads.lock().unwrap().clone();
    let split = |v: &[(f64, bool)], during: bool| -> Vec<f64> {
        v.iter().filter(|t| t.1 == during).map(|t| t.0).collect()
    };
    println!("{status:?}; recall@10 {recall:.4}");
    println!(
        "upserts while training: {}",
        percentiles(split(&writes, true))
    );
    println!("upserts otherwise: {}", percentiles(split(&writes, false)));
    println!(
        "queries while training: {}",
        percentiles(split(&reads, true))
    );
    println!("queries otherwise: {}", percentiles(split(&reads, false)));
    assert!(recall >= 0.95, "recall@10 {recall}");
}

/// Trained at 2% of the sentence embeddings, then grown to all of them: with maintenance,
/// recall@10 at the defaults is that of the index trained once on all of them (within
/// 0.01); without, the lists of 1,000 items hold 50 times as many (the figure is printed;
/// QPS is measured in `examples/maintenance_bench.rs`).
#[test]
fn real_embeddings_grown_50x_past_training_keep_the_recall_of_one_training() {
    let Some((base, queries, truth)) = super::real_data::sentence_embeddings() else {
        return;
    };
    let dim = base[0].len();
    let build = |auto: bool, first: usize| {
        let index = Database::in_memory()
            .create_index(
                "g",
                &IndexKey::generate(),
                IndexConfig::ivf_flat(dim).auto_train(auto),
            )
            .unwrap();
        let items = |range: std::ops::Range<usize>| -> Vec<Item> {
            range
                .map(|i| Item::new(i.to_string(), base[i].clone()))
                .collect()
        };
        for start in (0..first).step_by(1_000) {
            index
                .upsert(items(start..(start + 1_000).min(first)))
                .unwrap();
        }
        index.train().unwrap();
        for start in (first..base.len()).step_by(1_000) {
            index
                .upsert(items(start..(start + 1_000).min(base.len())))
                .unwrap();
        }
        settle(&index);
        index
    };
    let once = build(false, base.len());
    let kept = build(true, base.len() / 50);
    let drift = build(false, base.len() / 50);
    let [r_once, r_kept, r_drift] =
        [&once, &kept, &drift].map(|i| real_recall(i, &queries, &truth));
    println!(
        "recall@10: trained once {r_once:.4} ({} lists), maintained {r_kept:.4} ({} lists, {:?}), not maintained {r_drift:.4} ({} lists)",
        once.n_lists(),
        kept.n_lists(),
        kept.training_status(),
        drift.n_lists()
    );
    assert!(
        r_kept >= r_once - 0.01,
        "maintained {r_kept} against {r_once}"
    );
    assert!(
        kept.n_lists() * 10 >= once.n_lists() * 8,
        "{} lists",
        kept.n_lists()
    );
    assert_eq!(
        drift.n_lists(),
        25,
        "not maintained: the lists of 1,000 items stay"
    );
}

/// The common order "upsert everything, then `train()`": the upserts start a background
/// training, `train()` waits for it, and when that training was the last commit and covered
/// every item, `train()` does not fit the same lists again (no new commit). Other options,
/// or a write since, train as before.
#[test]
fn train_after_a_background_training_of_the_same_items_is_not_repeated() {
    let mut rng = Rng::new(11);
    let data = clustered(&mut rng, 12_000, DIM, 40);
    let queries = clustered(&mut rng, 100, DIM, 40);
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("once", &key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    let all = items(&data);
    index.upsert(all.iter().cloned()).unwrap();
    index.train().unwrap();
    let status = index.training_status();
    assert_eq!(status.background_trainings, 1, "{status:?}");
    assert_eq!(status.trained_at_items, Some(12_000), "{status:?}");
    let recall = recall_at_10(&index, &data, &queries);
    assert!(recall >= 0.95, "recall {recall}");
    // Nothing new to train on: no commit.
    let trained = index.anchor();
    index.train().unwrap();
    assert_eq!(index.anchor(), trained);
    // Other options train.
    index
        .train_with(ciphervec::TrainOptions {
            n_lists: 50,
            ..Default::default()
        })
        .unwrap();
    assert_ne!(index.anchor(), trained);
    assert_eq!(index.training_status().n_lists, 50);
    // A background training, then a write: `train()` trains again.
    let fresh = db
        .create_index("again", &key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    fresh.upsert(all[..11_000].iter().cloned()).unwrap();
    settle(&fresh);
    fresh.upsert(all[11_000..].iter().cloned()).unwrap();
    settle(&fresh);
    let before = fresh.anchor();
    let trainings = fresh.training_status().background_trainings;
    fresh.train().unwrap();
    assert_ne!(fresh.anchor(), before);
    assert_eq!(fresh.training_status().trained_at_items, Some(12_000));
    assert_eq!(fresh.training_status().background_trainings, trainings);
    assert!(recall_at_10(&fresh, &data, &queries) >= 0.95);
}
