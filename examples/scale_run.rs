//! How ciphervec's cost grows with the number of vectors, up to 10M on one machine, for
//! `bench/scale.sh` (never run in CI: minutes to hours, gigabytes of disk).
//!
//! ```text
//! cargo run --release --example scale_run -- gen --out DIR --n N [--dim 96] [--queries 1000]
//! cargo run --release --example scale_run -- build --data DIR --index DIR [--m M]
//! cargo run --release --example scale_run -- serve --data DIR --index DIR [--resident]
//! ```
//! - `gen` writes synthetic clustered vectors (`base.fvecs`, `query.fvecs`; the ground truth
//!   is the caller's) in batches of 100,000, each batch from its own seeded generator: the
//!   same files on every machine, and never more than one batch in memory.
//! - `build` streams `base.fvecs` into an `ivf_pq` index (`--m` 4-bit subquantizers, default
//!   `dim / 4`, as FAISS's `PQ{d/4}x4fs`) held with codes only in RAM (`cache_budget(0)`):
//!   the first 500,000 vectors (or all, if fewer) are upserted and the index trained into
//!   `sqrt(n)` lists (the lists FAISS's IVF gets in `bench/scale.py`), then the rest are
//!   upserted in batches, each assigned and encoded as it comes. Prints one JSON line: build
//!   seconds (upserts and training), peak RSS, bytes on disk.
//! - `serve` opens the index (codes only, or with `--resident` every vector decrypted into
//!   RAM), prints the open time and RSS as a JSON line, then answers `round PROBES MODE`
//!   lines on standard input (`MODE` `call`: one query per call, `batch`: all in one
//!   `query_batch`) with `{"qps": .., "recall@10": ..}` against `groundtruth.ivecs`, on one
//!   thread, as `examples/query_rounds` does for `bench/interleaved.py`.

use std::io::{BufRead as _, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ciphervec::{Database, DatabaseOptions, IndexConfig, IndexKey, Item, Query, TrainOptions};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::json;

#[path = "support/flags.rs"]
mod flags;
#[path = "support/texmex.rs"]
mod texmex;

const NAME: &str = "scale";
const KEY: [u8; 32] = [0x3c; 32];
/// Vectors per generated batch and per upsert.
const BATCH: usize = 100_000;
/// Vectors upserted before training.
const TRAIN_FIRST: usize = 500_000;
/// Clusters of the synthetic data.
const CLUSTERS: usize = 4096;

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    use flags::arg;
    let path = |flag: &str| PathBuf::from(arg(flag).unwrap_or_else(|| panic!("{flag} DIR")));
    match argv.first().map(String::as_str) {
        Some("gen") => {
            let n: usize = arg("--n").expect("--n N").parse().expect("--n N");
            let dim: usize = arg("--dim").map_or(96, |d| d.parse().expect("--dim D"));
            let nq: usize = arg("--queries").map_or(1000, |q| q.parse().expect("--queries Q"));
            generate(&path("--out"), n, dim, nq);
            Ok(())
        }
        Some("build") => build(&path("--data"), &path("--index"), arg("--m")),
        Some("serve") => serve(
            &path("--data"),
            &path("--index"),
            argv.iter().any(|a| a == "--resident"),
        ),
        _ => panic!("usage: scale_run gen|build|serve ..."),
    }
}

/// The cluster centers: uniform in `[0, 4)^dim`, from one seed.
fn centers(dim: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(0xce17e5);
    (0..CLUSTERS * dim)
        .map(|_| rng.random::<f32>() * 4.0)
        .collect()
}

/// Latent dimensions of the synthetic data: each point is its cluster's center plus a point
/// of a low-dimensional space mapped into `dim` dimensions, plus a little isotropic noise.
/// Isotropic noise alone (tried first) gave data without near neighbours: every point of a
/// cluster nearly as far from a query as every other, recall@10 0.49 for both engines at any
/// probe count. Real embeddings lie near low-dimensional surfaces.
const LATENT: usize = 8;

/// The map from the latent space into `dim` dimensions, from one seed.
fn projection(dim: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(0x9e0);
    (0..LATENT * dim)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect()
}

/// Rows `batch * BATCH ..` (`rows` of them) of stream `stream` (0 base, 1 queries): each a
/// center plus a latent point whose spread differs per cluster (so that lists differ in size
/// and density, as real data's do), mapped by `projection`, plus noise.
fn rows(
    (centers, projection): (&[f32], &[f32]),
    dim: usize,
    stream: u64,
    batch: usize,
    rows: usize,
) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(stream << 40 | batch as u64);
    let mut out = Vec::with_capacity(rows * dim);
    let mut latent = [0.0f32; LATENT];
    for _ in 0..rows {
        let c = rng.random_range(0..CLUSTERS);
        let spread = 0.5 + (c % 7) as f32 * 0.15;
        // A sum of three uniforms: close to a normal, cheap.
        let mut normal = || (0..3).map(|_| rng.random::<f32>() - 0.5).sum::<f32>();
        latent.iter_mut().for_each(|z| *z = normal() * spread);
        for (d, &x) in centers[c * dim..(c + 1) * dim].iter().enumerate() {
            let mapped: f32 = (0..LATENT)
                .map(|j| latent[j] * projection[j * dim + d])
                .sum();
            out.push(x + mapped + normal() * 0.05);
        }
    }
    out
}

fn write_fvecs(out: &mut impl std::io::Write, data: &[f32], dim: usize) {
    for row in data.chunks_exact(dim) {
        out.write_all(&(dim as i32).to_le_bytes()).expect("write");
        for x in row {
            out.write_all(&x.to_le_bytes()).expect("write");
        }
    }
}

fn generate(dir: &Path, n: usize, dim: usize, nq: usize) {
    std::fs::create_dir_all(dir).expect("create --out");
    let (centers, projection) = (centers(dim), projection(dim));
    let source = (&centers[..], &projection[..]);
    let mut base = BufWriter::new(std::fs::File::create(dir.join("base.fvecs")).expect("base"));
    for batch in 0..n.div_ceil(BATCH) {
        let count = BATCH.min(n - batch * BATCH);
        write_fvecs(&mut base, &rows(source, dim, 0, batch, count), dim);
    }
    base.flush().expect("flush");
    let mut query = std::fs::File::create(dir.join("query.fvecs")).expect("query");
    write_fvecs(&mut query, &rows(source, dim, 1, 0, nq), dim);
}

/// Reads `base.fvecs` a batch of rows at a time.
struct FvecsReader {
    file: std::io::BufReader<std::fs::File>,
    dim: usize,
}

impl FvecsReader {
    fn open(path: &Path) -> FvecsReader {
        let mut file = std::io::BufReader::new(std::fs::File::open(path).expect("base.fvecs"));
        let mut head = [0u8; 4];
        file.read_exact(&mut head).expect("base.fvecs header");
        let dim = i32::from_le_bytes(head) as usize;
        let file = std::io::BufReader::new(std::fs::File::open(path).expect("base.fvecs"));
        FvecsReader { file, dim }
    }

    /// Up to `n` more rows (empty at the end).
    fn next_rows(&mut self, n: usize) -> Vec<Vec<f32>> {
        let mut record = vec![0u8; 4 + 4 * self.dim];
        let mut out = Vec::with_capacity(n);
        while out.len() < n && self.file.read_exact(&mut record).is_ok() {
            out.push(
                record[4..]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            );
        }
        out
    }
}

fn base_rows(path: &Path) -> usize {
    let mut reader = FvecsReader::open(path);
    let len = std::fs::metadata(path).expect("base.fvecs").len() as usize;
    let rows = len / (4 + 4 * reader.dim);
    let _ = reader.next_rows(0);
    rows
}

/// Peak and current resident set of this process, in bytes (`VmHWM`, `VmRSS`).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn build(data: &Path, index_dir: &Path, m: Option<String>) -> ciphervec::Result<()> {
    let base = data.join("base.fvecs");
    let n = base_rows(&base);
    let mut reader = FvecsReader::open(&base);
    let dim = reader.dim;
    let m: usize = m.map_or(dim / 4, |m| m.parse().expect("--m M"));
    let _ = std::fs::remove_dir_all(index_dir);
    let key = IndexKey::from_bytes(&KEY)?;
    let options = DatabaseOptions::default().cache_budget(0);
    let t = Instant::now();
    let index = Database::open_with(index_dir, options)?.create_index(
        NAME,
        &key,
        // Trained once, below, at the size FAISS trains on: no background training at
        // 10,000 items while the first batches go in.
        IndexConfig::ivf_pq(dim, m).auto_train(false),
    )?;
    let n_lists = (n as f64).sqrt().round() as usize;
    let (mut done, mut train_s) = (0usize, 0.0);
    loop {
        let want = if done < TRAIN_FIRST.min(n) {
            BATCH.min(TRAIN_FIRST.min(n) - done)
        } else {
            BATCH
        };
        let rows = reader.next_rows(want);
        if rows.is_empty() {
            break;
        }
        let items = rows
            .into_iter()
            .enumerate()
            .map(|(i, v)| Item::new((done + i).to_string(), v));
        let count = items.len();
        index.upsert(items)?;
        done += count;
        if done == TRAIN_FIRST.min(n) && !index.is_trained() {
            let t = Instant::now();
            index.train_with(TrainOptions {
                n_lists,
                ..TrainOptions::default()
            })?;
            train_s = t.elapsed().as_secs_f64();
        }
        eprintln!("built {done} of {n} ({:.0} s)", t.elapsed().as_secs_f64());
    }
    let build_s = t.elapsed().as_secs_f64();
    drop(index);
    let (peak, _) = rss();
    println!(
        "{}",
        json!({
            "n": n, "dim": dim, "m": m, "n_lists": n_lists, "build_s": build_s,
            "train_s": train_s, "peak_rss_bytes": peak,
            "disk_bytes": texmex::dir_bytes(&index_dir.join(NAME)),
        })
    );
    Ok(())
}

fn serve(data: &Path, index_dir: &Path, resident: bool) -> ciphervec::Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("rayon pool");
    let queries = texmex::read_vecs(&data.join("query.fvecs"), f32::from_le_bytes);
    let truth = texmex::read_vecs(&data.join("groundtruth.ivecs"), |b| {
        i32::from_le_bytes(b) as usize
    });
    let key = IndexKey::from_bytes(&KEY)?;
    let options = if resident {
        DatabaseOptions::default()
    } else {
        DatabaseOptions::default().cache_budget(0)
    };
    let (_, before) = rss();
    let t = Instant::now();
    let index = Database::open_with(index_dir, options)?.open_index(NAME, &key)?;
    let open_s = t.elapsed().as_secs_f64();
    let (peak, after) = rss();
    println!(
        "{}",
        json!({
            "resident": index.is_resident(), "open_s": open_s, "peak_rss_bytes": peak,
            "index_rss_bytes": after.saturating_sub(before), "n": index.len(),
        })
    );
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(&"round"), Some(probes), Some(mode)) =
            (words.first(), words.get(1), words.get(2))
        else {
            continue;
        };
        let probes: usize = probes.parse().expect("round PROBES MODE");
        let rerank: Option<usize> = words.get(3).map(|r| r.parse().expect("rerank"));
        let qs: Vec<Query> = queries
            .iter()
            .map(|q| {
                let query = Query::new(q.clone()).top_k(10).n_probes(probes);
                rerank.map_or(query.clone(), |r| query.rerank(r))
            })
            .collect();
        let t = Instant::now();
        let ids: Vec<Vec<String>> = if *mode == "batch" {
            index
                .query_batch(&qs)?
                .into_iter()
                .map(|hits| hits.into_iter().map(|h| h.id).collect())
                .collect()
        } else {
            let mut ids = Vec::with_capacity(qs.len());
            for q in &qs {
                ids.push(index.query(q)?.into_iter().map(|h| h.id).collect());
            }
            ids
        };
        let qps = qs.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"qps": qps, "recall@10": texmex::recall(&ids, &truth, 10), "rss_bytes": rss().1})
        );
        std::io::stdout().flush().expect("stdout");
    }
    Ok(())
}
