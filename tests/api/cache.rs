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

/// One residency rule for open, training, compaction and rotation: a budget that holds the
/// live vectors (but not the sealed blocks, with their ids, tokens and stale versions) keeps
/// an index resident after each of them and after reopening, for every index type; one byte
/// less keeps it non-resident everywhere; answers are the same either way.
#[test]
fn one_residency_rule_for_open_training_compaction_and_rotation() {
    let dim = 8;
    let n = 600;
    let mut rng = Rng::new(77);
    let data = clustered(&mut rng, n, dim, 6);
    let exact_bytes = n * dim * 4;
    for config in [
        IndexConfig::ivf_flat(dim),
        IndexConfig::ivf_sq8(dim),
        IndexConfig::ivf_pq(dim, 4),
    ] {
        for (budget, resident) in [(exact_bytes, true), (exact_bytes - 1, false)] {
            let dir = tempfile::tempdir().unwrap();
            let key = IndexKey::generate();
            let options = DatabaseOptions::default().cache_budget(budget);
            let db = Database::open_with(dir.path(), options.clone()).unwrap();
            let index = db.create_index("r", &key, config.clone()).unwrap();
            // Overwrite half of them once, so the stored blocks hold stale versions too.
            index.upsert(items(&data)).unwrap();
            index.upsert(items(&data[..n / 2])).unwrap();
            let what = format!("{config:?} budget {budget}");
            let reopen = |index: ciphervec::EncryptedIndex| {
                drop(index);
                Database::open_with(dir.path(), options.clone())
                    .unwrap()
                    .open_index("r", &key)
                    .unwrap()
            };
            let index = reopen(index);
            assert_eq!(index.is_resident(), resident, "{what}: open");
            index.train().unwrap();
            assert_eq!(index.is_resident(), resident, "{what}: trained");
            let index = reopen(index);
            assert_eq!(index.is_resident(), resident, "{what}: trained, reopened");
            index.compact().unwrap();
            assert_eq!(index.is_resident(), resident, "{what}: compacted");
            index.rotate_data_key().unwrap();
            assert_eq!(index.is_resident(), resident, "{what}: rotated");
            let index = reopen(index);
            assert_eq!(index.is_resident(), resident, "{what}: rotated, reopened");
            let q = Query::new(data[3].clone()).top_k(5);
            assert_eq!(index.query(&q).unwrap()[0].id, "item-3", "{what}");
        }
    }
}
