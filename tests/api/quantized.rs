//! Quantized index types (SQ8, PQ): with every list probed and a re-rank covering every
//! candidate they return exactly what IVF-Flat returns; with defaults they keep high recall;
//! codes survive reopen, writes and compaction.

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item, Metric, Query, TrainOptions};

use super::common::*;

fn configs(dim: usize) -> Vec<(&'static str, IndexConfig)> {
    vec![
        ("sq8", IndexConfig::ivf_sq8(dim)),
        ("pq", IndexConfig::ivf_pq(dim, dim / 4)),
        (
            "pq refine8",
            IndexConfig::ivf_pq(dim, dim / 4).refine_bits(8),
        ),
    ]
}

#[test]
fn full_probe_and_full_rerank_equal_brute_force() {
    let mut rng = Rng::new(61);
    let dim = 16;
    let data = clustered(&mut rng, 1200, dim, 12);
    for metric in [
        Metric::Euclidean,
        Metric::SquaredEuclidean,
        Metric::Cosine,
        Metric::InnerProduct,
    ] {
        for (name, config) in configs(dim) {
            let db = Database::in_memory();
            let index = db
                .create_index("q", &IndexKey::generate(), config.metric(metric))
                .unwrap();
            index.upsert(items(&data)).unwrap();
            index
                .train_with(TrainOptions {
                    n_lists: 8,
                    ..Default::default()
                })
                .unwrap();
            for i in 0..10 {
                let q: Vec<f32> = (0..dim).map(|_| rng.f32() * 4.0).collect();
                let hits = index
                    .query(&Query::new(q.clone()).top_k(10).n_probes(8).rerank(1000))
                    .unwrap();
                let want = brute_force(metric, &data, &q, 10);
                assert_matches_oracle(&hits, &want);
                let _ = (name, i);
            }
        }
    }
}

#[test]
fn default_rerank_keeps_recall_and_codes_survive_reopen_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(62);
    let dim = 32;
    let data = clustered(&mut rng, 4000, dim, 40);
    let queries: Vec<Vec<f32>> = (0..50)
        .map(|i| data[i * 79].iter().map(|v| v + 0.05).collect())
        .collect();
    for (name, config) in configs(dim) {
        let db = Database::open(dir.path()).unwrap();
        let index = db.create_index(name, &key, config).unwrap();
        index.upsert(items(&data)).unwrap();
        index.train().unwrap();
        let run = |index: &ciphervec::EncryptedIndex| -> Vec<Vec<ciphervec::Hit>> {
            queries
                .iter()
                .map(|q| {
                    index
                        .query(&Query::new(q.clone()).top_k(10).n_probes(20))
                        .unwrap()
                })
                .collect()
        };
        let before = run(&index);
        let mut found = 0;
        for (q, hits) in queries.iter().zip(&before) {
            let want = brute_force(Metric::Euclidean, &data, q, 10);
            found += hits
                .iter()
                .filter(|h| want.iter().any(|(i, _)| h.id == format!("item-{i}")))
                .count();
        }
        let recall = found as f64 / (10 * queries.len()) as f64;
        println!("{name}: recall@10 {recall:.3}");
        assert!(recall >= 0.9, "{name}: recall {recall}");
        drop(index);
        let index = db.open_index(name, &key).unwrap();
        assert_eq!(run(&index), before, "{name}: reopen changed results");
        // Writes after training are encoded too; compaction keeps the codes.
        index.upsert([Item::new("far", vec![100.0; dim])]).unwrap();
        let hit = index
            .query(&Query::new(vec![99.0; dim]).top_k(1).n_probes(1000))
            .unwrap();
        assert_eq!(hit[0].id, "far");
        index.delete(&["far"]).unwrap();
        index.compact().unwrap();
        assert_eq!(run(&index), before, "{name}: compaction changed results");
    }
}

#[test]
fn pq_needs_subquantizers_that_divide_the_dimension() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    for m in [0, 5] {
        assert!(matches!(
            db.create_index("bad", &key, IndexConfig::ivf_pq(16, m)),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

/// `refine_bits` takes 6 or 8 for `ivf_pq` only; anything else is refused before anything is
/// written; the choice survives reopening, and training gives codes of that width (what a
/// codes-only index holds grows by a byte per 4 dimensions per item).
#[test]
fn refine_bits_are_checked_and_kept() {
    use ciphervec::DatabaseOptions;
    use ciphervec::internals::decrypted_bytes;
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    for bad in [
        IndexConfig::ivf_pq(16, 4).refine_bits(7),
        IndexConfig::ivf_pq(16, 4).refine_bits(0),
        IndexConfig::ivf_pq(16, 4).refine_bits(4),
        IndexConfig::ivf_flat(16).refine_bits(8),
        IndexConfig::ivf_sq8(16).refine_bits(8),
    ] {
        assert!(
            matches!(
                db.create_index("bad", &key, bad.clone()),
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(db.list_indexes().unwrap().is_empty());
    let (n, dim) = (2000, 16);
    let data = clustered(&mut Rng::new(66), n, dim, 10);
    let mut held = Vec::new();
    for bits in [6, 8] {
        let name = format!("pq{bits}");
        let config = IndexConfig::ivf_pq(dim, 4).refine_bits(bits);
        let created = db.create_index(&name, &key, config.clone()).unwrap();
        assert_eq!(created.config(), &config);
        created.upsert(items(&data)).unwrap();
        created.train().unwrap();
        drop(created);
        let codes_only = DatabaseOptions::default().cache_budget(0);
        let reopened = Database::open_with(dir.path(), codes_only)
            .unwrap()
            .open_index(&name, &key)
            .unwrap();
        assert_eq!(reopened.config().refine_code_bits(), bits);
        assert_eq!(reopened.config(), &config);
        held.push(decrypted_bytes(&reopened).0);
    }
    // 16 dimensions: 12 bytes of 6-bit values against 16 of 8-bit ones.
    let grown = held[1] as i64 - held[0] as i64;
    assert!(
        (4 * n as i64..=5 * n as i64).contains(&grown),
        "{held:?}: {grown} more bytes"
    );
}

#[test]
fn pq_results_are_the_same_with_the_index_decrypted_on_demand() {
    use ciphervec::DatabaseOptions;
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(64);
    let dim = 24;
    let data = clustered(&mut rng, 3000, dim, 20);
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("p", &key, IndexConfig::ivf_pq(dim, 6))
            .unwrap();
        index.upsert(items(&data)).unwrap();
        index.train().unwrap();
        index.upsert(items(&data[..300])).unwrap(); // a second segment
    }
    let queries: Vec<Query> = (0..30)
        .map(|i| Query::new(data[i * 97].iter().map(|v| v + 0.1).collect()).top_k(10))
        .collect();
    let resident = Database::open(dir.path()).unwrap();
    let resident = resident.open_index("p", &key).unwrap();
    assert!(resident.is_resident());
    let want: Vec<_> = queries.iter().map(|q| resident.query(q).unwrap()).collect();
    drop(resident);
    let cold = Database::open_with(dir.path(), DatabaseOptions::default().cache_budget(4096))
        .unwrap()
        .open_index("p", &key)
        .unwrap();
    assert!(!cold.is_resident());
    for (q, want) in queries.iter().zip(&want) {
        assert_eq!(&cold.query(q).unwrap(), want);
    }
}

#[test]
fn a_codes_only_index_answers_like_the_resident_one_through_writes_and_maintenance() {
    use ciphervec::internals::decrypted_bytes;
    use ciphervec::{DatabaseOptions, Include};
    let mut rng = Rng::new(65);
    let dim = 32;
    let data = clustered(&mut rng, 1600, dim, 16);
    let vectors: Vec<Vec<f32>> = (0..20)
        .map(|i| data[i * 79].iter().map(|v| v + 0.05).collect())
        .collect();
    let queries: Vec<Query> = vectors
        .iter()
        .map(|v| Query::new(v.clone()).top_k(10))
        .collect();
    // A cache budget of 0: quantized indexes hold their codes only.
    let codes_only = DatabaseOptions::default().cache_budget(0);
    for metric in [Metric::Euclidean, Metric::Cosine, Metric::InnerProduct] {
        for (name, config) in configs(dim) {
            let what = format!("{name} {metric:?}");
            let dir = tempfile::tempdir().unwrap();
            let key = IndexKey::generate();
            Database::open(dir.path())
                .unwrap()
                .create_index("q", &key, config.metric(metric))
                .unwrap()
                .upsert(items(&data[..1200]))
                .unwrap();
            let db = Database::open_with(dir.path(), codes_only.clone()).unwrap();
            let index = db.open_index("q", &key).unwrap();
            assert!(!index.is_resident(), "{what}");
            // Untrained: exact, every vector decrypted from its own record.
            for (q, v) in queries.iter().zip(&vectors).take(5) {
                let want = brute_force(metric, &data[..1200], v, 10);
                assert_matches_oracle(&index.query(q).unwrap(), &want);
            }
            let got = index.get(&["item-7"], Include::VECTOR).unwrap();
            assert_eq!(got[0].vector.as_deref(), Some(&data[7][..]), "{what}");
            index
                .train_with(TrainOptions {
                    n_lists: 8,
                    ..Default::default()
                })
                .unwrap();
            index.upsert(items(&data)).unwrap(); // 400 new items, 1200 rewritten
            for (q, v) in queries.iter().zip(&vectors).take(5) {
                let full = q.clone().n_probes(8).rerank(1000);
                let want = brute_force(metric, &data, v, 10);
                assert_matches_oracle(&index.query(&full).unwrap(), &want);
            }
            let codes_hits: Vec<_> = queries.iter().map(|q| index.query(q).unwrap()).collect();
            drop((index, db));
            // Measured freshly opened, as the resident one is below (writes leave spare
            // capacity behind them).
            let codes_bytes = decrypted_bytes(
                &Database::open_with(dir.path(), codes_only.clone())
                    .unwrap()
                    .open_index("q", &key)
                    .unwrap(),
            )
            .0;
            // The same index resident gives the same answers, holding far more.
            let resident = Database::open(dir.path())
                .unwrap()
                .open_index("q", &key)
                .unwrap();
            assert!(resident.is_resident(), "{what}");
            for (q, want) in queries.iter().zip(&codes_hits) {
                assert_eq!(&resident.query(q).unwrap(), want, "{what}");
            }
            let resident_bytes = decrypted_bytes(&resident).0;
            assert!(
                codes_bytes * 100 <= 35 * resident_bytes,
                "{what}: {codes_bytes} vs {resident_bytes} bytes"
            );
            drop(resident);
            // Maintenance on a codes-only handle keeps the answers.
            let db = Database::open_with(dir.path(), codes_only.clone()).unwrap();
            let index = db.open_index("q", &key).unwrap();
            index.compact().unwrap();
            index.rotate_data_key().unwrap();
            assert!(!index.is_resident(), "{what}");
            for (q, want) in queries.iter().zip(&codes_hits) {
                assert_eq!(&index.query(q).unwrap(), want, "{what}");
            }
            let gone: Vec<String> = codes_hits[0].iter().map(|h| h.id.clone()).collect();
            let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
            assert_eq!(index.delete(&gone).unwrap(), 10);
            let after = index.query(&queries[0]).unwrap();
            assert!(
                after.iter().all(|h| !gone.contains(&h.id.as_str())),
                "{what}"
            );
            assert_eq!(index.len(), 1590, "{what}");
        }
    }
}

/// The hits of a quantized query for fewer than 10 results are the first hits of the same
/// query for 10, with every re-rank factor, with vectors in RAM and with codes only: below
/// 10 hits the code scan keeps the same shortlist (`rerank * 10` candidates), so the exact
/// re-rank ranks the same rows. (With `rerank * top_k` a top-1 query kept `rerank` rows and
/// often missed the top-10 query's first hit.)
#[test]
fn hits_for_fewer_than_ten_are_the_first_hits_for_ten() {
    use ciphervec::DatabaseOptions;
    let mut rng = Rng::new(64);
    let dim = 16;
    let data = clustered(&mut rng, 1500, dim, 15);
    let queries: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..dim).map(|_| rng.f32() * 4.0).collect())
        .collect();
    for (name, config) in [
        ("sq8", IndexConfig::ivf_sq8(dim)),
        ("pq d/8", IndexConfig::ivf_pq(dim, dim / 8)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        {
            let index = Database::open(dir.path())
                .unwrap()
                .create_index("q", &key, config)
                .unwrap();
            index.upsert(items(&data)).unwrap();
            index
                .train_with(TrainOptions {
                    n_lists: 12,
                    ..Default::default()
                })
                .unwrap();
        }
        for budget in [None, Some(0)] {
            let options = match budget {
                Some(b) => DatabaseOptions::default().cache_budget(b),
                None => DatabaseOptions::default(),
            };
            let index = Database::open_with(dir.path(), options)
                .unwrap()
                .open_index("q", &key)
                .unwrap();
            for rerank in [Some(1), Some(2), None] {
                for q in &queries {
                    let query = |k: usize| {
                        let query = Query::new(q.clone()).top_k(k).n_probes(3);
                        let query = match rerank {
                            Some(r) => query.rerank(r),
                            None => query,
                        };
                        index.query(&query).unwrap()
                    };
                    let ten = query(10);
                    assert_eq!(ten.len(), 10);
                    for k in [1, 3, 9] {
                        let few: Vec<(String, f32)> =
                            query(k).into_iter().map(|h| (h.id, h.distance)).collect();
                        let prefix: Vec<(String, f32)> = ten[..k]
                            .iter()
                            .map(|h| (h.id.clone(), h.distance))
                            .collect();
                        assert_eq!(
                            few, prefix,
                            "{name} budget {budget:?} rerank {rerank:?} k {k}"
                        );
                    }
                }
            }
        }
    }
}
