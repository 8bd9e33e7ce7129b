//! On real sentence embeddings (`../shared/data`, skipped when absent), every index type
//! created and queried with its defaults reaches recall@10 >= 0.95 against the exact ground
//! truth: on the whole set, and on a prefix of another size (other default list and probe
//! counts), whose ground truth is computed here by brute force; and after growing tenfold
//! past training.

use std::collections::HashSet;

use ciphervec::{Database, IndexConfig, IndexKey, Item, Metric, Query};

use super::common::*;

/// Recall@10 of `config` built with defaults over `base`, queried with defaults.
fn default_recall(
    config: IndexConfig,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<i32>],
) -> f64 {
    recall_trained_after(config, base, base.len(), (queries, truth))
}

/// Recall@10 of `config` with defaults, trained once the first `trained_after` vectors of
/// `base` are in, the rest upserted after training.
fn recall_trained_after(
    config: IndexConfig,
    base: &[Vec<f32>],
    trained_after: usize,
    (queries, truth): (&[Vec<f32>], &[Vec<i32>]),
) -> f64 {
    let db = Database::in_memory();
    let index = db
        .create_index("real", &IndexKey::generate(), config)
        .unwrap();
    let items =
        |range: std::ops::Range<usize>| range.map(|i| Item::new(i.to_string(), base[i].clone()));
    index.upsert(items(0..trained_after)).unwrap();
    index.train().unwrap();
    index.upsert(items(trained_after..base.len())).unwrap();
    let qs: Vec<Query> = queries.iter().map(|q| Query::new(q.clone())).collect();
    let results = index.query_batch(&qs).unwrap();
    let mut found = 0;
    for (hits, t) in results.iter().zip(truth) {
        let want: HashSet<String> = t[..10].iter().map(ToString::to_string).collect();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
    }
    found as f64 / (10 * results.len()) as f64
}

/// The exact 10 nearest (Euclidean) of each query among `base`.
fn brute_force_top10(base: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Vec<i32>> {
    queries
        .iter()
        .map(|q| {
            let mut d: Vec<(f32, i32)> = base
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(),
                        i as i32,
                    )
                })
                .collect();
            d.select_nth_unstable_by(9, |a, b| a.partial_cmp(b).unwrap());
            d.truncate(10);
            d.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// Vectors, one per row.
pub(super) type Rows = Vec<Vec<f32>>;

/// The sentence-embedding set (skipped when absent): base vectors, queries, and each
/// query's exact 100 nearest base rows.
pub(super) fn sentence_embeddings() -> Option<(Rows, Rows, Vec<Vec<i32>>)> {
    let dir = shared_data()?;
    Some((
        read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes),
        read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes),
        read_vecs(&dir.join("groundtruth.ivecs"), i32::from_le_bytes),
    ))
}

#[test]
fn every_index_type_reaches_recall_095_with_defaults_on_sentence_embeddings() {
    let Some((base, queries, truth)) = sentence_embeddings() else {
        return;
    };
    let dim = base[0].len();
    // A prefix of another size, queried with half the queries, and a small one (a tenth:
    // few lists, and PQ trained on few vectors).
    let prefix = &base[..base.len() * 21 / 25];
    let prefix_queries = &queries[..queries.len() / 2];
    let prefix_truth = brute_force_top10(prefix, prefix_queries);
    let small = &base[..base.len() / 10];
    let small_truth = brute_force_top10(small, prefix_queries);
    let mut failures = Vec::new();
    for (name, config) in [
        ("ivf_flat", IndexConfig::ivf_flat(dim)),
        ("ivf_sq8", IndexConfig::ivf_sq8(dim)),
        ("ivf_pq d/4", IndexConfig::ivf_pq(dim, dim / 4)),
        ("ivf_pq d/2", IndexConfig::ivf_pq(dim, dim / 2)),
        // Coarse codes (16 and 32 dimensions per 4-bit code), whose default re-rank grows
        // faster than the dimensions per code.
        ("ivf_pq d/16", IndexConfig::ivf_pq(dim, dim / 16)),
        ("ivf_pq d/32", IndexConfig::ivf_pq(dim, dim / 32)),
        // Under cosine, which coarse codes serve worse. The embeddings are unit vectors:
        // the Euclidean ground truth is the cosine one.
        (
            "ivf_pq d/16 cosine",
            IndexConfig::ivf_pq(dim, dim / 16).metric(Metric::Cosine),
        ),
    ] {
        let whole = default_recall(config.clone(), &base, &queries, &truth);
        let part = default_recall(config.clone(), prefix, prefix_queries, &prefix_truth);
        let tenth = default_recall(config, small, prefix_queries, &small_truth);
        println!(
            "{name}: recall@10 {whole:.4} ({} vectors), {part:.4} ({}), {tenth:.4} ({})",
            base.len(),
            prefix.len(),
            small.len()
        );
        if whole < 0.95 || part < 0.95 || tenth < 0.95 {
            failures.push(format!("{name}: {whole:.4} / {part:.4} / {tenth:.4}"));
        }
    }
    assert!(failures.is_empty(), "below 0.95: {failures:?}");
}

/// Trained on its first tenth, then grown tenfold without retraining (each later vector goes
/// to its nearest list): the lists are the default for a tenth of the items and ten times
/// longer, and the default probes still reach recall@10 0.95.
#[test]
fn defaults_keep_recall_095_when_an_index_grows_tenfold_after_training() {
    let Some((base, queries, truth)) = sentence_embeddings() else {
        return;
    };
    let dim = base[0].len();
    let mut failures = Vec::new();
    for (name, config) in [
        ("ivf_flat", IndexConfig::ivf_flat(dim)),
        ("ivf_pq d/4", IndexConfig::ivf_pq(dim, dim / 4)),
    ] {
        let recall = recall_trained_after(config, &base, base.len() / 10, (&queries, &truth));
        println!("{name}: recall@10 {recall:.4} trained at a tenth");
        if recall < 0.95 {
            failures.push(format!("{name}: {recall:.4}"));
        }
    }
    assert!(failures.is_empty(), "below 0.95: {failures:?}");
}
