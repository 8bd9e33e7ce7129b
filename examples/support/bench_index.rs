//! Building the benchmark indexes of the examples: one way to read an index type from the
//! command line, and one way to build an index from a TEXMEX base set.

use std::path::PathBuf;

use ciphervec::{Database, IndexConfig, IndexKey, Item, TrainOptions};

/// The index configuration named by `--type`: `flat`, `sq8`, `pq:M`, or `pq:M:8` (8-bit
/// refine codes, `IndexConfig::refine_bits`). Without automatic training: the benchmarks
/// train once, explicitly, and time that (a background training started by the upserts would
/// be waited for and then trained again, timing two).
///
/// # Panics
/// On any other name (a usage error of the example).
pub fn config_of(index_type: &str, dim: usize) -> IndexConfig {
    let usage = "--type flat|sq8|pq:M|pq:M:8";
    let config = match index_type {
        "flat" => IndexConfig::ivf_flat(dim),
        "sq8" => IndexConfig::ivf_sq8(dim),
        pq => {
            let spec = pq.strip_prefix("pq:").expect(usage);
            let (m, refine_bits) = spec.split_once(':').unwrap_or((spec, "6"));
            IndexConfig::ivf_pq(dim, m.parse().expect(usage))
                .refine_bits(refine_bits.parse().expect(usage))
        }
    };
    config.auto_train(false)
}

/// Runs rayon (and so every query) on one thread, as the single-thread figures need.
#[allow(dead_code)]
pub fn one_thread() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("rayon pool");
}

/// Creates index `name` of type `index_type` (see [`config_of`]) in a fresh database under
/// the temporary directory, loads `base` (each vector's id is its row number) and trains it
/// (into `n_lists` lists, or the library's default); returns the database directory. (`ann_bench` times loading and training apart, so builds
/// its own.)
#[allow(dead_code)]
pub fn build_in_temp(
    name: &str,
    key: &IndexKey,
    index_type: &str,
    base: &[Vec<f32>],
    n_lists: Option<usize>,
) -> ciphervec::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ciphervec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = config_of(index_type, base.first().map_or(0, Vec::len));
    let index = Database::open(&dir)?.create_index(name, key, config)?;
    let items = base
        .iter()
        .enumerate()
        .map(|(i, v)| Item::new(i.to_string(), v.clone()));
    index.upsert(items)?;
    match n_lists {
        Some(n_lists) => index.train_with(TrainOptions {
            n_lists,
            ..TrainOptions::default()
        })?,
        None => index.train()?,
    }
    Ok(dir)
}
