//! With every list probed, the index returns exactly the brute-force top-k, for every metric,
//! before and after training.

use ciphervec::{Database, IndexConfig, IndexKey, Metric, Query, TrainOptions};

use super::common::*;

const METRICS: [Metric; 4] = [
    Metric::Euclidean,
    Metric::SquaredEuclidean,
    Metric::Cosine,
    Metric::InnerProduct,
];

#[test]
fn full_probe_equals_brute_force_for_all_metrics() {
    let mut rng = Rng::new(7);
    for metric in METRICS {
        for &(n, dim) in &[(1500usize, 24usize), (400, 3), (700, 65)] {
            let data = clustered(&mut rng, n, dim, 12);
            let db = Database::in_memory();
            let index = db
                .create_index(
                    "o",
                    &IndexKey::generate(),
                    IndexConfig::ivf_flat(dim).metric(metric),
                )
                .unwrap();
            index.upsert(items(&data)).unwrap();
            let queries: Vec<Vec<f32>> = (0..15)
                .map(|_| (0..dim).map(|_| rng.f32() * 4.0).collect())
                .collect();
            // Untrained: exact.
            for q in &queries {
                let hits = index.query(&Query::new(q.clone()).top_k(10)).unwrap();
                assert_matches_oracle(&hits, &brute_force(metric, &data, q, 10));
            }
            index
                .train_with(TrainOptions {
                    n_lists: 16,
                    ..Default::default()
                })
                .unwrap();
            for q in &queries {
                let hits = index
                    .query(&Query::new(q.clone()).top_k(25).n_probes(16))
                    .unwrap();
                assert_matches_oracle(&hits, &brute_force(metric, &data, q, 25));
            }
            // n_probes above n_lists probes everything.
            let hits = index
                .query(&Query::new(queries[0].clone()).top_k(5).n_probes(10_000))
                .unwrap();
            assert_matches_oracle(&hits, &brute_force(metric, &data, &queries[0], 5));
        }
    }
}

#[test]
fn top_k_larger_than_the_index_returns_everything_sorted() {
    let mut rng = Rng::new(8);
    let data = clustered(&mut rng, 30, 5, 3);
    let db = Database::in_memory();
    let index = db
        .create_index("small", &IndexKey::generate(), IndexConfig::ivf_flat(5))
        .unwrap();
    index.upsert(items(&data)).unwrap();
    let hits = index
        .query(&Query::new(data[3].clone()).top_k(1000))
        .unwrap();
    assert_eq!(hits.len(), 30);
    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    assert_eq!(hits[0].id, "item-3");
}
