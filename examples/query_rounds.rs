//! A ciphervec index that answers rounds of queries on request, for benchmarks that interleave
//! engines in time (`bench/interleaved.py`): on a shared, noisy machine, alternating short
//! rounds of each engine and comparing medians is far steadier than one run per engine.
//!
//! ```text
//! cargo run --release --example query_rounds -- --data DIR [--type flat|sq8|pq:M]
//!     [--probes 32] [--rerank R] [--cache-budget BYTES] [--n-lists N] [--batch]
//!     [--threads T]
//! ```
//! Builds and trains the index, prints one JSON line describing it, then answers every
//! `round` line on standard input by running all queries once and printing
//! `{"qps": .., "cpu_qps": .., "recall@10": ..}` (`cpu_qps`: queries per second of this
//! process's CPU time); `round P` runs that round at `P` probes instead of
//! `--probes` (one index serves a sweep, as `bench/scale_flat.py` needs). Ends at end of input. Queries run one at a time, or with
//! `--batch` all in one `query_batch` call; on one thread, or with `--threads T` on a pool of
//! T (which only `--batch` uses: one query at a time runs on the calling thread).

use std::io::BufRead as _;
use std::time::Instant;

use ciphervec::internals::decrypted_bytes;
use ciphervec::{Database, DatabaseOptions, IndexKey, Query};
use serde_json::json;

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    use flags::arg;
    let data = std::path::PathBuf::from(arg("--data").expect("--data DIR"));
    let index_type = arg("--type").unwrap_or_else(|| "flat".into());
    let probes: usize = arg("--probes").map_or(32, |p| p.parse().expect("--probes N"));
    let rerank: Option<usize> = arg("--rerank").map(|r| r.parse().expect("--rerank N"));
    let budget: Option<usize> = arg("--cache-budget").map(|b| b.parse().expect("bytes"));
    let n_lists: Option<usize> = arg("--n-lists").map(|n| n.parse().expect("--n-lists N"));
    let batch = argv.iter().any(|a| a == "--batch");
    let threads: usize = arg("--threads").map_or(1, |t| t.parse().expect("--threads T"));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    let (base, queries, truth) = texmex::load(&data);
    let key = IndexKey::generate();
    let t = Instant::now();
    let dir = bench_index::build_in_temp("rounds", &key, &index_type, &base, n_lists)?;
    let build_s = t.elapsed().as_secs_f64();
    let options = budget.map_or_else(DatabaseOptions::default, |b| {
        DatabaseOptions::default().cache_budget(b)
    });
    let index = Database::open_with(&dir, options)?.open_index("rounds", &key)?;
    let queries_at = |probes: usize| -> Vec<Query> {
        queries
            .iter()
            .map(|q| {
                let query = Query::new(q.clone()).top_k(10).n_probes(probes);
                rerank.map_or(query.clone(), |r| query.rerank(r))
            })
            .collect()
    };
    let round = |probes: usize| -> ciphervec::Result<(f64, f64, f64)> {
        let qs = queries_at(probes);
        let cpu = cpu_seconds();
        let t = Instant::now();
        let ids: Vec<Vec<String>> = if batch {
            index
                .query_batch(&qs)?
                .into_iter()
                .map(|hits| hits.into_iter().map(|h| h.id).collect())
                .collect()
        } else {
            let mut ids = Vec::with_capacity(qs.len());
            for q in &qs {
                ids.push(index.query(q)?.into_iter().map(|h| h.id).collect());
            }
            ids
        };
        let qps = qs.len() as f64 / t.elapsed().as_secs_f64();
        let cpu_qps = qs.len() as f64 / (cpu_seconds() - cpu).max(1e-9);
        Ok((qps, cpu_qps, texmex::recall(&ids, &truth, 10)))
    };
    round(probes)?; // warm-up: fast-scan layouts, page cache
    let (lists, items) = decrypted_bytes(&index);
    let describe = json!({
        "engine": format!(
            "ciphervec {index_type}{}",
            if batch { " query_batch" } else { "" }
        ),
        "threads": threads,
        "setting": format!(
            "{}n_probes={probes}{}",
            n_lists.map_or(String::new(), |n| format!("n_lists={n}, ")),
            rerank.map_or(String::new(), |r| format!(", rerank={r}"))
        ),
        "vectors_resident": index.is_resident(),
        "build_s": build_s,
        "ram_bytes_per_vector": ((lists + items) as f64 / base.len() as f64).round(),
    });
    println!("{describe}");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(ciphervec::Error::Io)?;
        let mut words = line.split_whitespace();
        if words.next() != Some("round") {
            break;
        }
        let at = words.next().map_or(probes, |p| p.parse().expect("round P"));
        let (qps, cpu_qps, recall) = round(at)?;
        println!(
            "{}",
            json!({"qps": qps, "cpu_qps": cpu_qps, "recall@10": recall})
        );
    }
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// CPU time of every thread of this process so far (Linux `schedstat`; 0 elsewhere): on a
/// machine shared with other work, queries per CPU second vary far less than per wall second,
/// which counts the time other processes held the cores.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}
