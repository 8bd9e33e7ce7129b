//! Equal distances rank alike in every process: items with identical vectors (duplicate
//! texts give identical embeddings) come back in the same order from the writer that
//! inserted them, after a reopen, compaction or data-key rotation, from a read-only handle,
//! and with every vector in memory or only codes, whatever order the items were inserted, deleted and
//! re-inserted in. Each path is checked against the writer's answers, and every hit's
//! distance against the exact one.

use ciphervec::{Database, DatabaseOptions, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

use super::common::*;

/// One stored item: id, vector and the group of copies it belongs to.
#[derive(Clone)]
struct Row {
    id: String,
    vector: Vec<f32>,
    group: usize,
}

impl Row {
    fn item(&self) -> Item {
        Item::new(self.id.clone(), self.vector.clone())
            .with_metadata(json!({"group": self.group, "even": self.group.is_multiple_of(2)}))
    }
}

/// `groups` distinct vectors, each stored under `copies` ids, in a shuffled order.
fn duplicated(rng: &mut Rng, groups: usize, copies: usize, dim: usize) -> Vec<Row> {
    let base = clustered(rng, groups, dim, 8);
    let mut rows: Vec<Row> = (0..groups * copies)
        .map(|i| Row {
            id: format!("dup-{i}"),
            vector: base[i % groups].clone(),
            group: i % groups,
        })
        .collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i + 1));
    }
    rows
}

type Answers = Vec<Vec<(String, f32)>>;

fn answers(index: &ciphervec::EncryptedIndex, queries: &[Query]) -> Answers {
    let one_by_one: Answers = queries
        .iter()
        .map(|q| {
            index
                .query(q)
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.distance))
                .collect()
        })
        .collect();
    let batch: Answers = index
        .query_batch(queries)
        .unwrap()
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| (h.id, h.distance)).collect())
        .collect();
    assert_eq!(one_by_one, batch, "query_batch differs from query");
    one_by_one
}

#[test]
fn identical_vectors_rank_alike_after_reopen_compaction_and_in_readers() {
    let dim = 16;
    let configs = [
        ("flat", IndexConfig::ivf_flat(dim)),
        ("sq8", IndexConfig::ivf_sq8(dim)),
        ("pq", IndexConfig::ivf_pq(dim, dim / 4)),
    ];
    for (name, config) in configs {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        let mut rng = Rng::new(77);
        let rows = duplicated(&mut rng, 300, 4, dim);
        // Queries at stored vectors (every copy ties at distance 0) with a top_k that cuts
        // through a group of copies; filtered ones (scan and pre-filter).
        let at: Vec<&Row> = (0..40).map(|i| &rows[i * 37 % rows.len()]).collect();
        let queries: Vec<Query> = at
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let q = Query::new(r.vector.clone()).top_k(6).n_probes(4);
                match i % 5 {
                    3 => q.filter(json!({"even": true})),
                    4 => q.filter(json!({"group": r.group})).top_k(3),
                    _ => q,
                }
            })
            .collect();
        let db =
            Database::open_with(dir.path(), DatabaseOptions::default().auto_compact(None)).unwrap();
        let index = db.create_index("t", &key, config).unwrap();
        for chunk in rows.chunks(200) {
            index.upsert(chunk.iter().map(Row::item)).unwrap();
        }
        index.train().unwrap();
        // Deletes and re-inserts move items to other slots in this process only.
        let moved: Vec<&Row> = rows.iter().step_by(5).collect();
        let moved_ids: Vec<&str> = moved.iter().map(|r| r.id.as_str()).collect();
        index.delete(&moved_ids).unwrap();
        index.upsert(moved.iter().rev().map(|r| r.item())).unwrap();
        let writer = answers(&index, &queries);
        // Every hit at its true distance, and ties really occur in the answers.
        let mut tied = 0;
        for (q, hits) in at.iter().zip(&writer) {
            for w in hits.windows(2) {
                tied += usize::from(w[0].1 == w[1].1);
            }
            for (id, d) in hits {
                let row = rows.iter().find(|r| &r.id == id).unwrap();
                let want = distance(ciphervec::Metric::Euclidean, &q.vector, &row.vector);
                assert!(
                    (d - want).abs() <= 1e-3 * want.max(1.0),
                    "{name}: {d} vs {want}"
                );
            }
        }
        assert!(tied > 20, "{name}: only {tied} ties");

        let reader = Database::open(dir.path())
            .unwrap()
            .open_index_read_only("t", &key)
            .unwrap();
        assert_eq!(
            answers(&reader, &queries),
            writer,
            "{name}: read-only handle"
        );
        drop(reader);
        index.compact().unwrap();
        assert_eq!(
            answers(&index, &queries),
            writer,
            "{name}: after compaction"
        );
        // A new data key gives every item a new token; ties keep their order.
        index.rotate_data_key().unwrap();
        assert_eq!(answers(&index, &queries), writer, "{name}: after rotation");
        drop(index);
        drop(db);
        for options in [
            DatabaseOptions::default(),
            DatabaseOptions::default().cache_budget(0),
        ] {
            let reopened = Database::open_with(dir.path(), options)
                .unwrap()
                .open_index("t", &key)
                .unwrap();
            assert_eq!(answers(&reopened, &queries), writer, "{name}: reopened");
        }
    }
}
