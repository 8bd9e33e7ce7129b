//! Full-text (BM25) and hybrid search: scores against an independent implementation
//! (`scripts/bm25_reference.py` wrote `tests/data/bm25_reference.json`), fusion against a
//! reference model, the text index against one rebuilt from the live items after every kind
//! of write, and no term in any file.

use std::collections::HashMap;

use ciphervec::{Database, Error, Hit, Include, IndexConfig, IndexKey, Item, Query};
use serde_json::{Value, json};

use super::common::*;

struct Reference {
    docs: Vec<String>,
    queries: Vec<String>,
    /// Per query: (doc number, score), best first.
    expected: Vec<Vec<(usize, f64)>>,
}

fn reference() -> Reference {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bm25_reference.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let expected = v["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            q.as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
                .collect()
        })
        .collect();
    Reference {
        docs: strings("docs"),
        queries: strings("queries"),
        expected,
    }
}

fn doc_id(i: usize) -> String {
    format!("doc-{i}")
}

/// Items whose contents are `docs`, with random 8-dimensional vectors and a parity tag.
fn text_items(docs: &[String], seed: u64) -> (Vec<Vec<f32>>, Vec<Item>) {
    let mut rng = Rng::new(seed);
    let vectors = clustered(&mut rng, docs.len(), 8, 5);
    let items = docs
        .iter()
        .zip(&vectors)
        .enumerate()
        .map(|(i, (d, v))| {
            Item::new(doc_id(i), v.clone())
                .with_contents(d.clone())
                .with_metadata(json!({"even": i % 2 == 0}))
        })
        .collect();
    (vectors, items)
}

fn memory_index(config: IndexConfig) -> ciphervec::EncryptedIndex {
    Database::in_memory()
        .create_index("t", &IndexKey::generate(), config)
        .unwrap()
}

/// Scores equal within a relative 1e-4, ids equal except among (near-)exact ties.
fn assert_scores(hits: &[Hit], want: &[(usize, f64)], what: &str) {
    assert_eq!(hits.len(), want.len(), "{what}: number of hits");
    for (pos, (h, &(i, s))) in hits.iter().zip(want).enumerate() {
        let score = f64::from(h.score.expect("text hits carry a score"));
        assert!(
            (score - s).abs() <= 1e-4 * s.abs().max(1e-6),
            "{what}: hit {pos} score {score} vs {s}"
        );
        assert_eq!(h.distance, -h.score.unwrap(), "{what}: distance is -score");
        if h.id != doc_id(i) {
            let tied = want
                .iter()
                .any(|&(j, t)| j != i && (t - s).abs() <= 1e-6 * s.abs());
            assert!(
                tied,
                "{what}: hit {pos} is {} instead of {}",
                h.id,
                doc_id(i)
            );
        }
    }
}

#[test]
fn bm25_scores_equal_an_independent_implementation() {
    let r = reference();
    assert!(r.docs.len() >= 1000 && r.queries.len() >= 100);
    for config in [IndexConfig::ivf_flat(8), IndexConfig::ivf_pq(8, 2)] {
        let index = memory_index(config.full_text(true));
        let (_, items) = text_items(&r.docs, 1);
        for chunk in items.chunks(300) {
            index.upsert(chunk.to_vec()).unwrap();
        }
        index.train().unwrap();
        for (q, want) in r.queries.iter().zip(&r.expected) {
            let hits = index
                .query(&Query::text_only(q).top_k(want.len().max(1)))
                .unwrap();
            assert_scores(&hits, want, q);
        }
    }
}

#[test]
fn text_filters_keep_global_statistics() {
    let r = reference();
    let index = memory_index(IndexConfig::ivf_flat(8).full_text(true));
    index.upsert(text_items(&r.docs, 2).1).unwrap();
    for (q, want) in r.queries.iter().zip(&r.expected).take(40) {
        let even: Vec<(usize, f64)> = want.iter().copied().filter(|(i, _)| i % 2 == 0).collect();
        let hits = index
            .query(
                &Query::text_only(q)
                    .top_k(50)
                    .filter(json!({"even": true}))
                    .include(Include::METADATA | Include::CONTENTS),
            )
            .unwrap();
        // The reference keeps its best 50; compare the part both hold.
        let n = hits.len().min(even.len());
        assert_scores(&hits[..n], &even[..n], q);
        for h in &hits {
            assert_eq!(h.metadata.as_ref().unwrap()["even"], json!(true));
            let i: usize = h.id[4..].parse().unwrap();
            assert_eq!(h.contents.as_deref(), Some(r.docs[i].as_bytes()));
        }
    }
}

/// Weighted reciprocal rank fusion computed from the two rankings, as the API documents it:
/// `alpha / (60 + vector rank) + (1 - alpha) / (60 + text rank)`.
fn rrf_model(vector: &[(usize, f32)], text: &[Hit], k: usize, alpha: f64) -> Vec<(String, f64)> {
    let mut fused: HashMap<String, (f64, usize, usize)> = HashMap::new();
    for (rank, (i, _)) in vector.iter().enumerate() {
        let e = fused
            .entry(doc_id(*i))
            .or_insert((0.0, usize::MAX, usize::MAX));
        e.0 += alpha / (60.0 + rank as f64 + 1.0);
        e.1 = rank;
    }
    for (rank, h) in text.iter().enumerate() {
        let e = fused
            .entry(h.id.clone())
            .or_insert((0.0, usize::MAX, usize::MAX));
        e.0 += (1.0 - alpha) / (60.0 + rank as f64 + 1.0);
        e.2 = rank;
    }
    let mut out: Vec<(String, (f64, usize, usize))> = fused.into_iter().collect();
    out.sort_by(|a, b| {
        b.1.0
            .total_cmp(&a.1.0)
            .then(a.1.1.cmp(&b.1.1))
            .then(a.1.2.cmp(&b.1.2))
    });
    out.into_iter()
        .take(k)
        .map(|(id, (s, _, _))| (id, s))
        .collect()
}

#[test]
fn hybrid_queries_fuse_the_two_rankings_by_reciprocal_rank() {
    let r = reference();
    let index = memory_index(IndexConfig::ivf_flat(8).full_text(true));
    let (vectors, items) = text_items(&r.docs, 3);
    index.upsert(items).unwrap();
    // Untrained: the vector ranking is exact, so the model can use brute force.
    for (qi, words) in r.queries.iter().enumerate().take(30) {
        let v = vectors[qi * 31 % vectors.len()].clone();
        // Defaults: depth window_mult (3) * top_k, alpha 0.5; then other settings.
        let (window, alpha, top_k) = [(3, 0.5, 10), (7, 0.8, 5), (1, 0.3, 12)][qi % 3];
        let depth = window * top_k;
        let exact = brute_force(ciphervec::Metric::Euclidean, &vectors, &v, depth);
        let text = index.query(&Query::text_only(words).top_k(depth)).unwrap();
        let want = rrf_model(&exact, &text, top_k, alpha);
        let mut query = Query::new(v.clone()).text(words).top_k(top_k);
        if qi % 3 != 0 {
            query = query.window_mult(window).hybrid_alpha(alpha as f32);
        }
        let hits = index.query(&query).unwrap();
        assert_eq!(hits.len(), want.len());
        for (h, (id, s)) in hits.iter().zip(&want) {
            assert!((f64::from(h.score.unwrap()) - s).abs() < 1e-6, "{words}");
            // Equal fused scores may come in either order only if ranks tie too; here the
            // model breaks ties as the index does, so ids agree.
            assert_eq!(&h.id, id, "{words}");
            let i: usize = h.id[4..].parse().unwrap();
            let d = distance(ciphervec::Metric::Euclidean, &v, &vectors[i]);
            assert!(
                (h.distance - d).abs() <= 1e-3 * d.max(1.0),
                "vector distance"
            );
        }
    }
}

#[test]
fn hybrid_alpha_of_one_or_zero_is_one_ranking_alone() {
    let r = reference();
    let index = memory_index(IndexConfig::ivf_flat(8).full_text(true));
    let (vectors, items) = text_items(&r.docs, 4);
    index.upsert(items).unwrap();
    let words = &r.queries[0];
    let v = vectors[7].clone();
    // alpha 1: the vector ranking alone; alpha 0: the text ranking first.
    let by_vector = index.query(&Query::new(v.clone())).unwrap();
    let only_vector = index
        .query(&Query::new(v.clone()).text(words).hybrid_alpha(1.0))
        .unwrap();
    let ids = |h: &[Hit]| h.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&by_vector), ids(&only_vector));
    for (rank, (h, v)) in only_vector.iter().zip(&by_vector).enumerate() {
        assert_eq!(h.score, Some(1.0 / (60.0 + rank as f32 + 1.0)));
        assert_eq!(h.distance, v.distance);
    }
    let by_text = index.query(&Query::text_only(words)).unwrap();
    let only_text = index
        .query(&Query::new(v).text(words).hybrid_alpha(0.0))
        .unwrap();
    let n = by_text.len().min(10);
    assert_eq!(ids(&by_text[..n]), ids(&only_text[..n]));
    // The hits found by words alone carry their exact vector distance.
    for h in &only_text {
        let i: usize = h.id[4..].parse().unwrap();
        let d = distance(ciphervec::Metric::Euclidean, &vectors[7], &vectors[i]);
        assert!((h.distance - d).abs() <= 1e-3 * d.max(1.0));
    }
}

/// Every query of the reference against `index` equals the same against a fresh index holding
/// only `live` (doc numbers).
fn assert_equals_rebuilt(index: &ciphervec::EncryptedIndex, r: &Reference, live: &[usize]) {
    let fresh = memory_index(IndexConfig::ivf_flat(8).full_text(true));
    let (_, items) = text_items(&r.docs, 5);
    fresh
        .upsert(live.iter().map(|&i| items[i].clone()))
        .unwrap();
    assert_eq!(index.len(), live.len());
    for q in &r.queries {
        let got = index.query(&Query::text_only(q).top_k(100)).unwrap();
        let want = fresh.query(&Query::text_only(q).top_k(100)).unwrap();
        let pairs = |h: &[Hit]| {
            h.iter()
                .map(|h| (h.id.clone(), h.score.unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&got), pairs(&want), "{q}");
    }
}

#[test]
fn the_text_index_follows_every_write_compaction_rotation_and_reopen() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let (_, items) = text_items(&r.docs, 5);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("t", &key, IndexConfig::ivf_sq8(8).full_text(true))
        .unwrap();
    index.upsert(items[..600].to_vec()).unwrap();
    index.train().unwrap();
    index.upsert(items[600..].to_vec()).unwrap();
    // Replace some contents by others' (upsert semantics), delete others.
    let mut live: Vec<usize> = (0..r.docs.len()).collect();
    let deleted: Vec<String> = (0..r.docs.len())
        .filter(|i| i % 7 == 3)
        .map(doc_id)
        .collect();
    let refs: Vec<&str> = deleted.iter().map(String::as_str).collect();
    assert_eq!(index.delete(&refs).unwrap(), deleted.len());
    live.retain(|i| i % 7 != 3);
    assert_equals_rebuilt(&index, &r, &live);
    index.compact().unwrap();
    assert_equals_rebuilt(&index, &r, &live);
    index.rotate_data_key().unwrap();
    assert_equals_rebuilt(&index, &r, &live);
    drop(index);
    let new_key = IndexKey::generate();
    db.rotate_keys("t", &key, &new_key).unwrap();
    let index = Database::open(dir.path())
        .unwrap()
        .open_index("t", &new_key)
        .unwrap();
    assert!(index.config().is_full_text());
    assert_equals_rebuilt(&index, &r, &live);
    // An item re-inserted with other contents is found by its new words only.
    index
        .upsert([items[1].clone().with_contents("zebrafinch quokka")])
        .unwrap();
    let hits = index.query(&Query::text_only("quokka")).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, doc_id(1));
}

#[test]
fn full_text_turns_on_in_an_existing_index_and_stays_on() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let (_, items) = text_items(&r.docs, 5);
    let db = Database::open(dir.path()).unwrap();
    let index = db
        .create_index("t", &key, IndexConfig::ivf_flat(8))
        .unwrap();
    index.upsert(items.clone()).unwrap();
    let reader = db.open_index_read_only("t", &key).unwrap();
    assert!(matches!(
        index.query(&Query::text_only("walk")),
        Err(Error::InvalidArgument { .. })
    ));
    index.enable_full_text().unwrap();
    index.enable_full_text().unwrap(); // a second call changes nothing
    assert!(index.config().is_full_text());
    let all: Vec<usize> = (0..r.docs.len()).collect();
    assert_equals_rebuilt(&index, &r, &all);
    // Another handle picks it up with refresh; a reopen keeps it.
    assert!(reader.refresh().unwrap());
    assert!(reader.config().is_full_text());
    assert_equals_rebuilt(&reader, &r, &all);
    drop((index, reader));
    let index = Database::open(dir.path())
        .unwrap()
        .open_index("t", &key)
        .unwrap();
    assert_equals_rebuilt(&index, &r, &all);
}

#[test]
fn non_utf8_contents_are_skipped_and_counted() {
    let index = memory_index(IndexConfig::ivf_flat(2).full_text(true));
    index
        .upsert([
            Item::new("a", vec![1.0, 0.0]).with_contents(vec![0xff, 0xfe, b'x']),
            Item::new("b", vec![0.0, 1.0]).with_contents("x marks the spot"),
            Item::new("c", vec![1.0, 1.0]),
        ])
        .unwrap();
    let (indexed, skipped, _) = ciphervec::internals::full_text_stats(&index).unwrap();
    assert_eq!((indexed, skipped), (1, 1));
    let hits = index.query(&Query::text_only("X")).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "b");
    index.delete(&["a"]).unwrap();
    assert_eq!(ciphervec::internals::full_text_stats(&index).unwrap().1, 0);
}

#[test]
fn bad_text_queries_get_typed_errors() {
    let index = memory_index(IndexConfig::ivf_flat(2).full_text(true));
    index
        .upsert([Item::new("a", vec![1.0, 0.0]).with_contents("alpha beta")])
        .unwrap();
    let invalid = |q: Query| matches!(index.query(&q), Err(Error::InvalidArgument { .. }));
    assert!(invalid(Query::text_only("alpha").bm25(-1.0, 0.75)));
    assert!(invalid(Query::text_only("alpha").bm25(1.2, 1.5)));
    assert!(invalid(Query::text_only("alpha").bm25(f32::NAN, 0.5)));
    assert!(invalid(
        Query::new(vec![1.0, 0.0]).text("a").hybrid_alpha(2.0)
    ));
    assert!(invalid(Query::new(vec![1.0, 0.0]).text("a").rrf_k(-1.0)));
    assert!(invalid(Query::new(vec![1.0, 0.0]).text("a").window_mult(0)));
    assert!(invalid(
        Query::new(vec![1.0, 0.0]).text("a").hybrid_alpha(f32::NAN)
    ));
    assert!(invalid(Query::text_only("alpha").text_fields(&["title"])));
    assert!(invalid(Query::text_only("alpha").text_fields(&[])));
    assert!(invalid(
        Query::text_only("alpha").text_fields(&["contents", "contents"])
    ));
    assert!(invalid(
        Query::text_only("alpha").text_field_weights(&[1.0, 2.0])
    ));
    assert!(invalid(
        Query::text_only("alpha").text_field_weights(&[-1.0])
    ));
    assert!(invalid(Query::text_only("alpha").top_k(0)));
    assert!(invalid(Query::text_only(&"w ".repeat(40_000))));
    assert!(matches!(
        index.query(&Query::new(vec![1.0]).text("alpha")),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        index.query(&Query::text_only("alpha").filter(json!({"$bogus": 1}))),
        Err(Error::InvalidFilter { .. })
    ));
    // Words without a token match nothing; the index is unchanged.
    assert!(
        index
            .query(&Query::text_only("  ,;!  "))
            .unwrap()
            .is_empty()
    );
    assert_eq!(index.query(&Query::text_only("ALPHA")).unwrap().len(), 1);
}

#[test]
fn no_term_reaches_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let canaries: Vec<String> = (0..200).map(|i| format!("xylocanary{i:03}")).collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db
            .create_index("t", &key, IndexConfig::ivf_flat(4).full_text(true))
            .unwrap();
        let mut rng = Rng::new(9);
        let items: Vec<Item> = canaries
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Item::new(format!("i{i}"), (0..4).map(|_| rng.f32()).collect())
                    .with_contents(format!("{w} plain words {w}"))
            })
            .collect();
        index.upsert(items).unwrap();
        index.train().unwrap();
        index.compact().unwrap();
        assert_eq!(
            index.query(&Query::text_only(&canaries[5])).unwrap()[0].id,
            "i5"
        );
    }
    let mut files = 0;
    for e in std::fs::read_dir(dir.path().join("t")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        files += 1;
        for needle in canaries.iter().map(String::as_bytes).chain([&b"plain"[..]]) {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    assert!(files >= 2);
}

/// On the real texts: a rare code added to one document's contents is found first by text
/// alone and within the top 3 by hybrid search, where vector search alone misses it.
#[test]
fn rare_tokens_are_found_by_text_and_hybrid_search() {
    let Some(dir) = shared_data() else { return };
    let base = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes);
    let queries = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes);
    let texts: Vec<String> = std::fs::read_to_string(dir.join("texts.base.tsv"))
        .unwrap()
        .lines()
        .map(|l| l.split_once('\t').unwrap().1.to_owned())
        .collect();
    let n = 20_000;
    let mut rng = Rng::new(11);
    // 100 documents get a code each, appended to their gloss.
    let mut coded: HashMap<usize, String> = HashMap::new();
    while coded.len() < 100 {
        let i = rng.below(n);
        let code = format!("QX{}Z{}", 1000 + coded.len(), rng.below(9000) + 1000);
        coded.entry(i).or_insert(code);
    }
    let index = memory_index(IndexConfig::ivf_flat(384).full_text(true));
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let text = match coded.get(&i) {
                Some(code) => format!("{} (ref {code})", texts[i]),
                None => texts[i].clone(),
            };
            Item::new(i.to_string(), base[i].clone()).with_contents(text)
        })
        .collect();
    for chunk in items.chunks(5000) {
        index.upsert(chunk.to_vec()).unwrap();
    }
    index.train().unwrap();
    let (mut first_by_text, mut top3_hybrid, mut vector_missed) = (0, 0, 0);
    let mut top3_with_common_word = 0;
    for (case, (&doc, code)) in coded.iter().enumerate() {
        let q = queries[case].clone();
        let vector_only = index.query(&Query::new(q.clone())).unwrap();
        if vector_only.iter().any(|h| h.id == doc.to_string()) {
            continue;
        }
        vector_missed += 1;
        let text = index
            .query(&Query::text_only(&code.to_lowercase()))
            .unwrap();
        first_by_text += usize::from(text.first().is_some_and(|h| h.id == doc.to_string()));
        let hybrid = index.query(&Query::new(q.clone()).text(code)).unwrap();
        top3_hybrid += usize::from(hybrid.iter().take(3).any(|h| h.id == doc.to_string()));
        // With a word that 99 other documents share as well, for the record.
        let shared = index
            .query(&Query::new(q).text(&format!("ref {code}")))
            .unwrap();
        top3_with_common_word +=
            usize::from(shared.iter().take(3).any(|h| h.id == doc.to_string()));
    }
    println!(
        "rare tokens: {vector_missed} cases missed by vector search; first by text \
         {first_by_text}, top 3 by hybrid {top3_hybrid} ({top3_with_common_word} with a \
         common word added)"
    );
    assert!(vector_missed >= 90);
    assert_eq!(first_by_text, vector_missed);
    assert_eq!(top3_hybrid, vector_missed);
}
