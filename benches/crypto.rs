//! Seal/open throughput by record size (64 B to 1 MiB), key-schedule cost and the cost of one
//! HMAC-SHA3-256 (item and query tokens).

use std::hint::black_box;

use ciphervec::internals::{BenchSealer, bench_mac, derive_key_schedule};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn seal_open(c: &mut Criterion) {
    let sealer = BenchSealer::new();
    let mut group = c.benchmark_group("aead");
    for size in [64usize, 512, 1600, 4096, 65536, 1 << 20] {
        let plain = vec![7u8; size];
        let sealed = sealer.seal(&plain);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plain, |b, p| {
            b.iter(|| black_box(sealer.seal(p)));
        });
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| black_box(sealer.open(s)));
        });
    }
    group.finish();
}

fn key_schedule(c: &mut Criterion) {
    c.bench_function("key_schedule/derive_all", |b| b.iter(derive_key_schedule));
}

fn mac(c: &mut Criterion) {
    c.bench_function("mac/hmac_sha3_16_bytes", |b| {
        b.iter(|| bench_mac(black_box(b"item-0000123456\n")));
    });
}

criterion_group!(benches, seal_open, key_schedule, mac);
criterion_main!(benches);
