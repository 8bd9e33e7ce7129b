//! What holding only codes in RAM costs a quantized index, as a ratio measured in one process:
//! the same index is opened twice, once resident (vectors decrypted in RAM) and once with a
//! cache budget of 0 (codes in RAM, each re-ranked vector decrypted from its record), and the
//! two answer the same queries in alternating rounds, one thread. The machines these run on
//! are shared and noisy, so rounds alternate and the median per-round ratio is reported.
//! `--cache-mib N` gives the codes-only handle a budget of N MiB instead of 0 (it stays
//! codes-only while its vectors exceed the budget).
//!
//! ```text
//! cargo run --release --example residency_ab -- --data DIR [--type pq:96|sq8] [--probes 32]
//!     [--rerank 10] [--rounds 5] [--cache-mib 0]
//! ```

use std::time::Instant;

use ciphervec::internals::decrypted_bytes;
use ciphervec::{Database, DatabaseOptions, EncryptedIndex, IndexKey, Query};

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str, default: &str| -> String {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let data = std::path::PathBuf::from(arg("--data", "../shared/data/wordnet-minilm-50k"));
    let index_type = arg("--type", "pq:96");
    let probes: usize = arg("--probes", "32").parse().expect("--probes N");
    let rerank: usize = arg("--rerank", "10").parse().expect("--rerank N");
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds N");
    let cache_mib: usize = arg("--cache-mib", "0").parse().expect("--cache-mib N");
    bench_index::one_thread();
    let (base, queries, truth) = texmex::load(&data);
    let key = IndexKey::generate();
    let dir = bench_index::build_in_temp("residency", &key, &index_type, &base, None)?;
    let resident = Database::open(&dir)?.open_index("residency", &key)?;
    let budget = DatabaseOptions::default().cache_budget(cache_mib << 20);
    let codes_only = Database::open_with(&dir, budget)?.open_index_read_only("residency", &key)?;
    assert!(resident.is_resident() && !codes_only.is_resident());
    let qs: Vec<Query> = queries
        .iter()
        .map(|q| {
            Query::new(q.clone())
                .top_k(10)
                .n_probes(probes)
                .rerank(rerank)
        })
        .collect();
    let run = |index: &EncryptedIndex| -> ciphervec::Result<(f64, f64)> {
        let t = Instant::now();
        let mut ids = Vec::with_capacity(qs.len());
        for q in &qs {
            ids.push(index.query(q)?.into_iter().map(|h| h.id).collect());
        }
        Ok((
            qs.len() as f64 / t.elapsed().as_secs_f64(),
            texmex::recall(&ids, &truth, 10),
        ))
    };
    run(&resident)?;
    run(&codes_only)?;
    let (mut warm, mut cold, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut recalls = (0.0, 0.0);
    for _ in 0..rounds {
        let (a, ra) = run(&resident)?;
        let (b, rb) = run(&codes_only)?;
        warm.push(a);
        cold.push(b);
        ratios.push(b / a);
        recalls = (ra, rb);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per_vector = |index: &EncryptedIndex| {
        let (lists, items) = decrypted_bytes(index);
        (lists + items) as f64 / base.len() as f64
    };
    println!(
        "{index_type} n_probes={probes} rerank={rerank} cache={cache_mib} MiB, {rounds} rounds of {} queries, 1 thread",
        qs.len()
    );
    println!(
        "resident:   median {:.0} QPS, recall@10 {:.4}, {:.0} decrypted B/vector",
        median(&mut warm),
        recalls.0,
        per_vector(&resident)
    );
    println!(
        "codes only: median {:.0} QPS, recall@10 {:.4}, {:.0} decrypted B/vector",
        median(&mut cold),
        recalls.1,
        per_vector(&codes_only)
    );
    println!(
        "codes only / resident: median ratio {:.2}",
        median(&mut ratios)
    );
    drop((resident, codes_only));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
