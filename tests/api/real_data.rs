//! On real sentence embeddings (`../shared/data`, skipped when absent), default parameters
//! reach recall@10 >= 0.95 against the exact ground truth.

use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};

use super::common::*;

#[test]
fn default_parameters_reach_recall_095_on_sentence_embeddings() {
    let Some(dir) = shared_data() else { return };
    let base = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes);
    let queries = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes);
    let truth = read_vecs(&dir.join("groundtruth.ivecs"), i32::from_le_bytes);
    let db = Database::in_memory();
    let index = db
        .create_index(
            "real",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(base[0].len()),
        )
        .unwrap();
    index
        .upsert(
            base.iter()
                .enumerate()
                .map(|(i, v)| Item::new(i.to_string(), v.clone())),
        )
        .unwrap();
    index.train().unwrap();
    let qs: Vec<Query> = queries
        .iter()
        .map(|q| Query::new(q.clone()).top_k(10))
        .collect();
    let results = index.query_batch(&qs).unwrap();
    let mut found = 0;
    for (hits, t) in results.iter().zip(&truth) {
        let want: std::collections::HashSet<String> = t[..10]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    let recall = found as f64 / (10 * results.len()) as f64;
    println!("recall@10 = {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
}
