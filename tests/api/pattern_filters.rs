//! `$regex` and `$contains` filters answer as a brute-force evaluator of their documented
//! meaning, over random documents (Unicode, anchors, classes, arrays, arrays of objects,
//! missing fields, other types), in vector queries with and without a pattern dictionary
//! (the same rows either way) and in `query_metadata`; hostile patterns are refused or
//! answered.

use std::collections::BTreeSet;

use ciphervec::{
    Database, EncryptedIndex, Error, IndexConfig, IndexKey, Item, MetadataQuery, MetadataSchema,
    Query,
};
use serde_json::{Value, json};

use super::common::*;

const WORDS: [&str; 14] = [
    "INV-2291",
    "INV-3000",
    "inv-2001",
    "red",
    "redder",
    "Straße",
    "straße",
    "日本語",
    "ÆØÅ é",
    "Ωmega λ",
    "",
    "a.c",
    "x|y",
    "blue red",
];

fn word(rng: &mut Rng) -> Value {
    json!(WORDS[rng.below(WORDS.len())])
}

/// A value of any shape a field may hold.
fn value(rng: &mut Rng) -> Option<Value> {
    match rng.below(8) {
        0 => None,
        1 | 2 => Some(word(rng)),
        3 => Some(Value::Array((0..rng.below(4)).map(|_| word(rng)).collect())),
        4 => Some(json!([word(rng), rng.below(3), [word(rng)]])),
        5 => Some(json!(rng.below(3))),
        6 => Some(json!(true)),
        _ => Some(json!({"k": word(rng)})),
    }
}

fn document(rng: &mut Rng) -> Value {
    let mut doc = serde_json::Map::new();
    for field in ["t", "tags"] {
        if let Some(v) = value(rng) {
            doc.insert(field.to_owned(), v);
        }
    }
    // `o.k`: through an object, an array of objects, or absent.
    match rng.below(3) {
        0 => {
            doc.insert("o".to_owned(), json!({"k": word(rng)}));
        }
        1 => {
            doc.insert("o".to_owned(), json!([{"k": word(rng)}, {"k": word(rng)}]));
        }
        _ => {}
    }
    Value::Object(doc)
}

const PATTERNS: [&str; 16] = [
    "^INV-2\\d{3}$",
    "INV",
    "(?i)^inv",
    "^red$",
    "\\bred\\b",
    "[a-c]\\.c",
    "a.c",
    "^$",
    "\\p{Greek}",
    "straße",
    "(?i)STRASSE|straße",
    "日本",
    "^[ÆØÅ]",
    "é$",
    "x\\|y",
    "(a+)+$",
];

const CONTAINED: [&str; 8] = ["red", "ed", "", "日", "Straße", "INV-3000", "λ", "blue red"];

/// A random `$regex` or `$contains` condition, alone or combined.
fn condition(rng: &mut Rng) -> Value {
    let path = ["t", "tags", "o.k", "absent"][rng.below(4)];
    match rng.below(6) {
        0 | 1 => json!({path: {"$regex": PATTERNS[rng.below(PATTERNS.len())]}}),
        2 | 3 => json!({path: {"$contains": CONTAINED[rng.below(CONTAINED.len())]}}),
        4 => json!({path: {"$contains": rng.below(3)}}),
        _ => json!({path: {"$not": {"$regex": PATTERNS[rng.below(PATTERNS.len())]}}}),
    }
}

fn filter(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => json!({"$and": [condition(rng), condition(rng)]}),
        1 => json!({"$or": [condition(rng), condition(rng)]}),
        _ => condition(rng),
    }
}

/// The values a dotted path reaches: through objects, and through arrays of objects.
fn reach<'a>(doc: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(doc);
        return;
    };
    match doc {
        Value::Object(m) => {
            if let Some(v) = m.get(*head) {
                reach(v, rest, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| {
            if i.is_object() {
                reach(i, path, out);
            }
        }),
        _ => {}
    }
}

/// The brute-force evaluator: `$regex` holds when a string reached (or a string element of
/// an array reached) matches; `$contains` when a string reached holds the operand as a
/// substring, or an array reached holds it as an element.
fn oracle(filter: &Value, doc: &Value) -> bool {
    let (key, operand) = filter.as_object().unwrap().iter().next().unwrap();
    match key.as_str() {
        "$and" => operand.as_array().unwrap().iter().all(|f| oracle(f, doc)),
        "$or" => operand.as_array().unwrap().iter().any(|f| oracle(f, doc)),
        path => {
            let path: Vec<&str> = path.split('.').collect();
            let mut values = Vec::new();
            reach(doc, &path, &mut values);
            condition_holds(operand, &values)
        }
    }
}

fn condition_holds(cond: &Value, values: &[&Value]) -> bool {
    let (op, operand) = cond.as_object().unwrap().iter().next().unwrap();
    match op.as_str() {
        "$regex" => {
            let re = regex::Regex::new(operand.as_str().unwrap()).unwrap();
            let test = |v: &Value| v.as_str().is_some_and(|s| re.is_match(s));
            values
                .iter()
                .any(|v| test(v) || v.as_array().is_some_and(|a| a.iter().any(test)))
        }
        "$contains" => values.iter().any(|v| match v {
            Value::String(s) => operand.as_str().is_some_and(|o| s.contains(o)),
            Value::Array(a) => a.contains(operand),
            _ => false,
        }),
        "$not" => !condition_holds(operand, values),
        other => panic!("{other}"),
    }
}

fn pattern_schema() -> MetadataSchema {
    MetadataSchema::from_json(&json!({
        "t": {"pattern": true},
        "tags": {"pattern": true},
        "o": {"pattern": true},
        "absent": {"pattern": true},
    }))
    .unwrap()
}

fn filled(config: IndexConfig, docs: &[Value], vectors: &[Vec<f32>]) -> EncryptedIndex {
    let index = Database::in_memory()
        .create_index("p", &IndexKey::generate(), config)
        .unwrap();
    index
        .upsert(
            docs.iter().zip(vectors).enumerate().map(|(i, (d, v))| {
                Item::new(format!("d{i:04}"), v.clone()).with_metadata(d.clone())
            }),
        )
        .unwrap();
    index
}

fn ids_of_vector_query(index: &EncryptedIndex, filter: &Value, q: &[f32], n: usize) -> Vec<String> {
    let hits = index
        .query(&Query::new(q.to_vec()).top_k(n).filter(filter.clone()))
        .unwrap();
    let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

#[test]
fn regex_and_contains_equal_a_brute_force_evaluator() {
    let mut rng = Rng::new(41);
    let n = 600;
    let docs: Vec<Value> = (0..n).map(|_| document(&mut rng)).collect();
    let vectors = clustered(&mut rng, n, 4, 3);
    let plain = filled(IndexConfig::ivf_flat(4), &docs, &vectors);
    let patterned = filled(
        IndexConfig::ivf_flat(4).metadata_schema(pattern_schema()),
        &docs,
        &vectors,
    );
    let trained = filled(
        IndexConfig::ivf_sq8(4).metadata_schema(pattern_schema()),
        &docs,
        &vectors,
    );
    trained.train().unwrap();
    let mut nonempty = 0;
    for round in 0..300 {
        let f = filter(&mut rng);
        let want: Vec<String> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| oracle(&f, d))
            .map(|(i, _)| format!("d{i:04}"))
            .collect();
        nonempty += usize::from(!want.is_empty());
        let q = &vectors[round % n];
        // Every match, nearest first: exact on the untrained indexes, and on the trained one
        // with every list probed.
        for index in [&plain, &patterned] {
            assert_eq!(ids_of_vector_query(index, &f, q, n), want, "{f}");
        }
        let all_lists = Query::new(q.clone())
            .top_k(n)
            .n_probes(1000)
            .filter(f.clone());
        let mut got: Vec<String> = trained
            .query(&all_lists)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        got.sort();
        assert_eq!(got, want, "{f} (trained)");
        // A listing returns them in id order, on the index whose fields have a pattern
        // dictionary.
        for index in [&patterned, &trained] {
            let listed: Vec<String> = index
                .query_metadata(&MetadataQuery::new().filter(f.clone()))
                .unwrap()
                .into_iter()
                .map(|h| {
                    assert_eq!(h.score, None);
                    h.id
                })
                .collect();
            assert_eq!(listed, want, "{f} (listing)");
        }
    }
    assert!(
        nonempty > 150,
        "too few filters matched anything: {nonempty}"
    );
}

/// The dictionary follows every write: replaced and deleted items leave it, a reopened
/// index rebuilds it from the sealed metadata.
#[test]
fn pattern_dictionary_follows_writes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(42);
    let mut docs: Vec<Value> = (0..300).map(|_| document(&mut rng)).collect();
    let vectors = clustered(&mut rng, docs.len(), 4, 3);
    let config = IndexConfig::ivf_flat(4).metadata_schema(pattern_schema());
    let db = Database::open(dir.path()).unwrap();
    let index = db.create_index("p", &key, config).unwrap();
    let item = |i: usize, d: &Value| {
        Item::new(format!("d{i:04}"), vectors[i].clone()).with_metadata(d.clone())
    };
    index
        .upsert(docs.iter().enumerate().map(|(i, d)| item(i, d)))
        .unwrap();
    // Replace a third, delete a tenth.
    for i in (0..docs.len()).step_by(3) {
        docs[i] = document(&mut rng);
    }
    index
        .upsert((0..docs.len()).step_by(3).map(|i| item(i, &docs[i])))
        .unwrap();
    let deleted: Vec<String> = (0..docs.len())
        .step_by(10)
        .map(|i| format!("d{i:04}"))
        .collect();
    let refs: Vec<&str> = deleted.iter().map(String::as_str).collect();
    index.delete(&refs).unwrap();
    let live = |i: usize| !i.is_multiple_of(10);
    let check = |index: &EncryptedIndex, rng: &mut Rng| {
        for _ in 0..80 {
            let f = filter(rng);
            let want: Vec<String> = (0..docs.len())
                .filter(|&i| live(i) && oracle(&f, &docs[i]))
                .map(|i| format!("d{i:04}"))
                .collect();
            let got: Vec<String> = index
                .query_metadata(&MetadataQuery::new().filter(f.clone()))
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(got, want, "{f}");
        }
    };
    check(&index, &mut rng);
    index.compact().unwrap();
    check(&index, &mut rng);
    drop(index);
    let reopened = Database::open(dir.path())
        .unwrap()
        .open_index("p", &key)
        .unwrap();
    assert_eq!(reopened.config().schema(), &pattern_schema());
    check(&reopened, &mut rng);
}

#[test]
fn hostile_patterns_are_refused_or_answered() {
    let index = filled(
        IndexConfig::ivf_flat(2).metadata_schema(pattern_schema()),
        &[
            json!({"t": format!("{}b", "a".repeat(10_000))}),
            json!({"t": "a".repeat(10_000)}),
        ],
        &[vec![1.0, 0.0], vec![0.0, 1.0]],
    );
    // Exponential for a backtracking engine; linear here.
    let catastrophic = json!({"t": {"$regex": "(a+)+$"}});
    let listed = index
        .query_metadata(&MetadataQuery::new().filter(catastrophic.clone()))
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        ["d0001"],
        "only the string of a's ends in a run of a's"
    );
    let anchored = json!({"t": {"$regex": "^(a+)+$"}});
    let hits = index
        .query(&Query::new(vec![1.0, 0.0]).filter(anchored.clone()))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "d0001");
    // Over the limits, or not a pattern at all: InvalidFilter, in both kinds of query.
    for bad in [
        json!({"t": {"$regex": "a".repeat(5000)}}),
        json!({"t": {"$regex": "\\w{5000}"}}),
        json!({"t": {"$regex": format!("{}a{}", "(".repeat(100), ")".repeat(100))}}),
        json!({"t": {"$regex": "(unclosed"}}),
        json!({"t": {"$regex": "(?<=look)behind"}}),
        json!({"t": {"$regex": 7}}),
    ] {
        assert!(
            matches!(
                index.query_metadata(&MetadataQuery::new().filter(bad.clone())),
                Err(Error::InvalidFilter { .. })
            ),
            "{bad:.80}"
        );
        assert!(
            matches!(
                index.query(&Query::new(vec![1.0, 0.0]).filter(bad.clone())),
                Err(Error::InvalidFilter { .. })
            ),
            "{bad:.80}"
        );
    }
    assert_eq!(index.len(), 2);
}

/// Vector queries give the same hits on an index with a schema (pattern dictionaries,
/// fields left out of the indexes) as on one without: the schema only decides how their
/// filters are evaluated.
#[test]
fn schema_changes_how_not_what_vector_queries_match() {
    let mut rng = Rng::new(43);
    let n = 400;
    let docs: Vec<Value> = (0..n)
        .map(|i| {
            let mut d = document(&mut rng);
            d["n"] = json!(i % 17);
            d["team"] = json!(["billing", "sales", "ops"][i % 3]);
            d
        })
        .collect();
    let vectors = clustered(&mut rng, n, 4, 3);
    let schema = MetadataSchema::from_json(&json!({
        "t": {"pattern": true},
        "tags": {"filterable": false},
        "n": {"filterable": false},
        "team": {"pattern": true},
    }))
    .unwrap();
    let with = filled(
        IndexConfig::ivf_flat(4).metadata_schema(schema),
        &docs,
        &vectors,
    );
    let without = filled(IndexConfig::ivf_flat(4), &docs, &vectors);
    for _ in 0..100 {
        let f = match rng.below(3) {
            0 => filter(&mut rng),
            1 => json!({"n": {"$gte": rng.below(17)}, "team": "billing"}),
            _ => json!({"$or": [{"tags": {"$contains": "red"}}, {"n": rng.below(17)}]}),
        };
        let q = &vectors[rng.below(n)];
        for k in [5, n] {
            let a = with
                .query(&Query::new(q.clone()).top_k(k).filter(f.clone()))
                .unwrap();
            let b = without
                .query(&Query::new(q.clone()).top_k(k).filter(f.clone()))
                .unwrap();
            let ids = |h: &[ciphervec::Hit]| h.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&a), ids(&b), "{f}");
        }
    }
    let ids: BTreeSet<String> = with.list_ids().unwrap().into_iter().collect();
    assert_eq!(ids.len(), n);
}
