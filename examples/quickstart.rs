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
    let ids: Vec<Vec<String>> = results
        .iter()
        .map(|hits| hits.iter().map(|h| h.id.clone()).collect())
        .collect();
    println!(
        "recall@10 vs exact ground truth: {:.4}",
        texmex::recall(&ids, &truth, 10)
    );
    drop(index);

    let bytes = texmex::dir_bytes(&dir);
    let raw = (base.len() * dim * 4) as u64;
    println!(
        "on disk: {:.1} MiB ({:.3}x the raw f32 vectors), all ciphertext",
        bytes as f64 / f64::from(1 << 20),
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
    let (base, queries, truth) = texmex::synthetic(20_000, 64);
    ("synthetic-clustered".into(), base, queries, truth)
}
