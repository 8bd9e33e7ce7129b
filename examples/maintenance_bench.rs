//! Self-maintenance measured: what automatic training and list splits cost writes and
//! queries, and what they keep of recall and speed as an index grows.
//!
//! ```text
//! cargo run --release --example maintenance_bench -- growth  [DIR] [flat|pq] [ROUNDS]
//! cargo run --release --example maintenance_bench -- between [DIR] [flat|pq] [ROUNDS]
//! cargo run --release --example maintenance_bench -- latency [DIR] [flat|pq]
//! ```
//!
//! `DIR` holds `base.fvecs`, `query.fvecs` and `groundtruth.ivecs` (default
//! `../shared/data/wordnet-minilm-50k`, the 50,000 sentence embeddings).
//!
//! - `growth`: three indexes of the same vectors, written in batches of 1,000: trained once
//!   on all of them (the reference); trained at 2% of them, then grown with self-maintenance
//!   on; and the same with it off. Recall@10 and queries per second (all queries in one
//!   `query_batch`, defaults) of each, the QPS as medians over `ROUNDS` interleaved rounds,
//!   and the maintained and unmaintained ones as ratios against the reference.
//! - `between`: the same, trained just past half of the vectors, so that no retraining is
//!   due before the end: what list splits alone keep between two trainings.
//! - `latency`: from empty, batches of 1,000 while another thread queries one vector at a
//!   time, with self-maintenance on, and with it off followed by an explicit `train`
//!   (today's way): every upsert's and query's latency (their distribution while a
//!   background training ran and while none did), the write throughput, the time to the
//!   first trained state and until settled, recall at the end; on's against off's.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciphervec::{Database, EncryptedIndex, IndexConfig, IndexKey, Item, Query};

#[path = "support/texmex.rs"]
mod texmex;

/// Items per upsert.
const BATCH: usize = 1_000;

fn main() -> ciphervec::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("growth", String::as_str);
    let dir = args.get(1).map_or_else(
        || PathBuf::from("../shared/data/wordnet-minilm-50k"),
        PathBuf::from,
    );
    let pq = args.get(2).is_some_and(|t| t == "pq");
    let rounds: usize = args.get(3).map_or(5, |r| r.parse().expect("ROUNDS"));
    let (base, queries, truth) = texmex::load(&dir);
    let dim = base[0].len();
    let config = if pq {
        IndexConfig::ivf_pq(dim, IndexConfig::default_subquantizers(dim))
    } else {
        IndexConfig::ivf_flat(dim)
    };
    println!(
        "{} vectors of {dim} dimensions, {} queries, {}",
        base.len(),
        queries.len(),
        if pq { "ivf_pq" } else { "ivf_flat" }
    );
    match mode {
        "growth" => growth(config, (&base, &queries, &truth), rounds, base.len() / 50),
        // Trained just past half: no retraining is due before the end (twice the size),
        // so only list splits follow the growth.
        "between" => growth(
            config,
            (&base, &queries, &truth),
            rounds,
            base.len() / 2 + BATCH,
        ),
        "latency" => latency(config, (&base, &queries, &truth)),
        other => panic!("unknown mode {other}"),
    }
}

type Data<'a> = (&'a [Vec<f32>], &'a [Vec<f32>], &'a [Vec<usize>]);

/// The batches of 1,000 items of rows `range` of `base`.
fn batches(base: &[Vec<f32>], range: std::ops::Range<usize>) -> Vec<Vec<Item>> {
    let mut out: Vec<Vec<Item>> = Vec::new();
    for i in range {
        if out.last().is_none_or(|b| b.len() == BATCH) {
            out.push(Vec::with_capacity(BATCH));
        }
        out.last_mut()
            .unwrap()
            .push(Item::new(i.to_string(), base[i].clone()));
    }
    out
}

/// A fresh index in a temporary folder (kept alive by the returned guard).
fn fresh(config: IndexConfig) -> ciphervec::Result<(tempfile::TempDir, EncryptedIndex)> {
    let dir = tempfile::tempdir()?;
    let index = Database::open(dir.path())?.create_index("bench", &IndexKey::generate(), config)?;
    Ok((dir, index))
}

/// Waits until no background training runs.
fn settle(index: &EncryptedIndex) {
    while index.is_training() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Recall@10 of the default query of every query vector.
fn recall(index: &EncryptedIndex, queries: &[Vec<f32>], truth: &[Vec<usize>]) -> f64 {
    let qs: Vec<Query> = queries.iter().map(|q| Query::new(q.clone())).collect();
    let results = index.query_batch(&qs).expect("query");
    let mut found = 0;
    for (hits, t) in results.iter().zip(truth) {
        let want: HashSet<String> = t[..10].iter().map(ToString::to_string).collect();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * results.len()) as f64
}

/// Queries per second of one `query_batch` of every query vector.
fn qps(index: &EncryptedIndex, queries: &[Vec<f32>]) -> f64 {
    let qs: Vec<Query> = queries.iter().map(|q| Query::new(q.clone())).collect();
    let start = Instant::now();
    index.query_batch(&qs).expect("query");
    qs.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn growth(
    config: IndexConfig,
    (base, queries, truth): Data<'_>,
    rounds: usize,
    first: usize,
) -> ciphervec::Result<()> {
    let n = base.len();
    let share = 100.0 * first as f64 / n as f64;
    let build = |auto: bool, trained_at: usize| -> ciphervec::Result<_> {
        let start = Instant::now();
        let (dir, index) = fresh(config.clone().auto_train(auto))?;
        for b in batches(base, 0..trained_at) {
            index.upsert(b)?;
        }
        index.train()?;
        for b in batches(base, trained_at..n) {
            index.upsert(b)?;
        }
        settle(&index);
        let took = start.elapsed().as_secs_f64();
        Ok((dir, index, took))
    };
    let (_a, once, t_once) = build(false, n)?;
    let (_b, kept, t_kept) = build(true, first)?;
    let (_c, drift, t_drift) = build(false, first)?;
    let names = [
        "trained once on all".to_string(),
        format!("trained at {share:.0}%, maintained"),
        format!("trained at {share:.0}%, not maintained"),
    ];
    let indexes = [&once, &kept, &drift];
    let times = [t_once, t_kept, t_drift];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for round in 0..rounds {
        // Each round starts with another index: the first of a round measured slower.
        for k in 0..indexes.len() {
            let i = (round + k) % indexes.len();
            rates[i].push(qps(indexes[i], queries));
        }
    }
    let ratios = |i: usize| -> f64 {
        median(
            rates[i]
                .iter()
                .zip(&rates[0])
                .map(|(r, base)| r / base)
                .collect(),
        )
    };
    println!(
        "index                          lists  recall@10  QPS (median)  QPS / once  build s  status"
    );
    for (i, index) in indexes.iter().enumerate() {
        let s = index.training_status();
        println!(
            "{:<30} {:>5}  {:>9.4}  {:>12.0}  {:>10.3}  {:>7.1}  trainings {} splits {} trained at {:?}",
            names[i],
            index.n_lists(),
            recall(index, queries, truth),
            median(rates[i].clone()),
            ratios(i),
            times[i],
            s.background_trainings,
            s.list_splits,
            s.trained_at_items
        );
    }
    Ok(())
}

/// Latencies, in seconds, with whether a background training ran when each began.
type Timings = Arc<Mutex<Vec<(f64, bool)>>>;

/// What one run of [`ingest`] measured.
struct Ingest {
    /// Seconds the upserts took, all together.
    writes: f64,
    /// Seconds from the first upsert until the index was first trained.
    first_trained: f64,
    /// Seconds from the first upsert until no training was due or running.
    settled: f64,
    upserts: Vec<(f64, bool)>,
    queries: Vec<(f64, bool)>,
}

/// Upserts every vector in batches of 1,000 into a fresh index of `config` (`with_reader`:
/// while another thread queries one vector at a time); with `explicit_train`, then calls
/// `train` (today's way). Times every upsert and query, and when the index was first trained and settled.
fn ingest(
    config: IndexConfig,
    (base, queries): (&[Vec<f32>], &[Vec<f32>]),
    (explicit_train, with_reader): (bool, bool),
) -> ciphervec::Result<(tempfile::TempDir, EncryptedIndex, Ingest)> {
    let (dir, index) = fresh(config)?;
    let upserts: Timings = Arc::default();
    let reads: Timings = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (index, reads, done) = (index.clone(), reads.clone(), done.clone());
        let queries = queries.to_vec();
        std::thread::spawn(move || {
            let mut i = 0;
            while with_reader && !done.load(Ordering::Relaxed) {
                let q = Query::new(queries[i % queries.len()].clone());
                let training = index.is_training();
                let t = Instant::now();
                index.query(&q).expect("query");
                reads
                    .lock()
                    .unwrap()
                    .push((t.elapsed().as_secs_f64(), training));
                i += 1;
            }
        })
    };
    let start = Instant::now();
    let mut first_trained = None;
    let mut note_trained = |index: &EncryptedIndex| {
        if first_trained.is_none() && index.is_trained() {
            first_trained = Some(start.elapsed().as_secs_f64());
        }
    };
    for b in batches(base, 0..base.len()) {
        let training = index.is_training();
        let t = Instant::now();
        index.upsert(b)?;
        upserts
            .lock()
            .unwrap()
            .push((t.elapsed().as_secs_f64(), training));
        note_trained(&index);
    }
    let writes = start.elapsed().as_secs_f64();
    if explicit_train {
        index.train()?;
    }
    while index.is_training() {
        std::thread::sleep(Duration::from_millis(10));
        note_trained(&index);
    }
    note_trained(&index);
    let settled = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let upserts = upserts.lock().unwrap().clone();
    let queries = reads.lock().unwrap().clone();
    let result = Ingest {
        writes,
        first_trained: first_trained.unwrap_or(f64::NAN),
        settled,
        upserts,
        queries,
    };
    Ok((dir, index, result))
}

fn latency(config: IndexConfig, (base, queries, truth): Data<'_>) -> ciphervec::Result<()> {
    let n = base.len() as f64;
    for with_reader in [false, true] {
        println!(
            "--- {}",
            if with_reader {
                "a thread queries one vector at a time throughout"
            } else {
                "writes alone"
            }
        );
        // Today's way (writes, then an explicit `train`), and self-maintenance.
        let (_d0, plain, off) = ingest(
            config.clone().auto_train(false),
            (base, queries),
            (true, with_reader),
        )?;
        println!(
            "maintenance off: {n} upserts in {:.2} s ({:.0} items/s), then train: trained after {:.2} s, recall@10 {:.4}",
            off.writes,
            n / off.writes,
            off.first_trained,
            recall(&plain, queries, truth)
        );
        drop(plain);
        let (_d1, index, on) = ingest(config.clone(), (base, queries), (false, with_reader))?;
        println!(
            "maintenance on:  {n} upserts in {:.2} s ({:.0} items/s: {:.3}x of off), first trained after {:.2} s ({:.3}x of off), settled after {:.2} s ({:.3}x of off); recall@10 {:.4}",
            on.writes,
            n / on.writes,
            off.writes / on.writes,
            on.first_trained,
            on.first_trained / off.first_trained,
            on.settled,
            on.settled / off.settled,
            recall(&index, queries, truth)
        );
        println!("{:?}", index.training_status());
        report("off: upsert of 1,000", &off.upserts);
        report("on: upsert of 1,000", &on.upserts);
        if with_reader {
            report("off: query (top 10)", &off.queries);
            report("on: query (top 10)", &on.queries);
        }
    }
    Ok(())
}

/// Prints the distribution of `timings`, split by whether a training ran.
fn report(what: &str, timings: &[(f64, bool)]) {
    for (label, during) in [("while training", true), ("otherwise", false)] {
        let mut v: Vec<f64> = timings
            .iter()
            .filter(|t| t.1 == during)
            .map(|t| t.0 * 1e3)
            .collect();
        if v.is_empty() {
            println!("{what} {label}: none");
            continue;
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{what} {label}: {} of them, ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            v.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            v[v.len() - 1]
        );
    }
}
