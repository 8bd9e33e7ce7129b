//! Indexes written by earlier versions open and answer the same, read-only and for writing:
//! one fixture per released format under `tests/data/format-v*/` (written by
//! `examples/format_fixture.rs` of that version, with its keys and its answers).

use std::path::{Path, PathBuf};

use ciphervec::{Database, EncryptedIndex, Include, IndexKey, Item, Query};
use serde_json::{Value, json};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("format-v"))
        })
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no format fixture under {}",
        root.display()
    );
    dirs
}

/// A copy of the fixture's database: opening for writing may roll forward or upgrade, and
/// the committed fixture must stay as it was written.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

fn check_hits(what: &str, got: &[ciphervec::Hit], want: &Value) {
    let want = want.as_array().unwrap();
    let got_ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    let want_ids: Vec<&str> = want.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, want_ids, "{what}: ids");
    for (g, w) in got.iter().zip(want) {
        let d = w["distance"].as_f64().unwrap();
        assert!(
            close(f64::from(g.distance), d),
            "{what}: {} distance {} != {d}",
            g.id,
            g.distance
        );
    }
}

fn query_all(index: &EncryptedIndex, q: Query) -> Vec<ciphervec::Hit> {
    index
        .query(&q.n_probes(index.n_lists().max(1)).rerank(100))
        .unwrap()
}

/// Everything the fixture recorded for one index, asked again.
fn check_answers(name: &str, index: &EncryptedIndex, queries: &[Vec<f32>], want: &Value) {
    assert_eq!(
        index.len(),
        want["len"].as_u64().unwrap() as usize,
        "{name}"
    );
    assert_eq!(index.is_trained(), want["trained"].as_bool().unwrap());
    let mut ids = index.list_ids().unwrap();
    ids.sort();
    let want_ids: Vec<&str> = want["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, want_ids, "{name}: ids");
    let filter = json!({"team": {"$in": ["billing", "sales"]}, "n": {"$lt": 200}});
    for (i, q) in queries.iter().enumerate() {
        let hits = query_all(index, Query::new(q.clone()).top_k(10));
        check_hits(&format!("{name} q{i}"), &hits, &want["vector"][i]);
        let hits = query_all(
            index,
            Query::new(q.clone()).top_k(10).filter(filter.clone()),
        );
        check_hits(
            &format!("{name} filtered q{i}"),
            &hits,
            &want["filtered"][i],
        );
    }
    if let Some(text) = want["text"].as_array() {
        // Text only: BM25 over the contents (the hybrid answer of the fixture is kept for
        // reference; its fusion rule is a query option, not the format).
        let hits = query_all(index, Query::text_only("overdue refund").top_k(10));
        check_hits(&format!("{name} text"), &hits, &text[0]);
        for (g, w) in hits.iter().zip(text[0].as_array().unwrap()) {
            let s = w["score"].as_f64().unwrap();
            assert!(close(f64::from(g.score.unwrap()), s), "{name} text score");
        }
    }
    let records = want["records"].as_array().unwrap();
    let some: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let got = index.get(&some, Include::ALL).unwrap();
    assert_eq!(got.len(), records.len(), "{name}: get");
    for (g, w) in got.iter().zip(records) {
        assert_eq!(g.id, w["id"].as_str().unwrap());
        assert_eq!(g.metadata.as_ref(), Some(&w["metadata"]), "{name} {}", g.id);
        let contents = String::from_utf8(g.contents.clone().unwrap()).unwrap();
        assert_eq!(contents, w["contents"].as_str().unwrap());
        let v: Vec<f32> = serde_json::from_value(w["vector"].clone()).unwrap();
        assert_eq!(g.vector.as_ref(), Some(&v), "{name} {} vector", g.id);
    }
}

fn key_of(want: &Value) -> IndexKey {
    IndexKey::from_hex(want["key_hex"].as_str().unwrap()).unwrap()
}

fn load(dir: &Path) -> (Vec<Vec<f32>>, serde_json::Map<String, Value>) {
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let queries = serde_json::from_value(fixture["queries"].clone()).unwrap();
    let indexes = fixture["indexes"].as_object().unwrap().clone();
    (queries, indexes)
}

#[test]
fn every_fixture_opens_read_only_with_the_same_answers() {
    for dir in fixture_dirs() {
        let (queries, indexes) = load(&dir);
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir.join("db"), tmp.path());
        let db = Database::open(tmp.path()).unwrap();
        let mut names = db.list_indexes().unwrap();
        names.sort();
        let mut want_names: Vec<&String> = indexes.keys().collect();
        want_names.sort();
        assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
        for (name, want) in &indexes {
            let index = db.open_index_read_only(name, &key_of(want)).unwrap();
            check_answers(name, &index, &queries, want);
            let anchor = want["anchor"].as_str().unwrap().parse().unwrap();
            index.check_anchor(&anchor).unwrap();
            index.verify().unwrap();
        }
    }
}

#[test]
fn every_fixture_opens_for_writing_keeps_its_answers_and_takes_writes() {
    for dir in fixture_dirs() {
        let (queries, indexes) = load(&dir);
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir.join("db"), tmp.path());
        for (name, want) in &indexes {
            let key = key_of(want);
            {
                let db = Database::open(tmp.path()).unwrap();
                let index = db.open_index(name, &key).unwrap();
                check_answers(name, &index, &queries, want);
                // What format 8 added reads as format 7 behaved: no schema, BM25 1.2 and
                // 0.75, vectors as float32; and stays so once upgraded.
                let config = index.config();
                assert_eq!(config.bm25_params(), (1.2, 0.75), "{name}");
                assert_eq!(config.precision(), ciphervec::StoragePrecision::Float32);
                assert_eq!(config.schema(), &ciphervec::MetadataSchema::new());
                // A write, a delete, and maintenance in this version's format.
                let dim = index.config().dimension();
                index
                    .upsert([Item::new("new-item", vec![0.5; dim]).with_contents("new words")])
                    .unwrap();
                assert_eq!(index.len(), want["len"].as_u64().unwrap() as usize + 1);
                assert_eq!(index.delete(&["new-item"]).unwrap(), 1);
                index.compact().unwrap();
                check_answers(name, &index, &queries, want);
            }
            // Reopened after the writes (in whatever format this version writes).
            let db = Database::open(tmp.path()).unwrap();
            let index = db.open_index(name, &key).unwrap();
            check_answers(name, &index, &queries, want);
            index.verify().unwrap();
            let anchor = want["anchor"].as_str().unwrap().parse().unwrap();
            index.check_anchor(&anchor).unwrap();
        }
    }
}
