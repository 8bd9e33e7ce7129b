//! `query_batch` equals `query` for every query, bit for bit: on `ivf_flat` with vectors in
//! RAM, plain vector queries share their list scans (`ivf::search_many`), and on quantized
//! indexes their probes and re-rank waits (`ivf::search_codes_many`), neither of which may
//! change any result or what a query reads from storage; filtered and text queries in the
//! same batch still run one by one. Checked for every metric, trained and untrained, with per-query `top_k`,
//! `n_probes` and `include`, duplicates and ties; and against brute force at full probe.

use ciphervec::internals::storage_bytes_read;
use ciphervec::{
    Database, DatabaseOptions, Error, Include, IndexConfig, IndexKey, Item, Metric, Query,
};
use serde_json::json;

use super::common::*;

/// Items with a `group` field (0..4) and, for ties, every tenth vector duplicated.
fn items_with_groups(data: &[Vec<f32>]) -> Vec<Item> {
    data.iter()
        .enumerate()
        .map(|(i, v)| {
            let v = if i % 10 == 9 {
                data[i - 1].clone()
            } else {
                v.clone()
            };
            Item::new(format!("item-{i}"), v)
                .with_metadata(json!({"group": i % 4}))
                .with_contents(format!("contents {i}").into_bytes())
        })
        .collect()
}

/// A batch mixing plain queries of every shape with filtered ones.
fn mixed_queries(rng: &mut Rng, data: &[Vec<f32>], n: usize) -> Vec<Query> {
    (0..n)
        .map(|i| {
            let base = &data[rng.below(data.len())];
            let vector: Vec<f32> = base.iter().map(|x| x + (rng.f32() - 0.5) * 0.2).collect();
            let mut q = Query::new(vector).top_k(1 + rng.below(25));
            if i % 3 == 0 {
                q = q.n_probes(1 + rng.below(12));
            }
            if i % 5 == 0 {
                q = q.include(Include::ALL);
            }
            if i % 7 == 0 {
                q = q.filter(json!({"group": {"$in": [1, 2]}}));
            }
            q
        })
        .collect()
}

fn assert_batch_equals_one_by_one(index: &ciphervec::EncryptedIndex, queries: &[Query]) {
    let batch = index.query_batch(queries).unwrap();
    assert_eq!(batch.len(), queries.len());
    for (q, got) in queries.iter().zip(&batch) {
        let want = index.query(q).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.id);
            assert_eq!(g.distance.to_bits(), w.distance.to_bits());
            assert_eq!(g, w);
        }
    }
}

#[test]
fn shared_scans_equal_one_query_at_a_time_for_every_metric() {
    for metric in [
        Metric::Euclidean,
        Metric::SquaredEuclidean,
        Metric::Cosine,
        Metric::InnerProduct,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        let mut rng = Rng::new(31);
        let data = clustered(&mut rng, 1_500, 16, 12);
        let index = Database::open(dir.path())
            .unwrap()
            .create_index(
                "b",
                &key,
                IndexConfig::ivf_flat(16).metric(metric).n_lists(24),
            )
            .unwrap();
        index.upsert(items_with_groups(&data)).unwrap();
        let queries = mixed_queries(&mut rng, &data, 90);
        // Untrained: one list, every query scans it.
        assert_batch_equals_one_by_one(&index, &queries);
        index.train().unwrap();
        assert!(index.is_resident());
        assert_batch_equals_one_by_one(&index, &queries);
        // Full probe: the batch equals brute force too.
        let vectors: Vec<Vec<f32>> = (0..20)
            .map(|i| data[i * 37].iter().map(|x| x + 0.05).collect())
            .collect();
        let full: Vec<Query> = vectors
            .iter()
            .map(|v| Query::new(v.clone()).top_k(10).n_probes(24))
            .collect();
        for (v, hits) in vectors.iter().zip(index.query_batch(&full).unwrap()) {
            let want = brute_force(metric, &dedup(&data), v, 10);
            let got: Vec<f32> = hits.iter().map(|h| h.distance).collect();
            for (g, (_, w)) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                    "{metric:?}: {g} vs {w}"
                );
            }
        }
    }
}

/// The vectors as stored (every tenth a copy of the one before).
fn dedup(data: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..data.len())
        .map(|i| {
            if i % 10 == 9 {
                data[i - 1].clone()
            } else {
                data[i].clone()
            }
        })
        .collect()
}

#[test]
fn quantized_lazy_and_text_batches_equal_one_by_one() {
    let mut rng = Rng::new(77);
    let data = clustered(&mut rng, 1_200, 16, 10);
    let queries = mixed_queries(&mut rng, &data, 40);
    for (config, budget) in [
        (IndexConfig::ivf_pq(16, 8).n_lists(16), None),
        (IndexConfig::ivf_pq(16, 8).n_lists(16), Some(0)),
        (
            IndexConfig::ivf_pq(16, 4)
                .n_lists(16)
                .metric(Metric::Cosine),
            None,
        ),
        (
            IndexConfig::ivf_pq(16, 8)
                .n_lists(16)
                .metric(Metric::InnerProduct),
            Some(0),
        ),
        (IndexConfig::ivf_sq8(16).n_lists(16), None),
        (IndexConfig::ivf_sq8(16).n_lists(16), Some(0)),
        (IndexConfig::ivf_flat(16).n_lists(16), Some(0)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        {
            let index = Database::open(dir.path())
                .unwrap()
                .create_index("b", &key, config.clone().full_text(true))
                .unwrap();
            index.upsert(items_with_groups(&data)).unwrap();
            index.train().unwrap();
        }
        let options = budget.map_or_else(DatabaseOptions::default, |b| {
            DatabaseOptions::default().cache_budget(b)
        });
        let index = Database::open_with(dir.path(), options)
            .unwrap()
            .open_index("b", &key)
            .unwrap();
        let mut queries = queries.clone();
        queries.push(Query::text_only("contents 17").top_k(3));
        assert_batch_equals_one_by_one(&index, &queries);
        // Plain queries only: a batch reads from storage what the same queries read one by
        // one (each padded as one query is).
        // (`mixed_queries` filters every seventh; the text query is last.)
        let plain: Vec<Query> = queries[..queries.len() - 1]
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 != 0)
            .map(|(_, q)| q.clone())
            .collect();
        let before = storage_bytes_read(&index);
        assert_batch_equals_one_by_one(&index, &plain);
        let both = storage_bytes_read(&index) - before;
        let before = storage_bytes_read(&index);
        for q in &plain {
            index.query(q).unwrap();
        }
        let one_by_one = storage_bytes_read(&index) - before;
        assert_eq!(both, 2 * one_by_one, "{config:?}");
    }
}

#[test]
fn a_bad_query_in_a_shared_batch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(5);
    let data = clustered(&mut rng, 300, 8, 4);
    let index = Database::open(dir.path())
        .unwrap()
        .create_index("b", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(items(&data)).unwrap();
    index.train().unwrap();
    let good = Query::new(data[0].clone());
    for bad in [
        Query::new(vec![0.0; 7]),
        Query::new(data[1].clone()).top_k(0),
        Query::new(vec![f32::NAN; 8]),
    ] {
        let err = index
            .query_batch(&[good.clone(), bad, good.clone()])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::DimensionMismatch { .. }
                    | Error::InvalidArgument { .. }
                    | Error::InvalidVector
            ),
            "{err:?}"
        );
    }
    assert_eq!(index.query_batch(&[]).unwrap(), Vec::<Vec<_>>::new());
}

/// Every index type (PQ with 6- and 8-bit refine codes) x every metric x vectors in RAM or
/// codes only (`cache_budget(0)`; `ivf_flat` then decrypts its lists on demand): a batch of
/// plain queries (many per list, so that PQ fast-scan runs 1 to 4 queries' tables at once),
/// filtered ones (the in-scan filter and the pre-filter path) and duplicates equals the same
/// queries one by one, bit for bit, and reads from storage what they read one by one. At every
/// probe and a shortlist of every item, the batch equals brute force.
#[test]
fn every_type_metric_and_mode_batch_equals_one_by_one() {
    let mut rng = Rng::new(48);
    let (dim, n, n_lists) = (16, 1_600, 12);
    let data = clustered(&mut rng, n, dim, 9);
    let stored = dedup(&data);
    let mut queries = mixed_queries(&mut rng, &data, 150);
    // Wide probes: most lists are probed by many queries of a group.
    for q in queries.iter_mut().step_by(4) {
        *q = q.clone().n_probes(n_lists);
    }
    // A selective filter (the pre-filter path) and a duplicate query.
    queries.push(Query::new(data[3].clone()).filter(json!({"group": 3})));
    queries.push(queries[1].clone());
    let metrics = [
        Metric::Euclidean,
        Metric::SquaredEuclidean,
        Metric::Cosine,
        Metric::InnerProduct,
    ];
    let configs = [
        IndexConfig::ivf_flat(dim),
        IndexConfig::ivf_sq8(dim),
        IndexConfig::ivf_pq(dim, 8),
        IndexConfig::ivf_pq(dim, 4).refine_bits(8),
    ];
    for config in &configs {
        for metric in metrics {
            let dir = tempfile::tempdir().unwrap();
            let key = IndexKey::generate();
            {
                let index = Database::open(dir.path())
                    .unwrap()
                    .create_index("b", &key, config.clone().metric(metric).n_lists(n_lists))
                    .unwrap();
                index.upsert(items_with_groups(&data)).unwrap();
                index.train().unwrap();
            }
            for budget in [None, Some(0)] {
                let options = budget.map_or_else(DatabaseOptions::default, |b| {
                    DatabaseOptions::default().cache_budget(b)
                });
                let index = Database::open_with(dir.path(), options)
                    .unwrap()
                    .open_index("b", &key)
                    .unwrap();
                assert_eq!(index.is_resident(), budget.is_none());
                let case = format!("{config:?} {metric:?} budget {budget:?}");
                assert_batch_equals_one_by_one(&index, &queries);
                // (`mixed_queries` filters every seventh; then the filtered one, the duplicate.)
                let plain: Vec<Query> = queries
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| (i < 150 && i % 7 != 0) || i == 151)
                    .map(|(_, q)| q.clone())
                    .collect();
                let before = storage_bytes_read(&index);
                index.query_batch(&plain).unwrap();
                let batch = storage_bytes_read(&index) - before;
                let before = storage_bytes_read(&index);
                for q in &plain {
                    index.query(q).unwrap();
                }
                assert_eq!(batch, storage_bytes_read(&index) - before, "{case}");
                // Every list, every item re-ranked: the exact nearest (by distance; the
                // duplicates tie).
                let vectors: Vec<Vec<f32>> = (0..12)
                    .map(|i| data[i * 101].iter().map(|x| x + 0.03).collect())
                    .collect();
                let full: Vec<Query> = vectors
                    .iter()
                    .map(|v| {
                        Query::new(v.clone())
                            .top_k(10)
                            .n_probes(n_lists)
                            .rerank(n / 10)
                    })
                    .collect();
                for (v, hits) in vectors.iter().zip(index.query_batch(&full).unwrap()) {
                    let want = brute_force(metric, &stored, v, 10);
                    assert_eq!(hits.len(), 10, "{case}");
                    for (h, (_, w)) in hits.iter().zip(&want) {
                        assert!(
                            (h.distance - w).abs() <= 1e-3 * w.abs().max(1.0),
                            "{case}: {} vs {w}",
                            h.distance
                        );
                    }
                }
            }
        }
    }
}
