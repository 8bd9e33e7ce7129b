//! Create, write, train, query, reopen: results survive and only the right key opens.

use ciphervec::{Database, Error, Include, IndexConfig, IndexKey, Item, Query, TrainOptions};
use serde_json::json;

use super::common::*;

#[test]
fn create_upsert_train_reopen_gives_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(1);
    let data = clustered(&mut rng, 2000, 16, 20);
    let queries: Vec<Query> = (0..20)
        .map(|i| {
            Query::new(data[i * 7].clone())
                .top_k(5)
                .include(Include::ALL)
        })
        .collect();
    let before = {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("lifecycle", &key, IndexConfig::ivf_flat(16))
            .unwrap();
        let with_fields: Vec<Item> = items(&data)
            .into_iter()
            .enumerate()
            .map(|(i, it)| {
                it.with_metadata(json!({"n": i}))
                    .with_contents(format!("contents {i}"))
            })
            .collect();
        for chunk in with_fields.chunks(500) {
            index.upsert(chunk.to_vec()).unwrap();
        }
        assert_eq!(index.len(), 2000);
        assert!(!index.is_trained());
        index.train().unwrap();
        assert!(index.is_trained());
        index.query_batch(&queries).unwrap()
    };
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.list_indexes().unwrap(), vec!["lifecycle".to_string()]);
    let index = db.open_index("lifecycle", &key).unwrap();
    assert!(index.is_trained());
    assert_eq!(index.len(), 2000);
    let after = index.query_batch(&queries).unwrap();
    assert_eq!(before, after);
    let hit = &after[0][0];
    let n = hit
        .id
        .strip_prefix("item-")
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(hit.metadata, Some(json!({"n": n})));
    assert_eq!(hit.contents, Some(format!("contents {n}").into_bytes()));
    assert_eq!(hit.vector.as_deref(), Some(&data[n][..]));
    drop(index);

    // A wrong key is refused; so is deleting with it.
    let wrong = IndexKey::generate();
    assert!(matches!(
        db.open_index("lifecycle", &wrong),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        db.delete_index("lifecycle", &wrong),
        Err(Error::WrongKey)
    ));
    assert!(db.open_index("lifecycle", &key).is_ok());
    db.delete_index("lifecycle", &key).unwrap();
    assert!(db.list_indexes().unwrap().is_empty());
    assert!(matches!(
        db.open_index("lifecycle", &key),
        Err(Error::IndexNotFound)
    ));
}

#[test]
fn overwrite_delete_and_upserts_after_training() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("w", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    let mut rng = Rng::new(2);
    let data = clustered(&mut rng, 300, 4, 5);
    index.upsert(items(&data)).unwrap();
    index
        .train_with(TrainOptions {
            n_lists: 8,
            ..Default::default()
        })
        .unwrap();
    // Replace item-0 with a far-away vector; upserts after training go to a list.
    index.upsert([Item::new("item-0", vec![100.0; 4])]).unwrap();
    index.upsert([Item::new("new", vec![-100.0; 4])]).unwrap();
    assert_eq!(index.len(), 301);
    let hits = index
        .query(&Query::new(vec![100.0; 4]).top_k(1).n_probes(8))
        .unwrap();
    assert_eq!(hits[0].id, "item-0");
    let hits = index.query(&Query::new(vec![-99.0; 4]).top_k(1)).unwrap();
    assert_eq!(hits[0].id, "new");
    assert_eq!(
        index.delete(&["item-0", "nope", "item-0", "new"]).unwrap(),
        2
    );
    assert_eq!(index.len(), 299);
    assert!(
        index
            .get(&["item-0", "new"], Include::ALL)
            .unwrap()
            .is_empty()
    );
    let ids = index.list_ids().unwrap();
    assert_eq!(ids.len(), 299);
    assert!(!ids.contains(&"item-0".to_string()));
    // Retraining keeps everything.
    index.train().unwrap();
    assert_eq!(index.len(), 299);
    let rec = index.get(&["item-5"], Include::VECTOR).unwrap();
    assert_eq!(rec[0].vector.as_deref(), Some(&data[5][..]));
}

/// A large write to a trained index puts every vector in the list its own query probes
/// first: probing one list (and returning all of it: under the inner product an item need
/// not rank first for its own vector), each item's vector finds that item. The batch
/// crosses the write's assignment chunks (8,192 vectors), for each metric.
#[test]
fn a_large_write_after_training_puts_each_vector_in_its_nearest_list() {
    use ciphervec::Metric;
    let mut rng = Rng::new(44);
    let dim = 8;
    let base = clustered(&mut rng, 2000, dim, 40);
    let batch = clustered(&mut rng, 10_000, dim, 40);
    for metric in [Metric::Euclidean, Metric::Cosine, Metric::InnerProduct] {
        let db = Database::in_memory();
        let key = IndexKey::generate();
        let index = db
            .create_index("a", &key, IndexConfig::ivf_flat(dim).metric(metric))
            .unwrap();
        index.upsert(items(&base)).unwrap();
        index
            .train_with(TrainOptions {
                n_lists: 64,
                ..Default::default()
            })
            .unwrap();
        let new: Vec<Item> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| Item::new(format!("new-{i}"), v.clone()))
            .collect();
        index.upsert(new).unwrap();
        for (i, v) in batch.iter().enumerate() {
            let hits = index
                .query(&Query::new(v.clone()).top_k(12_000).n_probes(1))
                .unwrap();
            let id = format!("new-{i}");
            assert!(
                hits.iter().any(|h| h.id == id),
                "{metric:?}: {id} is not in the list its vector probes"
            );
        }
    }
}

#[test]
fn duplicate_ids_in_one_batch_keep_the_last() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("d", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index
        .upsert([
            Item::new("x", vec![1.0, 1.0]),
            Item::new("x", vec![2.0, 2.0]).with_contents("last"),
        ])
        .unwrap();
    assert_eq!(index.len(), 1);
    let r = index.get(&["x"], Include::ALL).unwrap();
    assert_eq!(r[0].vector, Some(vec![2.0, 2.0]));
    assert_eq!(r[0].contents.as_deref(), Some(&b"last"[..]));
}

#[test]
fn second_database_on_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let a = Database::open(dir.path()).unwrap();
    let index = a.create_index("l", &key, IndexConfig::ivf_flat(2)).unwrap();
    // The same database hands out a shared handle.
    let again = a.open_index("l", &key).unwrap();
    again.upsert([Item::new("p", vec![1.0, 2.0])]).unwrap();
    assert_eq!(index.len(), 1);
    let b = Database::open(dir.path()).unwrap();
    assert!(matches!(b.open_index("l", &key), Err(Error::Locked)));
    drop(index);
    drop(again);
    let reopened = b.open_index("l", &key).unwrap();
    assert_eq!(reopened.len(), 1);
    assert!(matches!(
        b.create_index("l", &key, IndexConfig::ivf_flat(2)),
        Err(Error::IndexExists)
    ));
}

#[test]
fn readers_open_read_only_while_a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let writer_db = Database::open(dir.path()).unwrap();
    let writer = writer_db
        .create_index("ro", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    writer.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    let reader_db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        reader_db.open_index("ro", &key),
        Err(Error::Locked)
    ));
    let reader = reader_db.open_index_read_only("ro", &key).unwrap();
    assert_eq!(
        reader.query(&Query::new(vec![1.0, 0.0])).unwrap()[0].id,
        "a"
    );
    assert!(matches!(
        reader.upsert([Item::new("b", vec![0.0, 1.0])]),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(reader.delete(&["a"]), Err(Error::ReadOnly)));
    assert!(matches!(reader.train(), Err(Error::ReadOnly)));
    assert!(matches!(
        reader_db.open_index_read_only("ro", &IndexKey::generate()),
        Err(Error::WrongKey)
    ));
    // A snapshot: later writes show up in a newly opened reader.
    writer.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    assert_eq!(reader.len(), 1);
    assert_eq!(reader_db.open_index_read_only("ro", &key).unwrap().len(), 2);
}

/// Deleting an index while a handle on it is open: the handle's later writes are
/// `IndexNotFound` (not an I/O error from files that are gone), its queries still answer,
/// and an index created again under the name is untouched by it.
#[test]
fn a_handle_on_a_deleted_index_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    let old = db
        .create_index("gone", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    old.upsert([Item::new("a", vec![1.0, 0.0])]).unwrap();
    db.delete_index("gone", &key).unwrap();
    assert!(matches!(
        old.upsert([Item::new("b", vec![0.0, 1.0])]),
        Err(Error::IndexNotFound)
    ));
    assert!(matches!(old.delete(&["a"]), Err(Error::IndexNotFound)));
    assert!(matches!(old.compact(), Err(Error::IndexNotFound)));
    let hits = old.query(&Query::new(vec![1.0, 0.0])).unwrap();
    assert_eq!(hits[0].id, "a");
    let new = db
        .create_index("gone", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    new.upsert([Item::new("c", vec![0.0, 1.0])]).unwrap();
    assert!(old.upsert([Item::new("d", vec![1.0, 1.0])]).is_err());
    drop((old, new));
    let reopened = db.open_index("gone", &key).unwrap();
    assert_eq!(reopened.list_ids().unwrap(), vec!["c".to_string()]);
}
