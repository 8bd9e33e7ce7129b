//! Bad input gets a typed error and leaves the index as it was.

use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Metric, Query};
use serde_json::json;

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
