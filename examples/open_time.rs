//! How long opening an index takes, and its first query after, against the index's size: an
//! `ivf_flat` index of synthetic clustered vectors is built once into `--dir` (or any
//! location `--url` names that `Database::open_url` takes, `s3://bucket/prefix` with the
//! `s3` feature; reused by later runs), then opened in alternating rounds with a cache budget
//! of 0 (item table only, lists decrypted on demand) and resident (every vector decrypted at
//! open). The page cache is warm (every round reads the same files), so the figures are what
//! the index's own work costs, not the disk's. From an object store each round opens a new
//! database (a cold read cache) and the rounds also report the ranged requests and bytes the
//! open, the first query (cold) and the same query again (warm) fetched.
//!
//! The baselines, measured in the same process: AES-256-GCM opening the same number of bytes
//! in 64 KiB records, on every core (as a resident open decrypts) and on one; and writing the
//! same number of bytes into fresh memory on every core, 128 KiB at a time (the page faults
//! of the memory a resident open's vectors come to occupy: the kernel hands every new page
//! out zeroed, at a cost close to AES-GCM's own per byte). A resident open can be no faster
//! than the two together.
//!
//! ```text
//! cargo run --release --example open_time -- [--n 100000] [--dim 128] [--rounds 5]
//!     [--dir target/open-time-N-DIM | --url s3://bucket/prefix]
//! ```
//! Prints one JSON line per round and a summary line with medians.

use std::path::Path;
use std::time::Instant;

use ciphervec::internals::BenchSealer;
use ciphervec::{Database, DatabaseOptions, IndexConfig, IndexKey, Item, Query};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

const NAME: &str = "bench";
const KEY: [u8; 32] = [0x5a; 32];

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str, default: &str| -> String {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let n: usize = arg("--n", "100000").parse().expect("--n N");
    let dim: usize = arg("--dim", "128").parse().expect("--dim D");
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds R");
    let dir = arg("--dir", &format!("target/open-time-{n}-{dim}"));
    let location = arg("--url", &dir);
    let key = IndexKey::from_bytes(&KEY)?;
    let query = build_if_missing(&location, &key, n, dim)?;
    let stored = stored_bytes(&Path::new(&location).join(NAME));
    let (aes_all, aes_one) = aes_gcm_seconds(stored);
    let fresh = fresh_memory_seconds(stored);
    println!(
        "{{\"n\":{n},\"dim\":{dim},\"stored_bytes\":{stored},\"aes_gcm_all_cores_gbps\":{:.3},\"aes_gcm_one_core_gbps\":{:.3},\"fresh_memory_all_cores_gbps\":{:.3}}}",
        gbps(stored, aes_all),
        gbps(stored, aes_one),
        gbps(stored, fresh)
    );
    let mut cold = Vec::new();
    let mut resident = Vec::new();
    for round in 0..rounds {
        let (lazy, fetched) = open_and_query(&location, &key, Some(0), &query)?;
        let (full, _) = open_and_query(&location, &key, None, &query)?;
        println!(
            "{{\"round\":{round},\"open_budget0_ms\":{:.1},\"first_query_budget0_ms\":{:.2},\"open_resident_ms\":{:.1},\"first_query_resident_ms\":{:.2},\"budget0_fetches\":{fetched}}}",
            lazy.0 * 1e3,
            lazy.1 * 1e3,
            full.0 * 1e3,
            full.1 * 1e3
        );
        cold.push(lazy);
        resident.push(full);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let open_resident = median(&mut resident.iter().map(|r| r.0).collect());
    println!(
        "{{\"summary\":true,\"open_budget0_ms\":{:.1},\"first_query_budget0_ms\":{:.2},\"open_resident_ms\":{:.1},\"first_query_resident_ms\":{:.2},\"resident_open_gbps\":{:.3},\"resident_open_vs_aes_gcm_all_cores\":{:.2},\"resident_open_vs_aes_gcm_and_fresh_memory\":{:.2}}}",
        median(&mut cold.iter().map(|r| r.0).collect()) * 1e3,
        median(&mut cold.iter().map(|r| r.1).collect()) * 1e3,
        open_resident * 1e3,
        median(&mut resident.iter().map(|r| r.1).collect()) * 1e3,
        gbps(stored, open_resident),
        aes_all / open_resident,
        (aes_all + fresh) / open_resident,
    );
    Ok(())
}

/// Builds the index (synthetic vectors around 1,000 random centres, trained with the
/// default number of lists) unless `location` holds it; returns a query vector.
fn build_if_missing(
    location: &str,
    key: &IndexKey,
    n: usize,
    dim: usize,
) -> ciphervec::Result<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let point = |rng: &mut rand::rngs::StdRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        c.iter().map(|x| x + rng.random_range(-0.2..0.2)).collect()
    };
    let query = point(&mut rng);
    let db = Database::open_url(location)?;
    if db.list_indexes()?.iter().any(|i| i == NAME) {
        return Ok(query);
    }
    eprintln!("building {n} x {dim} ivf_flat into {location}");
    let index = db.create_index(NAME, key, IndexConfig::ivf_flat(dim))?;
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(50_000);
        let items: Vec<Item> = (done..done + batch)
            .map(|i| Item::new(i.to_string(), point(&mut rng)))
            .collect();
        index.upsert(items)?;
        done += batch;
    }
    index.train()?;
    Ok(query)
}

/// Seconds to open the index with `budget` and to answer its first query; and, as JSON, the
/// ranged requests and bytes the store answered for the open, that query and the same query
/// again (all zero for local stores).
fn open_and_query(
    location: &str,
    key: &IndexKey,
    budget: Option<usize>,
    query: &[f32],
) -> ciphervec::Result<((f64, f64), String)> {
    let options = match budget {
        Some(b) => DatabaseOptions::default().cache_budget(b),
        None => DatabaseOptions::default(),
    };
    let start = Instant::now();
    let index = Database::open_url_with(location, options)?.open_index_read_only(NAME, key)?;
    let opened = start.elapsed().as_secs_f64();
    let at_open = store_fetches(&index);
    let query = Query::new(query.to_vec()).top_k(10);
    let start = Instant::now();
    let hits = index.query(&query)?;
    let first = start.elapsed().as_secs_f64();
    assert_eq!(hits.len(), 10);
    let after_first = store_fetches(&index);
    index.query(&query)?;
    let after_again = store_fetches(&index);
    let fetched = format!(
        "{{\"open\":[{},{}],\"first_query\":[{},{}],\"warm_query\":[{},{}]}}",
        at_open.0,
        at_open.1,
        after_first.0 - at_open.0,
        after_first.1 - at_open.1,
        after_again.0 - after_first.0,
        after_again.1 - after_first.1,
    );
    Ok(((opened, first), fetched))
}

/// (requests, bytes) the index's store fetched so far.
fn store_fetches(index: &ciphervec::EncryptedIndex) -> (u64, u64) {
    ciphervec::internals::store_fetches(index)
}

/// Bytes of the index's files (0 when `dir` is not a local folder).
fn stored_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Seconds AES-256-GCM takes to open `bytes` sealed in 64 KiB records: on every core, and
/// on one (best of three each).
fn aes_gcm_seconds(bytes: u64) -> (f64, f64) {
    let sealer = BenchSealer::new();
    let record = sealer.seal(&vec![7u8; 64 << 10]);
    let count = (bytes as usize).div_ceil(64 << 10);
    let records = vec![record; count];
    let time = |parallel: bool| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let ok = if parallel {
                    records.par_iter().all(|r| sealer.open(r).is_some())
                } else {
                    records.iter().all(|r| sealer.open(r).is_some())
                };
                assert!(ok);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    (time(true), time(false))
}

/// Seconds to write `bytes` into fresh memory on every core, in 128 KiB buffers (the size of
/// a list block's vectors here), best of three; freeing them is not timed.
fn fresh_memory_seconds(bytes: u64) -> f64 {
    const PIECE: usize = 128 << 10;
    let count = (bytes as usize).div_ceil(PIECE);
    (0..3)
        .map(|_| {
            let start = Instant::now();
            // Not zeros: a zeroed allocation may be mapped without touching a page.
            let pieces: Vec<Vec<u8>> = (0..count)
                .into_par_iter()
                .map(|_| vec![1u8; PIECE])
                .collect();
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(pieces.len(), count);
            seconds
        })
        .fold(f64::INFINITY, f64::min)
}

fn gbps(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}
