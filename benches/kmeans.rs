//! k-means wall time on clustered data.

use std::hint::black_box;

use ciphervec::internals::kmeans;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn clustered(n: usize, dim: usize, clusters: usize) -> Vec<f32> {
    let mut s = 7u32;
    let mut next = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1 << 24) as f32 - 0.5
    };
    let centers: Vec<f32> = (0..clusters * dim).map(|_| next() * 10.0).collect();
    (0..n)
        .flat_map(|i| {
            let c = i % clusters;
            (0..dim)
                .map(|j| centers[c * dim + j] + next())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("kmeans");
    group.sample_size(10);
    let (n, dim) = (100_000, 128);
    let data = clustered(n, dim, 500);
    for k in [256usize, 1024] {
        group.bench_function(BenchmarkId::new("100k_x_128_10_iters", k), |b| {
            b.iter(|| black_box(kmeans(&data, dim, k, 10, 1)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
