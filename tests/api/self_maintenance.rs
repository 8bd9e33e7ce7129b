//! Self-maintenance: an index that is only written and queried trains itself in the
//! background, retrains as it grows, and keeps recall against the brute-force oracle, while
//! writes and queries go on during a training.

use ciphervec::{Database, IndexConfig, IndexKey, Metric, Query};

use super::common::*;

const DIM: usize = 16;

/// Waits (polling, no time bound) until no background training runs.
fn settle(index: &ciphervec::EncryptedIndex) {
    while index.is_training() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Recall@10 of `index` at its defaults against brute force over `data` (ids `item-<i>`).
fn recall_at_10(index: &ciphervec::EncryptedIndex, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for q in queries {
        let want: Vec<String> = brute_force(Metric::Euclidean, data, q, 10)
            .into_iter()
            .map(|(i, _)| format!("item-{i}"))
            .collect();
        let hits = index.query(&Query::new(q.clone()).top_k(10)).unwrap();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn an_index_grown_13x_trains_itself_and_keeps_recall() {
    let mut rng = Rng::new(7);
    let data = clustered(&mut rng, 40_000, DIM, 60);
    let queries: Vec<Vec<f32>> = clustered(&mut rng, 200, DIM, 60);
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("grow", &key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    let all = items(&data);
    index.upsert(all[..3_000].iter().cloned()).unwrap();
    index.train().unwrap();
    assert_eq!(index.training_status().trained_at_items, Some(3_000));
    let t0 = std::time::Instant::now();
    for batch in all[3_000..].chunks(1_000) {
        index.upsert(batch.iter().cloned()).unwrap();
    }
    println!("writes took {:?}", t0.elapsed());
    settle(&index);
    let status = index.training_status();
    println!("{status:?}");
    assert!(status.background_trainings >= 1, "{status:?}");
    let recall = recall_at_10(&index, &data, &queries);
    println!("recall@10 {recall}");
    assert!(recall >= 0.95, "recall {recall}");
}
