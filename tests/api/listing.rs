//! `query_metadata` answers as oracles over the decrypted items: filter-only listings equal
//! filtering and sorting what `get` returns; text listings and text queries over several
//! weighted fields equal a direct computation of BM25 (with AND of terms); the schema is
//! enforced in listings only.

use std::collections::{HashMap, HashSet};

use ciphervec::{
    Database, EncryptedIndex, Error, FieldSchema, Include, IndexConfig, IndexKey, Item,
    MetadataHit, MetadataQuery, MetadataSchema, Order, Query,
};
use serde_json::{Value, json};

use super::common::*;

const TEAMS: [&str; 3] = ["billing", "sales", "ops"];

/// Metadata of item `i`: a team (sometimes missing), a `date` that is an integer, a float,
/// a string, an array, null or missing, and a nested number.
fn document(rng: &mut Rng) -> Value {
    let mut d = serde_json::Map::new();
    if rng.below(5) > 0 {
        d.insert("team".into(), json!(TEAMS[rng.below(3)]));
    }
    let date = match rng.below(8) {
        0 => None,
        1 | 2 => Some(json!(rng.below(50))),
        3 => Some(json!(rng.below(50) as f64 + 0.5)),
        4 => Some(json!(format!("2026-{:02}", rng.below(12) + 1))),
        5 => Some(json!([rng.below(5)])),
        6 => Some(Value::Null),
        _ => Some(json!(-(rng.below(20) as i64))),
    };
    if let Some(date) = date {
        d.insert("date".into(), date);
    }
    d.insert("n".into(), json!({"x": rng.below(100)}));
    Value::Object(d)
}

fn index_of(config: IndexConfig, docs: &[Value]) -> EncryptedIndex {
    let index = Database::in_memory()
        .create_index("l", &IndexKey::generate(), config)
        .unwrap();
    let mut rng = Rng::new(7);
    let vectors = clustered(&mut rng, docs.len(), 4, 4);
    index
        .upsert(
            docs.iter()
                .zip(vectors)
                .enumerate()
                .map(|(i, (d, v))| Item::new(format!("i{i:05}"), v).with_metadata(d.clone())),
        )
        .unwrap();
    index
}

/// Every live item's id and metadata, decrypted through `get`.
fn decrypted(index: &EncryptedIndex) -> Vec<(String, Value)> {
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index
        .get(&refs, Include::METADATA)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.metadata.unwrap_or(Value::Null)))
        .collect()
}

/// The order the API documents, written out: numbers by value, then strings by bytes
/// (reversed for descending), then anything else or missing; ties by id.
fn oracle_sort(items: &mut [(String, Value)], field: &str, order: Order) {
    fn class(v: Option<&Value>) -> (u8, f64, String) {
        match v {
            Some(Value::Number(n)) => (0, n.as_f64().unwrap(), String::new()),
            Some(Value::String(s)) => (1, 0.0, s.clone()),
            _ => (2, 0.0, String::new()),
        }
    }
    items.sort_by(|(ia, a), (ib, b)| {
        let (ca, xa, sa) = class(a.pointer(&format!("/{}", field.replace('.', "/"))));
        let (cb, xb, sb) = class(b.pointer(&format!("/{}", field.replace('.', "/"))));
        let by_value = ca
            .cmp(&cb)
            .then(xa.partial_cmp(&xb).unwrap())
            .then(sa.cmp(&sb));
        let by_value = match (order, ca == 2 || cb == 2) {
            (Order::Descending, false) => by_value.reverse(),
            _ => by_value,
        };
        by_value.then(ia.cmp(ib))
    });
}

fn ids(hits: &[MetadataHit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

#[test]
fn filter_only_listings_equal_sorting_the_decrypted_items() {
    let mut rng = Rng::new(1);
    let docs: Vec<Value> = (0..2000).map(|_| document(&mut rng)).collect();
    let untrained = index_of(IndexConfig::ivf_flat(4), &docs);
    let trained = index_of(IndexConfig::ivf_pq(4, 2), &docs);
    trained.train().unwrap();
    // Deletes and replacements after training.
    trained.delete(&["i00003", "i00010", "i01999"]).unwrap();
    trained
        .upsert(
            [Item::new("i00004", vec![1.0; 4]).with_metadata(json!({"team": "ops", "date": 7}))],
        )
        .unwrap();
    type Oracle = fn(&Value) -> bool;
    let filters: [(Option<Value>, Oracle); 8] = [
        (None, |_| true),
        (Some(json!({"team": "billing"})), |m| {
            m.get("team") == Some(&json!("billing"))
        }),
        (
            Some(json!({"team": {"$in": ["sales", "ops"]}, "n.x": {"$lt": 30}})),
            |m| {
                matches!(m.get("team").and_then(Value::as_str), Some("sales" | "ops"))
                    && m.pointer("/n/x")
                        .and_then(Value::as_u64)
                        .is_some_and(|x| x < 30)
            },
        ),
        (Some(json!({"date": {"$gte": 10}})), |m| {
            m.get("date")
                .and_then(Value::as_f64)
                .is_some_and(|d| d >= 10.0)
        }),
        (
            Some(json!({"$or": [{"team": "ops"}, {"date": {"$exists": false}}]})),
            |m| m.get("team") == Some(&json!("ops")) || m.get("date").is_none(),
        ),
        (Some(json!({"team": {"$ne": "billing"}})), |m| {
            m.get("team") != Some(&json!("billing"))
        }),
        (Some(json!({"n.x": 17})), |m| {
            m.pointer("/n/x") == Some(&json!(17))
        }),
        (Some(json!({"team": "nobody"})), |_| false),
    ];
    for index in [&untrained, &trained] {
        let items = decrypted(index);
        for (f, oracle) in &filters {
            let matching: Vec<(String, Value)> =
                items.iter().filter(|(_, m)| oracle(m)).cloned().collect();
            let base = || match f {
                Some(f) => MetadataQuery::new().filter(f.clone()),
                None => MetadataQuery::new(),
            };
            // Id order without order_by.
            let mut by_id: Vec<String> = matching.iter().map(|(id, _)| id.clone()).collect();
            by_id.sort();
            assert_eq!(ids(&index.query_metadata(&base()).unwrap()), by_id, "{f:?}");
            assert_eq!(
                ids(&index.query_metadata(&base().top_k(7)).unwrap()),
                by_id.iter().take(7).cloned().collect::<Vec<_>>()
            );
            for field in ["date", "team", "n.x", "absent"] {
                for order in [Order::Ascending, Order::Descending] {
                    let mut want = matching.clone();
                    oracle_sort(&mut want, field, order);
                    let want: Vec<String> = want.into_iter().map(|(id, _)| id).collect();
                    let got = index
                        .query_metadata(&base().order_by(field, order))
                        .unwrap();
                    assert_eq!(ids(&got), want, "{f:?} by {field} {order:?}");
                    for k in [1, 5, 100] {
                        let got = index
                            .query_metadata(&base().order_by(field, order).top_k(k))
                            .unwrap();
                        let n = k.min(want.len());
                        assert_eq!(ids(&got), want[..n], "{f:?} by {field} {order:?} top {k}");
                    }
                }
            }
        }
    }
}

/// Metadata schema enforced by listings: a filter on a field that is not filterable, or a
/// `$regex`/`$contains` on a field without a pattern dictionary, is `InvalidFilter`; vector
/// queries evaluate the same filters on every candidate.
#[test]
fn listings_enforce_the_schema() {
    let schema = MetadataSchema::new()
        .with_field("title", FieldSchema::PATTERN)
        .with_field("raw", FieldSchema::STORED_ONLY);
    let config = IndexConfig::ivf_flat(2)
        .metadata_schema(schema)
        .text_fields(&["body"]);
    let index = Database::in_memory()
        .create_index("s", &IndexKey::generate(), config)
        .unwrap();
    let docs = [
        json!({"title": "INV-2001", "team": "billing", "raw": "x1", "body": "refund due"}),
        json!({"title": "memo", "team": "sales", "raw": {"deep": "INV"}, "body": "overdue"}),
    ];
    index
        .upsert(
            docs.iter().enumerate().map(|(i, d)| {
                Item::new(format!("{i}"), vec![i as f32, 1.0]).with_metadata(d.clone())
            }),
        )
        .unwrap();
    let refused = |f: Value| {
        matches!(
            index.query_metadata(&MetadataQuery::new().filter(f)),
            Err(Error::InvalidFilter { .. })
        )
    };
    assert!(refused(json!({"team": {"$regex": "^bill"}})));
    assert!(refused(json!({"team": {"$contains": "ill"}})));
    assert!(refused(json!({"raw": "x1"})));
    assert!(refused(json!({"raw.deep": {"$exists": true}})));
    assert!(refused(json!({"body": "overdue"})));
    assert!(refused(json!({"$or": [{"title": "memo"}, {"raw": "x1"}]})));
    assert!(refused(json!({"team": {"$not": {"$regex": "x"}}})));
    // Allowed: patterns on the pattern field, values on filterable fields.
    let listed = |f: Value| {
        ids(&index
            .query_metadata(&MetadataQuery::new().filter(f))
            .unwrap())
    };
    assert_eq!(listed(json!({"title": {"$regex": "^INV-2\\d{3}$"}})), ["0"]);
    assert_eq!(listed(json!({"title": {"$contains": "em"}})), ["1"]);
    assert_eq!(listed(json!({"team": "sales"})), ["1"]);
    // The same filters in a vector query: evaluated, not refused.
    let q = |f: Value| {
        let hits = index.query(&Query::new(vec![0.0, 1.0]).filter(f)).unwrap();
        hits.into_iter().map(|h| h.id).collect::<Vec<_>>()
    };
    assert_eq!(q(json!({"team": {"$regex": "^bill"}})), ["0"]);
    assert_eq!(q(json!({"raw.deep": {"$exists": true}})), ["1"]);
    assert_eq!(q(json!({"body": {"$contains": "over"}})), ["1"]);
    // Other bad listings.
    for bad in [
        MetadataQuery::new().top_k(0),
        MetadataQuery::new().order_by("", Order::Ascending),
        MetadataQuery::new().order_by("a..b", Order::Ascending),
        MetadataQuery::new().text("x").text_fields(&["title"]),
        MetadataQuery::new()
            .text("x")
            .text_field_weights(&[1.0, 1.0]),
    ] {
        assert!(
            matches!(
                index.query_metadata(&bad),
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
    // Schemas that contradict themselves are refused at creation.
    let db = Database::in_memory();
    let key = IndexKey::generate();
    for config in [
        IndexConfig::ivf_flat(2)
            .metadata_schema(MetadataSchema::new().with_field("a", FieldSchema::STORED_ONLY))
            .text_fields(&["a"]),
        IndexConfig::ivf_flat(2)
            .text_fields(&["a"])
            .metadata_schema(MetadataSchema::new().with_field("a", FieldSchema::PATTERN)),
        IndexConfig::ivf_flat(2).text_fields(&["contents"]),
        IndexConfig::ivf_flat(2).bm25(-1.0, 0.5),
        IndexConfig::ivf_flat(2).bm25(1.2, 2.0),
    ] {
        assert!(matches!(
            db.create_index("bad", &key, config),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        MetadataSchema::from_json(&json!({"a": {"pattern": true, "full_text": true}})),
        Err(Error::InvalidArgument { .. })
    ));
}

const VOCABULARY: [&str; 12] = [
    "invoice", "refund", "overdue", "paid", "team", "billing", "late", "notice", "credit", "memo",
    "urgent", "the",
];

fn words(rng: &mut Rng, max: usize) -> String {
    (0..1 + rng.below(max))
        .map(|_| {
            let w = VOCABULARY[rng.below(VOCABULARY.len())];
            // Some capitals and punctuation: the tokenizer lowercases and splits them off.
            if rng.below(6) == 0 {
                format!("{}, ", w.to_uppercase())
            } else {
                format!("{w} ")
            }
        })
        .collect()
}

/// The tokens of a text as the API documents the tokenizer for these ASCII words.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Weighted multi-field BM25 computed directly from the formula: per field `f` with weight
/// `w_f`, over the items that hold text there (`N`, their mean length), a query token `t`
/// (counted as often as it appears) adds `w_f * idf * tf / (tf + k1 * (1 - b + b * dl /
/// avgdl))`, `idf = ln(1 + (N - n + 0.5) / (n + 0.5))`. With `all`, an item must hold every
/// distinct token in a field of nonzero weight. Returns (item, score), best first, ids
/// breaking ties.
fn bm25_reference(
    fields: &[(Vec<Option<Vec<String>>>, f64)],
    query: &str,
    (k1, b): (f64, f64),
    all: bool,
    ids: &[String],
    accept: &dyn Fn(usize) -> bool,
) -> Vec<(String, f64)> {
    let q = tokens(query);
    let distinct: HashSet<&String> = q.iter().collect();
    let mut score: HashMap<usize, f64> = HashMap::new();
    let mut held: HashMap<usize, HashSet<&String>> = HashMap::new();
    for (docs, w) in fields {
        if *w == 0.0 {
            continue;
        }
        let present: Vec<(usize, &Vec<String>)> = docs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .collect();
        let n = present.len() as f64;
        let avgdl = present.iter().map(|(_, d)| d.len()).sum::<usize>() as f64 / n;
        for t in &q {
            let df = present.iter().filter(|(_, d)| d.contains(t)).count() as f64;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for (i, d) in &present {
                let tf = d.iter().filter(|x| *x == t).count() as f64;
                if tf > 0.0 {
                    *score.entry(*i).or_default() +=
                        w * idf * tf / (tf + k1 * (1.0 - b + b * d.len() as f64 / avgdl));
                    held.entry(*i).or_default().insert(t);
                }
            }
        }
    }
    let mut out: Vec<(String, f64)> = score
        .into_iter()
        .filter(|(i, _)| !all || held[i].len() == distinct.len())
        .filter(|(i, _)| accept(*i))
        .map(|(i, s)| (ids[i].clone(), s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn assert_ranked(got: &[(String, f32)], want: &[(String, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of hits");
    for (pos, ((id, s), (wid, w))) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*s) - w).abs() <= 1e-4 * w.abs().max(1e-3),
            "{what}: hit {pos} score {s} vs {w}"
        );
        if id != wid {
            let tied = want
                .iter()
                .any(|(j, t)| j == id && (t - w).abs() <= 1e-5 * w.abs());
            assert!(tied, "{what}: hit {pos} is {id} instead of {wid}");
        }
    }
}

#[test]
fn multi_field_bm25_equals_the_formula_with_weights_and_and() {
    let mut rng = Rng::new(5);
    let n = 800;
    // Per item: contents, title and body (each sometimes absent), a tag to filter by.
    let mut contents = Vec::new();
    let mut titles = Vec::new();
    let mut bodies = Vec::new();
    let mut items = Vec::new();
    let vectors = clustered(&mut rng, n, 4, 4);
    for (i, v) in vectors.iter().enumerate() {
        let c = (rng.below(4) > 0).then(|| words(&mut rng, 12));
        let t = (rng.below(3) > 0).then(|| words(&mut rng, 3));
        // A body is a string or an array of strings (one document of their tokens).
        let body: Option<Vec<String>> = match rng.below(4) {
            0 => None,
            1 => Some(vec![words(&mut rng, 6), words(&mut rng, 6)]),
            _ => Some(vec![words(&mut rng, 20)]),
        };
        let mut meta = json!({"even": i % 2 == 0});
        if let Some(t) = &t {
            meta["title"] = json!(t);
        }
        match &body {
            Some(b) if b.len() == 2 => meta["body"] = json!(b),
            Some(b) => meta["body"] = json!(b[0]),
            None => {}
        }
        let mut item = Item::new(format!("d{i:04}"), v.clone()).with_metadata(meta);
        if let Some(c) = &c {
            item = item.with_contents(c.clone());
        }
        items.push(item);
        contents.push(c.map(|c| tokens(&c)));
        titles.push(t.map(|t| tokens(&t)));
        bodies.push(body.map(|b| tokens(&b.join(" "))));
    }
    let ids: Vec<String> = (0..n).map(|i| format!("d{i:04}")).collect();
    let (k1, b) = (1.5f32, 0.6f32);
    let index = Database::in_memory()
        .create_index(
            "bm",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(4)
                .full_text(true)
                .text_fields(&["title", "body"])
                .bm25(k1, b),
        )
        .unwrap();
    index.upsert(items).unwrap();
    let fields_of = |names: &[&str]| -> Vec<Vec<Option<Vec<String>>>> {
        names
            .iter()
            .map(|f| match *f {
                "contents" => contents.clone(),
                "title" => titles.clone(),
                _ => bodies.clone(),
            })
            .collect()
    };
    // (text_fields, text_field_weights, require_all_terms)
    type Setting = (
        Option<&'static [&'static str]>,
        Option<&'static [f32]>,
        bool,
    );
    let settings: [Setting; 6] = [
        (None, None, false),
        (None, Some(&[1.0, 2.0, 0.5]), true),
        (Some(&["title"]), None, false),
        (Some(&["body", "title"]), Some(&[1.0, 3.0]), false),
        (Some(&["contents", "body"]), Some(&[0.0, 1.0]), true),
        (Some(&["title", "body"]), Some(&[2.0, 0.25]), true),
    ];
    for qi in 0..60 {
        let query = words(&mut rng, 3);
        let (fields, weights, all) = settings[qi % settings.len()];
        // Without text_fields: contents, then the metadata text fields by name.
        let names: Vec<&str> = fields.map_or(vec!["contents", "body", "title"], <[&str]>::to_vec);
        let w: Vec<f64> = weights.map_or(vec![1.0; names.len()], |w| {
            w.iter().map(|&x| f64::from(x)).collect()
        });
        let docs: Vec<(Vec<Option<Vec<String>>>, f64)> =
            fields_of(&names).into_iter().zip(w).collect();
        let filtered = qi % 4 == 3;
        let accept = |i: usize| !filtered || i.is_multiple_of(2);
        let want = bm25_reference(&docs, &query, (k1.into(), b.into()), all, &ids, &accept);
        let mut mq = MetadataQuery::new().text(&query).require_all_terms(all);
        let mut tq = Query::text_only(&query).require_all_terms(all).top_k(n);
        if let Some(f) = fields {
            mq = mq.text_fields(f);
            tq = tq.text_fields(f);
        }
        if let Some(w) = weights {
            mq = mq.text_field_weights(w);
            tq = tq.text_field_weights(w);
        }
        if filtered {
            mq = mq.filter(json!({"even": true}));
            tq = tq.filter(json!({"even": true}));
        }
        let what = format!("{query:?} {fields:?} {weights:?} all={all} filtered={filtered}");
        let listed: Vec<(String, f32)> = index
            .query_metadata(&mq)
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.score.expect("text hits carry a score")))
            .collect();
        assert_ranked(&listed, &want, &what);
        let top: Vec<(String, f32)> = index
            .query_metadata(&mq.clone().top_k(5))
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.score.unwrap()))
            .collect();
        assert_ranked(&top, &want[..want.len().min(5)], &what);
        let queried: Vec<(String, f32)> = index
            .query(&tq)
            .unwrap()
            .into_iter()
            .map(|h| {
                assert_eq!(h.distance, -h.score.unwrap());
                (h.id, h.score.unwrap())
            })
            .collect();
        assert_ranked(&queried, &want, &what);
    }
}

/// A text listing ordered by a field keeps every text match, ordered by the field.
#[test]
fn text_listings_order_by_a_field_on_request() {
    let index = Database::in_memory()
        .create_index(
            "o",
            &IndexKey::generate(),
            IndexConfig::ivf_flat(2).text_fields(&["body"]),
        )
        .unwrap();
    index
        .upsert([
            Item::new("a", vec![1.0, 0.0]).with_metadata(json!({"body": "overdue refund", "d": 2})),
            Item::new("b", vec![0.0, 1.0]).with_metadata(json!({"body": "refund", "d": 9})),
            Item::new("c", vec![1.0, 1.0]).with_metadata(json!({"body": "memo", "d": 5})),
            Item::new("e", vec![1.0, 2.0]).with_metadata(json!({"body": "refund refund"})),
        ])
        .unwrap();
    let hits = index
        .query_metadata(
            &MetadataQuery::new()
                .text("refund")
                .order_by("d", Order::Descending),
        )
        .unwrap();
    assert_eq!(ids(&hits), ["b", "a", "e"]);
    assert!(hits.iter().all(|h| h.score.unwrap() > 0.0));
    // The body is a text field, so it is not filterable in a listing; AND of terms.
    let both = index
        .query_metadata(
            &MetadataQuery::new()
                .text("refund overdue")
                .require_all_terms(true),
        )
        .unwrap();
    assert_eq!(ids(&both), ["a"]);
    // A hybrid query over the metadata text field.
    let hybrid = index
        .query(
            &Query::new(vec![0.0, 1.0])
                .text("memo")
                .text_fields(&["body"])
                .top_k(2),
        )
        .unwrap();
    assert_eq!(hybrid[0].id, "c", "found by its word and close enough");
}
