//! What a training option costs and gives: for each index type, loads a data set once, then
//! trains it with each `--iters` value (and each `--points` per list, 0 for the default
//! sample), interleaved over `--rounds`, and after each training answers every query with
//! the default probes and re-rank on one thread: train seconds, recall@10 and QPS. A/B in one command for changes of
//! training defaults (`TrainOptions`).
//!
//! ```text
//! cargo run --release --example train_quality -- [--data DIR] [--types flat,sq8,pq:96]
//!     [--iters 20,10] [--points 0] [--rounds 1]
//! ```
//! `--data` defaults to `../shared/data/wordnet-minilm-50k`. Prints one JSON line per
//! training.

use std::path::PathBuf;
use std::time::Instant;

use ciphervec::{Database, IndexKey, Item, Query, TrainOptions};
use serde_json::json;

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    use flags::arg;
    let list = |flag: &str, default: &str| -> Vec<String> {
        arg(flag)
            .unwrap_or_else(|| default.to_string())
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let numbers = |flag: &str, default: &str| -> Vec<usize> {
        list(flag, default)
            .iter()
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    let data = PathBuf::from(
        arg("--data").unwrap_or_else(|| "../shared/data/wordnet-minilm-50k".to_string()),
    );
    let (base, queries, truth) = texmex::load(&data);
    let dim = base[0].len();
    let (iters, points) = (numbers("--iters", "20,10"), numbers("--points", "0"));
    let rounds = numbers("--rounds", "1")[0];
    let key = IndexKey::generate();
    for index_type in list("--types", "flat,sq8,pq:96") {
        let dir = std::env::temp_dir().join(format!("ciphervec-tq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = bench_index::config_of(&index_type, dim).auto_train(false);
        let index = Database::open(&dir)?.create_index("tq", &key, config)?;
        let items = base
            .iter()
            .enumerate()
            .map(|(i, v)| Item::new(i.to_string(), v.clone()));
        index.upsert(items)?;
        for round in 0..rounds {
            for &max_iters in &iters {
                for &per_list in &points {
                    let n_lists = ciphervec::internals::auto_n_lists(
                        base.len(),
                        index_type.starts_with("pq"),
                    );
                    let options = TrainOptions {
                        max_iters,
                        sample_size: per_list * n_lists,
                        ..TrainOptions::default()
                    };
                    let t = Instant::now();
                    index.train_with(options)?;
                    let train_s = t.elapsed().as_secs_f64();
                    let (recall, qps) = answer(&index, &queries, &truth)?;
                    println!(
                        "{}",
                        json!({
                            "type": index_type, "round": round, "max_iters": max_iters,
                            "points_per_list": per_list, "n_lists": index.n_lists(),
                            "train_s": train_s, "recall@10": recall, "qps": qps,
                        })
                    );
                }
            }
        }
        drop(index);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Recall@10 and queries per second of one query per call, with the index's default probes.
fn answer(
    index: &ciphervec::EncryptedIndex,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
) -> ciphervec::Result<(f64, f64)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool");
    pool.install(|| {
        let t = Instant::now();
        let mut ids = Vec::with_capacity(queries.len());
        for q in queries {
            let hits = index.query(&Query::new(q.clone()).top_k(10))?;
            ids.push(hits.into_iter().map(|h| h.id).collect::<Vec<_>>());
        }
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        Ok((texmex::recall(&ids, truth, 10), qps))
    })
}
