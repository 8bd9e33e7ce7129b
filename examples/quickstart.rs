//! The main job: create an encrypted index on disk, load data, train, query, reopen with the
//! key, show that a wrong key is refused, and print what happened.
//!
//! Uses `../shared/data/wordnet-minilm-50k` (real sentence embeddings) when present, else
//! generates clustered data. Run: `cargo run --release --example quickstart`.

use std::path::Path;
use std::time::Instant;

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item, Query};

#[path = "support/texmex.rs"]
mod texmex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (name, base, queries, truth) = load_data();
    let dim = base[0].len();
    println!(
        "data: {name}: {} vectors x {dim} dims, {} queries",
        base.len(),
        queries.len()
    );

    let dir = std::env::temp_dir().join(format!("ciphervec-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = IndexKey::generate();
    println!("index key generated (store it like `openssl rand -base64 32 > index_key.txt`)");

    let db = Database::open(&dir)?;
    let index = db.create_index("quickstart", &key, IndexConfig::ivf_flat(dim))?;

    let t = Instant::now();
    for (chunk_no, chunk) in base.chunks(10_000).enumerate() {
        let items = chunk.iter().enumerate().map(|(i, v)| {
            let id = chunk_no * 10_000 + i;
            Item::new(id.to_string(), v.clone()).with_metadata(serde_json::json!({"row": id}))
        });
        index.upsert(items)?;
    }
    let upsert_s = t.elapsed().as_secs_f64();
    println!(
        "upserted {} items in {upsert_s:.2} s ({:.0} vectors/s), durable on disk",
        index.len(),
        base.len() as f64 / upsert_s
    );

    let t = Instant::now();
    index.train()?;
    println!(
        "trained (k-means + reassignment) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let qs: Vec<Query> = queries
        .iter()
        .map(|q| Query::new(q.clone()).top_k(10))
        .collect();
    let t = Instant::now();
    let mut results = Vec::with_capacity(qs.len());
    for q in &qs {
        results.push(index.query(q)?);
    }
    let single = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batched = index.query_batch(&qs)?;
    let batch = t.elapsed().as_secs_f64();
    assert_eq!(results, batched);
    println!(
        "queries: {:.0} QPS one at a time, {:.0} QPS batched (default n_probes)",
        qs.len() as f64 / single,
        qs.len() as f64 / batch
    );
    println!(
        "recall@10 vs exact ground truth: {:.4}",
        recall_at_10(&results, &truth)
    );
    drop(index);

    let bytes = texmex::dir_bytes(&dir);
    let raw = (base.len() * dim * 4) as u64;
    println!(
        "on disk: {:.1} MiB ({:.3}x the raw f32 vectors), all ciphertext",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / raw as f64
    );

    let t = Instant::now();
    let index = db.open_index("quickstart", &key)?;
    let reopened = index.query(&qs[0])?;
    println!(
        "reopened with the key in {:.2} s: same results: {}",
        t.elapsed().as_secs_f64(),
        reopened == results[0]
    );
    drop(index);
    match Database::open(&dir)?.open_index("quickstart", &IndexKey::generate()) {
        Err(Error::WrongKey) => println!("a wrong key is refused: WrongKey"),
        other => println!("unexpected: {other:?}"),
    }
    db.delete_index("quickstart", &key)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

type Data = (String, Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<usize>>);

fn load_data() -> Data {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet-minilm-50k");
    if dir.join("base.fvecs").exists() {
        let (base, queries, truth) = texmex::load(&dir);
        return ("wordnet-minilm-50k".into(), base, queries, truth);
    }
    println!("../shared/data not found: generating clustered data");
    let mut state = 42u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let (n, dim, clusters) = (20_000, 64, 100);
    let centers: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| next() * 3.0).collect())
        .collect();
    let mut point = |c: usize| -> Vec<f32> { centers[c].iter().map(|x| x + next()).collect() };
    let base: Vec<Vec<f32>> = (0..n).map(|i| point(i % clusters)).collect();
    let queries: Vec<Vec<f32>> = (0..200).map(|i| point(i * 7 % clusters)).collect();
    let truth = queries
        .iter()
        .map(|q| {
            let mut d: Vec<(f32, usize)> = base
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i))
                .collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            d.iter().take(10).map(|x| x.1).collect()
        })
        .collect();
    ("synthetic-clustered".into(), base, queries, truth)
}

fn recall_at_10(results: &[Vec<ciphervec::Hit>], truth: &[Vec<usize>]) -> f64 {
    let mut found = 0;
    for (hits, t) in results.iter().zip(truth) {
        let want: std::collections::HashSet<String> =
            t.iter().take(10).map(|i| i.to_string()).collect();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * results.len()) as f64
}
