//! Brute-force scan throughput (one query against a block) per kernel path and dimension.

use std::hint::black_box;

use ciphervec::internals::{kernel_paths, l2sq_block_with};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect()
}

fn scan(c: &mut Criterion) {
    scan_of(c, "l2sq_scan", 8 << 20);
    scan_of(c, "l2sq_cached", 256 << 10);
}

/// One query against `bytes` of vectors: 8 MiB is larger than L2, like a list scan from
/// memory; 256 KiB stays in L2, like the centroids of a coarse probe.
fn scan_of(c: &mut Criterion, name: &str, bytes: usize) {
    let mut group = c.benchmark_group(name);
    for dim in [128usize, 384, 768] {
        let rows = bytes / (dim * 4);
        let block = data(rows * dim, 1);
        let q = data(dim, 2);
        let mut out = vec![0.0; rows];
        group.throughput(Throughput::Bytes((rows * dim * 4) as u64));
        for path in kernel_paths() {
            group.bench_function(BenchmarkId::new(path, dim), |b| {
                b.iter(|| {
                    l2sq_block_with(path, black_box(&q), &block, &mut out);
                    black_box(&out);
                });
            });
        }
    }
    group.finish();
}

/// A scan of 256 MiB (far larger than any cache) next to the memory bandwidth baseline: a
/// plain sum of the same bytes, 8 independent accumulators so that the sum is memory-bound.
fn large(c: &mut Criterion) {
    let mut group = c.benchmark_group("large_256MiB");
    group.sample_size(10);
    let dim = 384;
    let rows = (256 << 20) / (dim * 4);
    let block = data(rows * dim, 3);
    let q = data(dim, 4);
    let mut out = vec![0.0; rows];
    group.throughput(Throughput::Bytes((rows * dim * 4) as u64));
    group.bench_function("memory_read_sum", |b| {
        b.iter(|| {
            let mut acc = [0.0f32; 16];
            for chunk in block.chunks_exact(16) {
                for (a, v) in acc.iter_mut().zip(chunk) {
                    *a += v;
                }
            }
            black_box(acc)
        });
    });
    for path in kernel_paths() {
        group.bench_function(BenchmarkId::new("l2sq_scan_384", path), |b| {
            b.iter(|| {
                l2sq_block_with(path, black_box(&q), &block, &mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, scan, large);
criterion_main!(benches);
