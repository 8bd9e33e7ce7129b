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
        let want: HashSet<String> = t[..k].iter().map(|i| i.to_string()).collect();
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
