//! Shared helpers: seeded data and a brute-force oracle.

use ciphervec::{Item, Metric};

/// A small deterministic generator (SplitMix64), so tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `n` clustered vectors of dimension `dim`.
pub fn clustered(rng: &mut Rng, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    let centers: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.f32() * 4.0).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[rng.below(clusters)];
            c.iter().map(|x| x + rng.f32() * 0.5).collect()
        })
        .collect()
}

pub fn items(vectors: &[Vec<f32>]) -> Vec<Item> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| Item::new(format!("item-{i}"), v.clone()))
        .collect()
}

/// Exact distance under a metric, computed naively in f64.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let l2: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (match metric {
        Metric::Euclidean => l2.sqrt(),
        Metric::SquaredEuclidean => l2,
        Metric::Cosine => 1.0 - dot / (na * nb),
        Metric::InnerProduct => -dot,
        other => panic!("no reference distance for {other}"),
    }) as f32
}

/// Brute-force top-k: (id index, distance), closest first.
pub fn brute_force(metric: Metric, data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut all: Vec<(usize, f32)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i, distance(metric, q, v)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Asserts that hits equal the oracle: same distances within tolerance, and the same ids
/// except where two oracle distances are within rounding of each other.
pub fn assert_matches_oracle(hits: &[ciphervec::Hit], want: &[(usize, f32)]) {
    assert_eq!(hits.len(), want.len(), "number of hits");
    for (h, (_, d)) in hits.iter().zip(want) {
        let tol = 1e-3 * d.abs().max(1.0);
        assert!(
            (h.distance - d).abs() <= tol,
            "distance {} vs {}",
            h.distance,
            d
        );
    }
    for (pos, (h, (i, d))) in hits.iter().zip(want).enumerate() {
        if h.id != format!("item-{i}") {
            let neighbour_tie = want
                .iter()
                .any(|(j, e)| *j != *i && (e - d).abs() <= 1e-4 * d.abs().max(1.0));
            assert!(neighbour_tie, "hit {pos}: {} instead of item-{i}", h.id);
        }
    }
}

/// The data directory of the shared real data set, if present: `../shared/data/...` beside
/// the checkout, or the folder `CIPHERVEC_SHARED_DATA` names (a git worktree elsewhere).
pub fn shared_data() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CIPHERVEC_SHARED_DATA") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/wordnet-minilm-50k"),
    };
    if dir.join("base.fvecs").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/data/wordnet-minilm-50k is not present");
        None
    }
}

/// The TEXMEX readers the examples use (one copy for examples and tests).
#[path = "../../examples/support/texmex.rs"]
mod texmex;
pub use texmex::read_vecs;

/// Simulates losing power after a crash: files written but never synced lose their tail
/// (torn at a 4 KiB boundary) or vanish.
pub fn tear_unsynced(log: &[ciphervec::internals::FsCall], rng: &mut Rng) {
    let mut unsynced: Vec<&std::path::Path> = Vec::new();
    for call in log {
        match call {
            ciphervec::internals::FsCall::Write(p) => unsynced.push(p),
            ciphervec::internals::FsCall::SyncFile(p) => unsynced.retain(|u| u != p),
            ciphervec::internals::FsCall::Rename(from, _) => unsynced.retain(|u| u != from),
            _ => {}
        }
    }
    for p in unsynced {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let keep = match rng.below(3) {
            0 => 0,
            1 => bytes.len(),
            _ => rng.below(bytes.len() / 4096 + 1) * 4096,
        };
        std::fs::write(p, &bytes[..keep.min(bytes.len())]).unwrap();
    }
}
