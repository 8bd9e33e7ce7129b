//! Metadata and filters nested deeper than 64 levels are refused with typed errors, on a
//! thread with a 2 MiB stack, whatever their depth (129, 1,000, 100,000): nothing is written,
//! nothing overflows, and the index reopens. 64 levels are accepted and survive a reopen.

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item, Query};
use serde_json::{Map, Value};

/// `{"a": {"a": ... {"a": 1}}}` with `depth` objects, built without recursion.
fn nested(depth: usize) -> Value {
    let mut v = Value::from(1);
    for _ in 0..depth {
        let mut m = Map::new();
        m.insert("a".into(), v);
        v = Value::Object(m);
    }
    v
}

/// A filter of `depth` levels: `{"$and": [{"$and": [ ... {"a": 1} ]}]}` (two levels per
/// `$and`, an object and an array).
fn nested_filter(depth: usize) -> Value {
    let mut v = serde_json::json!({"a": 1});
    for _ in 0..depth.saturating_sub(1) / 2 {
        let mut m = Map::new();
        m.insert("$and".into(), Value::Array(vec![v]));
        v = Value::Object(m);
    }
    v
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the thread must not overflow its stack");
}

#[test]
fn deep_metadata_and_filters_get_typed_errors_on_a_small_stack() {
    on_small_stack(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("deep", &key, IndexConfig::ivf_flat(2))
            .unwrap();
        // 64 levels: accepted, stored, filterable.
        index
            .upsert([Item::new("ok", vec![1.0, 0.0]).with_metadata(nested(64))])
            .unwrap();
        let hits = index
            .query(
                &Query::new(vec![1.0, 0.0]).filter(serde_json::json!({"a.a": {"$exists": true}})),
            )
            .unwrap();
        assert_eq!(hits.len(), 1);
        for depth in [65, 129, 1_000, 100_000] {
            let item = Item::new("deep", vec![0.0, 1.0]).with_metadata(nested(depth));
            let err = index.upsert([item]).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { .. }),
                "{depth}: {err:?}"
            );
            let query = Query::new(vec![1.0, 0.0]).filter(nested_filter(depth));
            let err = index.query(&query).unwrap_err();
            assert!(
                matches!(err, Error::InvalidFilter { .. }),
                "{depth}: {err:?}"
            );
            // A deep value inside an otherwise shallow filter.
            let mut m = Map::new();
            m.insert("a".into(), nested(depth));
            let err = index
                .query(&Query::new(vec![1.0, 0.0]).filter(Value::Object(m)))
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidFilter { .. }),
                "{depth}: {err:?}"
            );
        }
        // A path of more than 64 segments.
        let path = vec!["a"; 65].join(".");
        let mut m = Map::new();
        m.insert(path, Value::from(1));
        assert!(matches!(
            index.query(&Query::new(vec![1.0, 0.0]).filter(Value::Object(m))),
            Err(Error::InvalidFilter { .. })
        ));
        assert_eq!(index.list_ids().unwrap(), vec!["ok".to_owned()]);
        drop(index);
        let index = db.open_index("deep", &key).unwrap();
        assert_eq!(index.list_ids().unwrap(), vec!["ok".to_owned()]);
        let got = index.get(&["ok"], ciphervec::Include::METADATA).unwrap();
        assert_eq!(got[0].metadata.as_ref(), Some(&nested(64)));
    });
}
