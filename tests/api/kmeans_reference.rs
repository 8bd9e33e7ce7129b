//! k-means quality: on 100k x 128 clustered data, the objective after 10 iterations is within
//! 1% of FAISS's k-means with the same k and iterations (FAISS's figure is frozen in
//! `tests/data/kmeans_faiss_reference.json` by `scripts/kmeans_faiss_reference.py`, which
//! generates the same data with the same SplitMix64 stream).

use ciphervec::internals::{kmeans, l2_objective};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Output of call `i` (0-based) of SplitMix64 seeded with `seed`.
fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unif(z: u64) -> f32 {
    ((z >> 40) as f32) / 16_777_216.0 * 2.0 - 1.0
}

fn dataset(n: usize, dim: usize, clusters: usize, seed: u64, scales: (f32, f32)) -> Vec<f32> {
    let centers: Vec<f32> = (0..clusters * dim)
        .map(|i| unif(splitmix(seed, i as u64)) * scales.0)
        .collect();
    let start = (clusters * dim) as u64;
    let mut out = Vec::with_capacity(n * dim);
    for p in 0..n as u64 {
        let base = start + p * (dim as u64 + 1);
        let c = (splitmix(seed, base) % clusters as u64) as usize;
        for d in 0..dim {
            out.push(centers[c * dim + d] + unif(splitmix(seed, base + 1 + d as u64)) * scales.1);
        }
    }
    out
}

#[test]
fn objective_within_one_percent_of_faiss() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kmeans_faiss_reference.json");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let get = |k: &str| r[k].as_u64().unwrap() as usize;
    let (n, dim, clusters, k, iters) = (
        get("n"),
        get("dim"),
        get("clusters"),
        get("k"),
        get("iters"),
    );
    let scales = (
        r["center_scale"].as_f64().unwrap() as f32,
        r["noise_scale"].as_f64().unwrap() as f32,
    );
    let data = dataset(n, dim, clusters, r["seed"].as_u64().unwrap(), scales);
    // The generator matches the Python one bit for bit.
    // Compared as f32: serde_json's default float parsing may differ in the last f64 digit.
    let first: Vec<f32> = r["first_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let ours_first: Vec<f32> = data[..4]
        .iter()
        .chain(&data[n * dim - 2..])
        .copied()
        .collect();
    assert_eq!(ours_first, first);
    let faiss = r["faiss_objective"].as_f64().unwrap();
    for seed in [1u64, 2, 3] {
        let (centroids, _, _) = kmeans(&data, dim, k, iters, seed);
        let ours = l2_objective(&data, &centroids, dim);
        println!(
            "seed {seed}: ours {ours:.0} faiss {faiss:.0} ratio {:.4}",
            ours / faiss
        );
        assert!(
            ours <= faiss * 1.01,
            "seed {seed}: objective {ours} vs FAISS {faiss}"
        );
    }
}
