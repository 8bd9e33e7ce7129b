//! The Rust side of `bench/node_bench.sh`: the work `bench/node_bench.js` times through the
//! Node.js package, done through the core directly on the same files, in the same run, so
//! that the two print as a ratio.
//!
//! ```text
//! cargo run --release --example node_baseline -- DATA_DIR DB_DIR NAME KEY_FILE N_PROBES BATCH NQ ROUNDS
//! ```
//! - `upsert_rows` of `DATA_DIR/base.fvecs` (ids "0", "1", ...) in batches of `BATCH` rows
//!   into a fresh index `NAME` of a fresh folder (`DB_DIR-rust-upsert`), as the Node side
//!   does into its own;
//! - the first `NQ` queries of `DATA_DIR/query.fvecs` against the index `NAME` that the
//!   Node side built in `DB_DIR` (opened read-only with the key in `KEY_FILE`), one `query`
//!   per call, one `query_batch`, and one `query` per call from two threads taking turns
//!   (the Rust counterpart of `Promise.all`), top 10 at `N_PROBES` (best of `ROUNDS`).
//!
//! Prints one JSON line: the rates and the ids of every query's hits (the Node side checks
//! that it answered the same).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ciphervec::{Database, IndexConfig, IndexKey, Query};
use serde_json::json;

#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, db, name, key_file, probes, batch, nq, rounds] = args.as_slice() else {
        panic!("usage: node_baseline DATA_DIR DB_DIR NAME KEY_FILE N_PROBES BATCH NQ ROUNDS");
    };
    let number = |s: &str| -> usize { s.parse().expect("a number") };
    let (probes, batch, nq, rounds) = (
        number(probes),
        number(batch),
        number(nq),
        number(rounds).max(1),
    );
    let data = PathBuf::from(data);
    let key = IndexKey::from_base64_file(key_file)?;

    // upsert_rows, batch by batch, from rows already in memory.
    let base = texmex::read_vecs(&data.join("base.fvecs"), f32::from_le_bytes);
    let dim = base[0].len();
    let rows: Vec<f32> = base.concat();
    let ids: Vec<String> = (0..base.len()).map(|i| i.to_string()).collect();
    let upsert_dir = PathBuf::from(format!("{db}-rust-upsert"));
    let _ = std::fs::remove_dir_all(&upsert_dir);
    let fresh =
        Database::open(&upsert_dir)?.create_index(name, &key, IndexConfig::ivf_flat(dim))?;
    let start = Instant::now();
    for (chunk, ids) in rows.chunks(batch * dim).zip(ids.chunks(batch)) {
        fresh.upsert_rows(ids, chunk)?;
    }
    let upsert_rate = base.len() as f64 / start.elapsed().as_secs_f64();
    drop(fresh);
    remove(&upsert_dir);

    // The Node side's index, read-only.
    let index = Database::open(db)?.open_index_read_only(name, &key)?;
    let queries: Vec<Query> = texmex::read_vecs(&data.join("query.fvecs"), f32::from_le_bytes)
        .into_iter()
        .take(nq)
        .map(|q| Query::new(q).top_k(10).n_probes(probes))
        .collect();
    let (mut single, mut batched, mut threads) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut answers = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        answers = queries
            .iter()
            .map(|q| index.query(q))
            .collect::<ciphervec::Result<Vec<_>>>()?;
        single = single.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let all = index.query_batch(&queries)?;
        batched = batched.min(start.elapsed().as_secs_f64());
        assert_eq!(all, answers, "query_batch answers as query does");
        let start = Instant::now();
        std::thread::scope(|scope| {
            for half in 0..2 {
                let (index, queries) = (&index, &queries);
                scope.spawn(move || {
                    for q in queries.iter().skip(half).step_by(2) {
                        index.query(q).expect("a query");
                    }
                });
            }
        });
        threads = threads.min(start.elapsed().as_secs_f64());
    }
    let ids: Vec<Vec<String>> = answers
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| h.id).collect())
        .collect();
    println!(
        "{}",
        json!({
            "upsert_rows_per_s": upsert_rate,
            "qps_single": queries.len() as f64 / single,
            "qps_batch": queries.len() as f64 / batched,
            "qps_two_threads": queries.len() as f64 / threads,
            "ids": ids,
        })
    );
    Ok(())
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
