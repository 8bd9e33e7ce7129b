//! Shared by the examples: TEXMEX dataset files, recall, and directory sizes.

use std::collections::HashSet;
use std::path::Path;

/// Base vectors, queries, and the ids of each query's exact nearest neighbours.
#[allow(dead_code)]
pub type Dataset = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<usize>>);

/// Reads a `.fvecs`/`.ivecs` file: records of `i32 d` then `d` 4-byte values.
pub fn read_vecs<T: Copy>(path: &Path, conv: fn([u8; 4]) -> T) -> Vec<Vec<T>> {
    let bytes = std::fs::read(path).expect("read vecs file");
    let (mut out, mut at) = (Vec::new(), 0);
    while at + 4 <= bytes.len() {
        let d = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        out.push(
            bytes[at..at + 4 * d]
                .chunks_exact(4)
                .map(|c| conv(c.try_into().unwrap()))
                .collect(),
        );
        at += 4 * d;
    }
    out
}

/// `base.fvecs`, `query.fvecs` and `groundtruth.ivecs` of a dataset directory.
#[allow(dead_code)]
pub fn load(dir: &Path) -> Dataset {
    (
        read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes),
        read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes),
        read_vecs(&dir.join("groundtruth.ivecs"), |b| {
            i32::from_le_bytes(b) as usize
        }),
    )
}

/// recall@k of result ids (item ids are the base row numbers) against the ground truth.
#[allow(dead_code)]
pub fn recall(results: &[Vec<String>], truth: &[Vec<usize>], k: usize) -> f64 {
    let mut found = 0;
    for (got, t) in results.iter().zip(truth) {
        let want: HashSet<String> = t[..k]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        found += got.iter().take(k).filter(|id| want.contains(*id)).count();
    }
    found as f64 / (k * results.len()).max(1) as f64
}

/// Bytes of every file under `dir`.
#[allow(dead_code)]
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Clustered data with exact ground truth for 200 queries (brute force, in parallel).
#[allow(dead_code)]
pub fn synthetic(n: usize, dim: usize) -> Dataset {
    use rayon::prelude::*;
    let mut s = 7u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let clusters = (n / 1000).max(10);
    let centers: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| next() * 3.0).collect())
        .collect();
    let mut point = |c: usize| -> Vec<f32> { centers[c].iter().map(|x| x + next()).collect() };
    let base: Vec<Vec<f32>> = (0..n).map(|i| point(i * 7919 % clusters)).collect();
    let queries: Vec<Vec<f32>> = (0..200).map(|i| point(i * 31 % clusters)).collect();
    let truth = queries
        .par_iter()
        .map(|q| {
            let mut d: Vec<(f32, usize)> = base
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i))
                .collect();
            d.select_nth_unstable_by(100, |a, b| a.0.total_cmp(&b.0));
            d.truncate(100);
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            d.into_iter().map(|x| x.1).collect()
        })
        .collect();
    (base, queries, truth)
}
