//! Re-rank vectors stored at float16 or 8 bits: every index type and metric holds and
//! answers with the documented rounding of each vector (`get`, distances, exact search)
//! through training, reopening, compaction, rotation and a cache budget; the files shrink;
//! on the real sentence embeddings recall@10 stays at float32's.

use std::collections::HashSet;

use ciphervec::{
    Database, DatabaseOptions, EncryptedIndex, Error, Include, IndexConfig, IndexKey, Item, Metric,
    Query, StoragePrecision,
};

use super::common::*;

const PRECISIONS: [StoragePrecision; 3] = [
    StoragePrecision::Float32,
    StoragePrecision::Float16,
    StoragePrecision::Int8,
];

/// The documented rounding, written out: half precision through the `half` crate; 8 bits as
/// `q * s`, `s` the largest magnitude over 127 rounded up to 17 significant bits, `q` the
/// nearest integer to `x / s`.
fn rounded(v: &[f32], p: StoragePrecision) -> Vec<f32> {
    match p {
        StoragePrecision::Float16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        StoragePrecision::Int8 => {
            let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            if max == 0.0 {
                return vec![0.0; v.len()];
            }
            let raw = max / 127.0;
            // The least float >= raw whose last 7 mantissa bits are zero.
            let mut s = raw;
            while s.to_bits() & 0x7f != 0 {
                s = f32::from_bits(s.to_bits() + 1);
            }
            v.iter()
                .map(|&x| (x / s).round().clamp(-127.0, 127.0) * s)
                .collect()
        }
        _ => v.to_vec(),
    }
}

fn configs(dim: usize) -> Vec<IndexConfig> {
    let mut out = Vec::new();
    for metric in [
        Metric::Euclidean,
        Metric::SquaredEuclidean,
        Metric::Cosine,
        Metric::InnerProduct,
    ] {
        for config in [
            IndexConfig::ivf_flat(dim),
            IndexConfig::ivf_sq8(dim),
            IndexConfig::ivf_pq(dim, dim / 4),
        ] {
            out.push(config.metric(metric));
        }
    }
    out
}

fn stored_vectors(index: &EncryptedIndex, n: usize) -> Vec<Vec<f32>> {
    let ids: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index
        .get(&refs, Include::VECTOR)
        .unwrap()
        .into_iter()
        .map(|r| r.vector.unwrap())
        .collect()
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|r| r.iter().map(|x| (x + 0.0).to_bits()).collect())
        .collect()
}

/// Every configuration at every precision: `get` returns the rounding, an exact query (all
/// lists probed, re-rank of everything) equals brute force over the rounded vectors, and
/// both survive training, compaction, a data-key rotation and reopening, resident or under
/// a cache budget.
#[test]
fn every_type_and_metric_holds_the_documented_rounding() {
    let dim = 16;
    let n = 300;
    let mut rng = Rng::new(16);
    let vectors: Vec<Vec<f32>> = clustered(&mut rng, n, dim, 6)
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.into_iter().map(|x| x * (1.0 + i as f32 / 7.0)).collect())
        .collect();
    let queries: Vec<Vec<f32>> = clustered(&mut rng, 5, dim, 6);
    for config in configs(dim) {
        for precision in PRECISIONS {
            let want: Vec<Vec<f32>> = vectors.iter().map(|v| rounded(v, precision)).collect();
            let dir = tempfile::tempdir().unwrap();
            let key = IndexKey::generate();
            let config = config.clone().storage_precision(precision);
            let metric = config.distance_metric();
            let what = format!("{config:?}");
            {
                let index = Database::open(dir.path())
                    .unwrap()
                    .create_index("p", &key, config)
                    .unwrap();
                assert_eq!(index.config().precision(), precision);
                index
                    .upsert(
                        vectors
                            .iter()
                            .enumerate()
                            .map(|(i, v)| Item::new(format!("v{i}"), v.clone())),
                    )
                    .unwrap();
                assert_eq!(bits(&stored_vectors(&index, n)), bits(&want), "{what}");
                check_exact(&index, &want, &queries, metric, &what);
                index.train().unwrap();
                index.compact().unwrap();
                index.rotate_data_key().unwrap();
                assert_eq!(bits(&stored_vectors(&index, n)), bits(&want), "{what}");
            }
            for budget in [None, Some(1)] {
                let db = match budget {
                    None => Database::open(dir.path()).unwrap(),
                    Some(b) => {
                        Database::open_with(dir.path(), DatabaseOptions::default().cache_budget(b))
                            .unwrap()
                    }
                };
                let index = db.open_index_read_only("p", &key).unwrap();
                assert_eq!(index.config().precision(), precision);
                assert_eq!(bits(&stored_vectors(&index, n)), bits(&want), "{what}");
                check_exact(&index, &want, &queries, metric, &what);
                index.verify().unwrap();
            }
        }
    }
}

/// With every list probed and every candidate re-ranked, hits equal brute force over the
/// stored (rounded) vectors.
fn check_exact(
    index: &EncryptedIndex,
    stored: &[Vec<f32>],
    queries: &[Vec<f32>],
    metric: Metric,
    what: &str,
) {
    for q in queries {
        let want = brute_force(metric, stored, q, 10);
        let hits = index
            .query(
                &Query::new(q.clone())
                    .top_k(10)
                    .n_probes(10_000)
                    .rerank(1000),
            )
            .unwrap();
        for (h, (i, d)) in hits.iter().zip(&want) {
            assert!(
                (h.distance - d).abs() <= 1e-4 * d.abs().max(1.0),
                "{what}: {} at {} vs item {i} at {d}",
                h.id,
                h.distance
            );
        }
        assert_eq!(hits.len(), want.len());
    }
}

#[test]
fn values_beyond_half_precision_are_invalid_and_write_nothing() {
    let index = Database::in_memory()
        .create_index(
            "h",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(2).storage_precision(StoragePrecision::Float16),
        )
        .unwrap();
    let result = index.upsert([
        Item::new("ok", vec![1.0, 2.0]),
        Item::new("big", vec![1.0e5, 0.0]),
    ]);
    assert!(matches!(result, Err(Error::InvalidVector)));
    assert_eq!(index.len(), 0);
    // Under cosine, a vector that half precision rounds to zero has no direction.
    let cosine = Database::in_memory()
        .create_index(
            "c",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(2)
                .metric(Metric::Cosine)
                .storage_precision(StoragePrecision::Float16),
        )
        .unwrap();
    assert!(matches!(
        cosine.upsert([Item::new("tiny", vec![1e-9, -1e-9])]),
        Err(Error::InvalidVector)
    ));
    assert!(
        "float64".parse::<StoragePrecision>().is_err(),
        "unknown precisions are refused"
    );
    assert_eq!(
        "Float16".parse::<StoragePrecision>().unwrap(),
        StoragePrecision::Float16
    );
}

/// Bytes of the files in a folder.
fn folder_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn lower_precisions_take_less_disk() {
    let dim = 128;
    let mut rng = Rng::new(3);
    let vectors = clustered(&mut rng, 2000, dim, 8);
    for (name, base) in [
        ("ivf_flat", IndexConfig::ivf_flat(dim)),
        ("ivf_sq8", IndexConfig::ivf_sq8(dim)),
    ] {
        let mut sizes = Vec::new();
        for precision in PRECISIONS {
            let dir = tempfile::tempdir().unwrap();
            let index = Database::open(dir.path())
                .unwrap()
                .create_index(
                    "d",
                    &IndexKey::generate(),
                    base.clone().storage_precision(precision),
                )
                .unwrap();
            index.upsert(items(&vectors)).unwrap();
            index.train().unwrap();
            sizes.push(folder_bytes(&dir.path().join("d")) as f64);
        }
        println!(
            "{name}: float32 {} B, float16 {} B, int8 {} B",
            sizes[0], sizes[1], sizes[2]
        );
        // Each vector takes 2 * dim bytes less at half precision, 3 * dim - 4 less at 8 bits
        // (give or take the padding of its record).
        let n = vectors.len() as f64;
        let d = dim as f64;
        assert!(sizes[0] - sizes[1] >= 0.95 * n * 2.0 * d, "{sizes:?}");
        assert!(
            sizes[0] - sizes[2] >= 0.95 * n * (3.0 * d - 4.0),
            "{sizes:?}"
        );
    }
}

/// On the real sentence embeddings (skipped when absent): recall@10 against the exact
/// float32 ground truth, at equal settings, for each precision; float16 within 0.002 of
/// float32, 8 bits within 0.02.
#[test]
fn real_data_recall_at_each_precision() {
    let Some(dir) = shared_data() else {
        return;
    };
    let base: Vec<Vec<f32>> = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes);
    let queries: Vec<Vec<f32>> = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes);
    let truth: Vec<Vec<i32>> = read_vecs(&dir.join("groundtruth.ivecs"), i32::from_le_bytes);
    let queries = &queries[..300];
    for (name, base_config) in [
        ("ivf_flat", IndexConfig::ivf_flat(384)),
        ("ivf_sq8", IndexConfig::ivf_sq8(384)),
    ] {
        let mut recalls = Vec::new();
        for precision in PRECISIONS {
            let index = Database::in_memory()
                .create_index(
                    "r",
                    &IndexKey::generate(),
                    base_config.clone().storage_precision(precision),
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
                .map(|q| Query::new(q.clone()).n_probes(32))
                .collect();
            let mut found = 0;
            for (hits, t) in index.query_batch(&qs).unwrap().iter().zip(&truth) {
                let want: HashSet<String> = t[..10].iter().map(ToString::to_string).collect();
                found += hits.iter().filter(|h| want.contains(&h.id)).count();
            }
            recalls.push(found as f64 / (10 * qs.len()) as f64);
        }
        println!(
            "{name}: recall@10 float32 {:.4}, float16 {:.4}, int8 {:.4}",
            recalls[0], recalls[1], recalls[2]
        );
        assert!(recalls[1] >= recalls[0] - 0.002, "{recalls:?}");
        assert!(recalls[2] >= recalls[0] - 0.02, "{recalls:?}");
    }
}
