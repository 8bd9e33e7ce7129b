//! The baseline of `bench/cli_import.sh`: items per second of `upsert` from Rust, in batches,
//! into a database folder, from vectors already in memory (a TEXMEX `.fvecs` file).
//!
//! `cargo run --release --example upsert_rate -- FILE.fvecs DB_DIR [BATCH] [trained]`
//!
//! With `trained`, the first quarter of the rows is upserted and the index trained before
//! the clock starts, and the rate is that of the rest: each write then assigns its vectors
//! to the nearest of the index's lists.

use std::time::Instant;

use ciphervec::{Database, IndexConfig, IndexKey, Item};

#[path = "support/texmex.rs"]
mod texmex;

fn main() -> ciphervec::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, dir) = (
        args.first().expect("FILE.fvecs"),
        args.get(1).expect("DB_DIR"),
    );
    let batch: usize = args.get(2).map_or(10_000, |b| b.parse().expect("BATCH"));
    let trained = args.get(3).is_some_and(|a| a == "trained");
    let mut vectors = texmex::read_vecs(std::path::Path::new(file), f32::from_le_bytes);
    let dim = vectors.first().map_or(1, Vec::len);
    let mut first_quarter = Vec::new();
    if trained {
        let rest = vectors.split_off(vectors.len() / 4);
        first_quarter = std::mem::replace(&mut vectors, rest);
    }
    let offset = first_quarter.len();
    let n = vectors.len();
    // The batches are built before the clock starts and handed over by value, so the rate is
    // `upsert`'s alone (no copy of the items inside the timed loop).
    let mut batches: Vec<Vec<Item>> = Vec::new();
    for (i, v) in vectors.into_iter().enumerate() {
        if i % batch == 0 {
            batches.push(Vec::with_capacity(batch));
        }
        batches
            .last_mut()
            .unwrap()
            .push(Item::new((offset + i).to_string(), v));
    }
    let index = Database::open(dir)?.create_index(
        "rate",
        &IndexKey::generate(),
        IndexConfig::ivf_flat(dim),
    )?;
    if trained {
        index.upsert(
            first_quarter
                .into_iter()
                .enumerate()
                .map(|(i, v)| Item::new(i.to_string(), v)),
        )?;
        index.train()?;
    }
    let start = Instant::now();
    for chunk in batches {
        index.upsert(chunk)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0}", n as f64 / secs);
    Ok(())
}
