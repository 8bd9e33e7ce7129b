//! Bad input gets a typed error and leaves the index as it was.

use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Metric, Query};
use serde_json::json;

use super::common::*;

fn setup(metric: Metric) -> ciphervec::EncryptedIndex {
    let db = Database::in_memory();
    let index = db
        .create_index(
            "b",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(3).metric(metric),
        )
        .unwrap();
    index
        .upsert([Item::new("ok", vec![1.0, 2.0, 3.0])])
        .unwrap();
    index
}

#[test]
fn bad_vectors_and_ids_are_rejected_and_change_nothing() {
    let index = setup(Metric::Cosine);
    let good = Item::new("good", vec![1.0, 1.0, 1.0]);
    type Check = fn(&Error) -> bool;
    let cases: Vec<(Item, Check)> = vec![
        (Item::new("a", vec![f32::NAN, 1.0, 1.0]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        (Item::new("a", vec![f32::INFINITY, 1.0, 1.0]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        (Item::new("a", vec![]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        (Item::new("a", vec![1.0, 2.0]), |e| {
            matches!(
                e,
                Error::DimensionMismatch {
                    expected: 3,
                    found: 2
                }
            )
        }),
        (Item::new("a", vec![0.0, 0.0, 0.0]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        // Zero under cosine as f32 computes its norm: every square underflows.
        (Item::new("a", vec![1e-30, 0.0, -1e-25]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        // Finite, but the squared norm (3e76) leaves f32's range.
        (Item::new("a", vec![1e38, 1.0, 1.0]), |e| {
            matches!(e, Error::InvalidVector)
        }),
        (Item::new("", vec![1.0, 1.0, 1.0]), |e| {
            matches!(e, Error::InvalidArgument { .. })
        }),
        (Item::new("x".repeat(5000), vec![1.0, 1.0, 1.0]), |e| {
            matches!(e, Error::InvalidArgument { .. })
        }),
        (
            Item::new("a", vec![1.0, 1.0, 1.0]).with_metadata(json!([1, 2])),
            |e| matches!(e, Error::InvalidArgument { .. }),
        ),
    ];
    for (bad, check) in cases {
        // A good item in the same batch is not written either.
        let err = index.upsert([good.clone(), bad]).unwrap_err();
        assert!(check(&err), "unexpected error {err:?}");
        assert_eq!(index.list_ids().unwrap(), vec!["ok".to_string()]);
    }
}

#[test]
fn bad_queries_are_rejected() {
    let index = setup(Metric::Cosine);
    let q = |v: Vec<f32>| Query::new(v);
    assert!(matches!(
        index.query(&q(vec![f32::NAN, 0.0, 1.0])),
        Err(Error::InvalidVector)
    ));
    assert!(matches!(
        index.query(&q(vec![0.0, 0.0, 0.0])),
        Err(Error::InvalidVector)
    ));
    assert!(matches!(
        index.query(&q(vec![1.0])),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        index.query(&q(vec![1.0, 1.0, 1.0]).top_k(0)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        index.query(&q(vec![1.0, 1.0, 1.0]).top_k(usize::MAX)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        index.train_with(ciphervec::TrainOptions {
            max_iters: 0,
            ..Default::default()
        }),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(index.len(), 1);
}

/// Vectors whose distances would overflow f32 are refused under every metric and index
/// type, in writes and in queries, at the documented limit (a norm of 2^62); one just under
/// it is kept, found by a query for itself, and its distances are finite.
#[test]
fn vectors_too_large_for_f32_distances_are_refused_at_the_limit() {
    let limit = 2f32.powi(62);
    for metric in [Metric::Euclidean, Metric::InnerProduct, Metric::Cosine] {
        for config in [
            IndexConfig::ivf_flat(4),
            IndexConfig::ivf_sq8(4),
            IndexConfig::ivf_pq(4, 2),
        ] {
            let index = Database::in_memory()
                .create_index("big", &IndexKey::generate(), config.metric(metric))
                .unwrap();
            let at_limit = vec![limit, 0.0, 0.0, 0.0];
            let just_under = vec![limit * 0.999, 0.0, 0.0, 0.0];
            let spread = vec![limit * 0.6, -limit * 0.6, 0.0, limit * 0.5];
            for bad in [at_limit.clone(), vec![3e19, 3e19, 0.0, 0.0]] {
                assert!(matches!(
                    index.upsert([Item::new("bad", bad.clone())]),
                    Err(Error::InvalidVector)
                ));
                assert!(matches!(
                    index.query(&Query::new(bad)),
                    Err(Error::InvalidVector)
                ));
            }
            assert_eq!(index.len(), 0, "{metric:?}");
            index
                .upsert([
                    Item::new("under", just_under.clone()),
                    Item::new("spread", spread),
                    Item::new("small", vec![1.0, 2.0, 3.0, 4.0]),
                ])
                .unwrap();
            let hits = index.query(&Query::new(just_under)).unwrap();
            assert_eq!(hits.len(), 3, "{metric:?}");
            assert_eq!(hits[0].id, "under", "{metric:?}");
            assert!(hits.iter().all(|h| h.distance.is_finite()), "{hits:?}");
        }
    }
}

#[test]
fn empty_index_and_unknown_ids() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("e", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    assert!(index.query(&Query::new(vec![1.0, 0.0])).unwrap().is_empty());
    assert!(matches!(index.train(), Err(Error::InvalidArgument { .. })));
    assert!(index.get(&["nope"], Include::ALL).unwrap().is_empty());
    assert_eq!(index.delete(&["nope"]).unwrap(), 0);
    assert!(matches!(
        db.create_index("bad/name", &key, IndexConfig::ivf_flat(2)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.create_index("zero", &key, IndexConfig::ivf_flat(0)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.open_index("missing", &key),
        Err(Error::IndexNotFound)
    ));
    assert!(matches!(
        db.delete_index("missing", &key),
        Err(Error::IndexNotFound)
    ));
}

#[test]
fn upsert_rows_equals_upsert_and_refuses_a_ragged_or_narrow_matrix() {
    let mut rng = Rng::new(77);
    let data = clustered(&mut rng, 300, 6, 4);
    let ids: Vec<String> = (0..300).map(|i| format!("item-{i}")).collect();
    let rows: Vec<f32> = data.iter().flatten().copied().collect();
    let by_rows = Database::in_memory()
        .create_index("r", &IndexKey::generate(), IndexConfig::ivf_flat(6))
        .unwrap();
    by_rows.upsert_rows(&ids, &rows).unwrap();
    for bad in [&rows[..rows.len() - 1], &rows[..0]] {
        assert!(matches!(
            by_rows.upsert_rows(&ids, bad),
            Err(Error::InvalidArgument { .. })
        ));
    }
    // Whole rows of another width: the dimension they have, as `upsert` reports it.
    assert!(matches!(
        by_rows.upsert_rows(&ids, &rows[..300 * 5]),
        Err(Error::DimensionMismatch {
            expected: 6,
            found: 5
        })
    ));
    assert!(matches!(
        by_rows.upsert_rows(&["x"], &[f32::NAN; 6]),
        Err(Error::InvalidVector)
    ));
    assert_eq!(by_rows.len(), 300);
    for q in data.iter().step_by(37) {
        let hits = by_rows.query(&Query::new(q.clone()).top_k(5)).unwrap();
        assert_matches_oracle(&hits, &brute_force(Metric::Euclidean, &data, q, 5));
    }
}
