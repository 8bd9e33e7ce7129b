//! The baseline of `bench/cli_import.sh`: items per second of `upsert` from Rust, in batches,
//! into a database folder, from vectors already in memory (a TEXMEX `.fvecs` file).
//!
//! `cargo run --release --example upsert_rate -- FILE.fvecs DB_DIR [BATCH]`

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
    let vectors = texmex::read_vecs(std::path::Path::new(file), f32::from_le_bytes);
    let dim = vectors.first().map_or(1, Vec::len);
    let items: Vec<Item> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| Item::new(i.to_string(), v))
        .collect();
    let index = Database::open(dir)?.create_index(
        "rate",
        &IndexKey::generate(),
        IndexConfig::ivf_flat(dim),
    )?;
    let start = Instant::now();
    for chunk in items.chunks(batch) {
        index.upsert(chunk.to_vec())?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0}", items.len() as f64 / secs);
    Ok(())
}
