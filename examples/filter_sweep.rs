//! Filtered search figures: QPS (one thread, default probes) at selectivities 50%, 10%, 1%,
//! 0.1% (each as a `$lt` range and as an `$in` of the same values) as a ratio to unfiltered QPS on the same index, and recall@10 of the filtered
//! queries against an exact oracle (filter, then brute force). Uses
//! `../shared/data/wordnet-minilm-50k` when present, else clustered synthetic data.
//! Run: `cargo run --release --example filter_sweep`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};

#[path = "support/texmex.rs"]
mod texmex;
use serde_json::json;

fn synthetic() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut s = 9u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..64).map(|_| next() * 3.0).collect())
        .collect();
    let mut point = |c: usize| -> Vec<f32> { centers[c].iter().map(|x| x + next()).collect() };
    let base = (0..50_000).map(|i| point(i % 200)).collect();
    let queries = (0..500).map(|i| point(i * 13 % 200)).collect();
    (base, queries)
}

fn main() -> ciphervec::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet-minilm-50k");
    let (base, queries) = if dir.join("base.fvecs").exists() {
        let (base, queries, _) = texmex::load(&dir);
        (base, queries)
    } else {
        synthetic()
    };
    let dim = base[0].len();
    let db = Database::in_memory();
    let index = db.create_index("filters", &IndexKey::generate(), IndexConfig::ivf_flat(dim))?;
    index.upsert(base.iter().enumerate().map(|(i, v)| {
        Item::new(i.to_string(), v.clone()).with_metadata(json!({"bucket": i % 1000}))
    }))?;
    index.train()?;
    println!(
        "{} x {dim}, {} queries, default n_probes, one thread",
        base.len(),
        queries.len()
    );
    let run = |filter: Option<serde_json::Value>| -> ciphervec::Result<(f64, Vec<Vec<String>>)> {
        let t = Instant::now();
        let mut out = Vec::with_capacity(queries.len());
        for q in &queries {
            let mut query = Query::new(q.clone()).top_k(10);
            if let Some(f) = &filter {
                query = query.filter(f.clone());
            }
            out.push(index.query(&query)?.into_iter().map(|h| h.id).collect());
        }
        Ok((queries.len() as f64 / t.elapsed().as_secs_f64(), out))
    };
    let (unfiltered, _) = run(None)?;
    println!("unfiltered: {unfiltered:.0} QPS");
    // Each selectivity as a range (`$lt`, answered by scanning) and as the same set of
    // exact values (`$in`, answered from the metadata equality index when selective).
    let settings = [("50%", 500), ("10%", 100), ("1%", 10), ("0.1%", 1)]
        .into_iter()
        .flat_map(|(label, below)| {
            let values: Vec<usize> = (0..below).collect();
            [
                (label, "$lt", below, json!({"bucket": {"$lt": below}})),
                (label, "$in", below, json!({"bucket": {"$in": values}})),
            ]
        });
    for (label, op, below, filter) in settings {
        let (qps, results) = run(Some(filter))?;
        let mut found = 0;
        for (q, got) in queries.iter().zip(&results) {
            let mut exact: Vec<(f32, usize)> = base
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 1000 < below)
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i))
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: HashSet<String> = exact.iter().take(10).map(|e| e.1.to_string()).collect();
            found += got.iter().filter(|id| want.contains(*id)).count();
        }
        let recall = found as f64 / (10 * queries.len()) as f64;
        println!(
            "selectivity {label:>5} ({op}): {qps:>6.0} QPS = {:.2}x unfiltered, recall@10 vs oracle {recall:.4}",
            qps / unfiltered
        );
    }
    Ok(())
}
