//! An index larger than the cache budget is decrypted on demand: results, vectors, filters,
//! writes and training behave exactly as with the whole index in memory.

use ciphervec::{Database, DatabaseOptions, Include, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

use super::common::*;

#[test]
fn cold_index_answers_like_a_resident_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(31);
    let dim = 12;
    let mut data = clustered(&mut rng, 3000, dim, 15);
    let queries: Vec<Query> = (0..25)
        .map(|i| {
            Query::new(data[i * 101].clone())
                .top_k(7)
                .include(Include::ALL)
        })
        .collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("cold", &key, IndexConfig::ivf_flat(dim))
            .unwrap();
        index
            .upsert(items(&data).into_iter().enumerate().map(|(i, it)| {
                it.with_metadata(json!({"m": i % 7}))
                    .with_contents(vec![(i % 251) as u8])
            }))
            .unwrap();
        index.train().unwrap();
    }
    let resident = {
        let db = Database::open(dir.path()).unwrap();
        let index = db.open_index("cold", &key).unwrap();
        assert!(index.is_resident());
        let filtered = index
            .query(&Query::new(data[5].clone()).top_k(9).filter(json!({"m": 3})))
            .unwrap();
        (index.query_batch(&queries).unwrap(), filtered)
    };
    // 16 KiB holds a few lists of the ~150 KiB index.
    let db = Database::open_with(
        dir.path(),
        DatabaseOptions::default().cache_budget(16 << 10),
    )
    .unwrap();
    let index = db.open_index("cold", &key).unwrap();
    assert!(!index.is_resident());
    assert_eq!(index.query_batch(&queries).unwrap(), resident.0);
    let filtered = index
        .query(&Query::new(data[5].clone()).top_k(9).filter(json!({"m": 3})))
        .unwrap();
    assert_eq!(filtered, resident.1);
    let got = index.get(&["item-42"], Include::VECTOR).unwrap();
    assert_eq!(got[0].vector.as_deref(), Some(&data[42][..]));

    // Writes while cold: overwrite, insert, delete; then check against brute force.
    data[10] = vec![50.0; dim];
    index
        .upsert([Item::new("item-10", data[10].clone())])
        .unwrap();
    index.delete(&["item-11"]).unwrap();
    let n_lists = 10_000;
    let live: Vec<(usize, Vec<f32>)> = data
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| *i != 11)
        .collect();
    let check = |index: &ciphervec::EncryptedIndex| {
        for q in [data[10].clone(), data[12].clone(), vec![0.0; dim]] {
            let hits = index
                .query(&Query::new(q.clone()).top_k(10).n_probes(n_lists))
                .unwrap();
            let vectors: Vec<Vec<f32>> = live.iter().map(|(_, v)| v.clone()).collect();
            let want: Vec<(usize, f32)> =
                brute_force(ciphervec::Metric::Euclidean, &vectors, &q, 10)
                    .into_iter()
                    .map(|(j, d)| (live[j].0, d))
                    .collect();
            assert_matches_oracle(&hits, &want);
        }
    };
    check(&index);
    assert_eq!(index.len(), 2999);
    assert!(!index.is_resident());
    // Training while cold stays correct.
    index.train().unwrap();
    check(&index);
}
