//! Recall@10 and single-query QPS over a sweep of `n_probes` on a TEXMEX dataset directory
//! (default `../shared/data/wordnet-minilm-50k`), for side-by-side figures with the peer
//! harness. Usage: `cargo run --release --example probe_sweep [DIR [PROBES [TYPE]]]`, where
//! PROBES is a comma-separated list (default `16,32,56,64`) and TYPE is `flat` (default),
//! `sq8` or `pq:M` (M subquantizers).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};

#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet-minilm-50k")
        });
    let (base, queries, truth) = texmex::load(&dir);
    let tmp = std::env::temp_dir().join(format!("ciphervec-sweep-{}", std::process::id()));
    let db = Database::open(&tmp)?;
    let key = IndexKey::generate();
    let dim = base[0].len();
    let config = match std::env::args().nth(3).as_deref().unwrap_or("flat") {
        "flat" => IndexConfig::ivf_flat(dim),
        "sq8" => IndexConfig::ivf_sq8(dim),
        pq => {
            let m = pq
                .strip_prefix("pq:")
                .and_then(|m| m.parse().ok())
                .expect("TYPE: flat, sq8 or pq:M");
            IndexConfig::ivf_pq(dim, m)
        }
    };
    let index = db.create_index("sweep", &key, config)?;
    let t = Instant::now();
    index.upsert(
        base.iter()
            .enumerate()
            .map(|(i, v)| Item::new(i.to_string(), v.clone())),
    )?;
    let add_s = t.elapsed().as_secs_f64();
    // Before training the index answers exactly: a brute-force scan of every vector.
    let n_exact = queries.len().min(100);
    let t = Instant::now();
    for q in &queries[..n_exact] {
        index.query(&Query::new(q.clone()).top_k(10))?;
    }
    let exact_qps = n_exact as f64 / t.elapsed().as_secs_f64();
    let bytes_per_query = (base.len() * base[0].len() * 4) as f64;
    println!(
        "exact scan (untrained): {exact_qps:.1} QPS = {:.2e} vectors/s = {:.2} GB/s",
        exact_qps * base.len() as f64,
        exact_qps * bytes_per_query / 1e9
    );
    let t = Instant::now();
    index.train()?;
    let train_s = t.elapsed().as_secs_f64();
    println!(
        "n={} dim={} upsert {add_s:.2}s train {train_s:.2}s",
        base.len(),
        base[0].len()
    );
    let probes_list: Vec<usize> = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "16,32,56,64".into())
        .split(',')
        .map(|p| p.trim().parse().expect("PROBES: comma-separated integers"))
        .collect();
    for probes in probes_list {
        let t = Instant::now();
        let mut found = 0;
        for (q, tr) in queries.iter().zip(&truth) {
            let hits = index.query(&Query::new(q.clone()).top_k(10).n_probes(probes))?;
            let want: HashSet<String> = tr[..10]
                .iter()
                .map(std::string::ToString::to_string)
                .collect();
            found += hits.iter().filter(|h| want.contains(&h.id)).count();
        }
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        let recall = found as f64 / (10 * queries.len()) as f64;
        println!("n_probes {probes:>3}: recall@10 {recall:.4}  QPS(1 thread) {qps:.0}");
    }
    drop(index);
    db.delete_index("sweep", &key)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
