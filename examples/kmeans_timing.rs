//! Times ciphervec's k-means on the data set of `scripts/kmeans_faiss_reference.py`
//! (100k x 128, SplitMix64) for comparison with FAISS in the same command:
//! `bench/kmeans_vs_faiss.sh`. Threads follow `RAYON_NUM_THREADS`.

use std::time::Instant;

use ciphervec::internals::{kmeans, l2_objective};

fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unif(z: u64) -> f32 {
    ((z >> 40) as f32) / 16_777_216.0 * 2.0 - 1.0
}

fn main() {
    let (n, dim, clusters, seed) = (100_000usize, 128usize, 1000usize, 42u64);
    let centers: Vec<f32> = (0..clusters * dim)
        .map(|i| unif(splitmix(seed, i as u64)))
        .collect();
    let start = (clusters * dim) as u64;
    let mut data = Vec::with_capacity(n * dim);
    for p in 0..n as u64 {
        let base = start + p * (dim as u64 + 1);
        let c = (splitmix(seed, base) % clusters as u64) as usize;
        for d in 0..dim {
            data.push(centers[c * dim + d] + unif(splitmix(seed, base + 1 + d as u64)));
        }
    }
    for k in [256usize, 1024] {
        let t = Instant::now();
        let (centroids, _, iters) = kmeans(&data, dim, k, 10, 1);
        let secs = t.elapsed().as_secs_f64();
        let obj = l2_objective(&data, &centroids, dim);
        println!(
            "ciphervec k={k} iters={iters} threads={} seconds={secs:.3} objective={obj:.0}",
            rayon::current_num_threads()
        );
    }
}
