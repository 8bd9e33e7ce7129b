//! What one commit, one open, one anchor check and one refresh cost, for the A/B of the
//! history chain (`bench/chain_ab.sh` builds this example at the commit before the chain and
//! at this one, and runs them in interleaved rounds). Prints one JSON line of median times.
//!
//! Usage: `cargo run --release --example commit_cost -- [COMMITS]` (default 1000): an index
//! gets COMMITS small upserts (timed one by one); a read-only handle and an anchor taken
//! before them are then refreshed and checked; the index is opened again (timed).

use std::time::Instant;

use ciphervec::{Database, IndexConfig, IndexKey, Item};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), ciphervec::Error> {
    let commits: usize = std::env::args()
        .nth(1)
        .map_or(1000, |a| a.parse().expect("COMMITS is a number"));
    let dir = tempfile::tempdir()?;
    let key = IndexKey::generate();
    let dim = 32;
    let vector = |i: usize| -> Vec<f32> { (0..dim).map(|d| ((i * 31 + d) % 17) as f32).collect() };
    let db = Database::open(dir.path())?;
    let index = db.create_index("cost", &key, IndexConfig::ivf_flat(dim))?;
    let seed: Vec<Item> = (0..2000)
        .map(|i| Item::new(format!("s{i}"), vector(i)))
        .collect();
    index.upsert(seed)?;
    index.train()?;
    let anchor = index.anchor();
    let reader = Database::open(dir.path())?.open_index_read_only("cost", &key)?;

    let mut commit_ms = Vec::with_capacity(commits);
    for i in 0..commits {
        let item = Item::new(format!("c{i}"), vector(10_000 + i));
        let t = Instant::now();
        index.upsert([item])?;
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    index.check_anchor(&anchor)?;
    let check_anchor_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    assert!(reader.refresh()?);
    let refresh_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(index);
    drop(db);
    let mut open_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let index = Database::open(dir.path())?.open_index_read_only("cost", &key)?;
        open_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(index.len(), 2000 + commits);
    }
    println!(
        "{{\"commits\": {commits}, \"commit_ms\": {:.4}, \"open_ms\": {:.3}, \
         \"check_anchor_ms\": {check_anchor_ms:.3}, \"refresh_ms\": {refresh_ms:.3}}}",
        median(commit_ms),
        median(open_ms),
    );
    Ok(())
}
