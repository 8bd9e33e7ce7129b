//! What an index is created with beyond type and metric (metadata schema, text fields,
//! BM25, storage precision), `query_metadata`, and hybrid (BM25 + vector) queries over
//! HTTP, held to evaluators over what was written, to brute force, and to the core's own
//! answers on the same folder (opened read-only in this process).

use std::collections::BTreeSet;

use ciphervec::{IndexKey, MetadataQuery, Order, Query, StoragePrecision};
use serde_json::{Value, json};

use super::common::{self, TestServer, hex_key};

const DIM: usize = 8;
const N: usize = 120;
const WORDS: [&str; 5] = ["apple", "banana", "cherry", "grape", "melon"];

/// One written item: id, vector, metadata, contents.
struct Written {
    id: String,
    vector: Vec<f32>,
    meta: Value,
    contents: String,
}

/// Item `i`: `group` red/green/blue, `title` "INV-<i>" for even `i` else "memo-<i>", a
/// metadata text field `body` of two words, contents of one word (different from the body's
/// words, so that fields are told apart), and `raw`, which the schema keeps unindexed.
fn written(i: usize, vector: Vec<f32>) -> Written {
    let title = if i.is_multiple_of(2) {
        format!("INV-{i}")
    } else {
        format!("memo-{i}")
    };
    let group = ["red", "green", "blue"][i % 3];
    Written {
        id: format!("item-{i:03}"),
        vector,
        meta: json!({
            "n": i,
            "group": group,
            "title": title,
            "body": format!("{} {}", WORDS[i % 5], WORDS[(i / 5) % 5]),
            "raw": i,
        }),
        contents: format!("contents {}", ["kiwi", "lemon", "mango"][i % 3]),
    }
}

/// A server with index `name`: pattern field `title`, unindexed `raw`, text fields `body`
/// (metadata) and the contents, BM25 (1.0, 0.5); `N` items.
fn fixture(name: &str) -> (TestServer, String, IndexKey, Vec<Written>) {
    let server = TestServer::start();
    let (hex, key) = hex_key();
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": name, "index_key": hex, "dimension": DIM,
                "metadata_schema": {"title": {"pattern": true}, "raw": {"filterable": false}},
                "text_fields": ["body", "contents"], "bm25_k1": 1.0, "bm25_b": 0.5}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let items: Vec<Written> = common::vectors(N, DIM, 5)
        .into_iter()
        .enumerate()
        .map(|(i, v)| written(i, v))
        .collect();
    let body: Vec<Value> = items
        .iter()
        .map(
            |w| json!({"id": w.id, "vector": w.vector, "metadata": w.meta, "contents": w.contents}),
        )
        .collect();
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": name, "index_key": hex, "items": body}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (server, hex, key, items)
}

fn ids_of(results: &Value) -> Vec<String> {
    results
        .as_array()
        .expect("a list")
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

fn where_(items: &[Written], keep: impl Fn(&Written) -> bool) -> BTreeSet<String> {
    items
        .iter()
        .filter(|w| keep(w))
        .map(|w| w.id.clone())
        .collect()
}

fn body_has(w: &Written, word: &str) -> bool {
    w.meta["body"]
        .as_str()
        .unwrap()
        .split(' ')
        .any(|t| t == word)
}

#[test]
fn query_metadata_lists_what_an_evaluator_selects_in_the_order_asked() {
    let (server, hex, _, items) = fixture("qm");
    let qm = |extra: Value| {
        let mut body = json!({"index_name": "qm", "index_key": hex, "filters": {}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        server.post("/v1/vectors/query_metadata", &body)
    };

    // Every item, rows of {"id"} only, `ids` parallel, `count` their number.
    let all = qm(json!({}));
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(set(ids_of(&all.body["results"])), where_(&items, |_| true));
    assert!(
        all.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_object().unwrap().len() == 1)
    );
    assert_eq!(all.body["ids"], json!(ids_of(&all.body["results"])));
    assert_eq!(all.body["count"], N);
    // top_k 0 is "no cap", as CyborgDB's service reads it.
    assert_eq!(qm(json!({"top_k": 0})).body["count"], N);

    // Filters: equality, range, $regex and $contains on a pattern field.
    for (filter, expected) in [
        (
            json!({"group": "red"}),
            where_(&items, |w| w.meta["group"] == "red"),
        ),
        (
            json!({"n": {"$gte": 30, "$lt": 45}, "group": {"$ne": "blue"}}),
            where_(&items, |w| {
                let n = w.meta["n"].as_u64().unwrap();
                (30..45).contains(&n) && w.meta["group"] != "blue"
            }),
        ),
        (
            json!({"title": {"$regex": "^INV-1\\d$"}}),
            where_(&items, |w| {
                let n = w.meta["n"].as_u64().unwrap();
                n.is_multiple_of(2) && (10..20).contains(&n)
            }),
        ),
        (
            json!({"title": {"$contains": "mo-7"}}),
            where_(&items, |w| {
                w.meta["title"].as_str().unwrap().contains("mo-7")
            }),
        ),
    ] {
        let r = qm(json!({ "filters": filter }));
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        assert_eq!(set(ids_of(&r.body["results"])), expected, "{filter}");
    }

    // order_by: a field name with `ascending`, or {field: 1 | -1}; top_k after ordering.
    let r =
        qm(json!({"filters": {"n": {"$lt": 20}}, "order_by": "n", "ascending": false, "top_k": 5}));
    assert_eq!(
        ids_of(&r.body["results"]),
        ["item-019", "item-018", "item-017", "item-016", "item-015"]
    );
    let r = qm(json!({"order_by": {"n": 1}, "top_k": 3, "ascending": false}));
    assert_eq!(
        ids_of(&r.body["results"]),
        ["item-000", "item-001", "item-002"]
    );
    let r = qm(json!({"order_by": {"n": -1}, "top_k": 2}));
    assert_eq!(ids_of(&r.body["results"]), ["item-119", "item-118"]);

    // Text: the items whose searched fields hold the words, with scores, best first.
    let r = qm(json!({"text": "cherry", "text_fields": ["body"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        set(ids_of(&r.body["results"])),
        where_(&items, |w| body_has(w, "cherry"))
    );
    let scores: Vec<f64> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().expect("a score"))
        .collect();
    assert!(scores.windows(2).all(|p| p[0] >= p[1]), "{scores:?}");
    let r = qm(json!({"text": "lemon", "text_fields": ["contents"]}));
    assert_eq!(
        set(ids_of(&r.body["results"])),
        where_(&items, |w| w.contents.ends_with("lemon"))
    );
    let r = qm(json!({"text": "apple banana", "require_all_terms": true}));
    assert_eq!(
        set(ids_of(&r.body["results"])),
        where_(&items, |w| body_has(w, "apple") && body_has(w, "banana"))
    );
    // A filter narrows the text hits; empty text is no text.
    let r = qm(json!({"text": "apple", "filters": {"group": "red"}}));
    assert_eq!(
        set(ids_of(&r.body["results"])),
        where_(&items, |w| body_has(w, "apple") && w.meta["group"] == "red")
    );
    assert_eq!(qm(json!({"text": ""})).body["count"], N);
}

#[test]
fn query_metadata_answers_as_the_core_does() {
    let (server, hex, key, _) = fixture("core");
    let core = server
        .database()
        .open_index_read_only("core", &key)
        .unwrap();
    let cases: Vec<(Value, MetadataQuery)> = vec![
        (
            json!({"filters": {"group": "green"}, "order_by": "title", "ascending": false, "top_k": 7}),
            MetadataQuery::new()
                .filter(json!({"group": "green"}))
                .order_by("title", Order::Descending)
                .top_k(7),
        ),
        (
            json!({"filters": {}, "text": "grape melon", "top_k": 9}),
            MetadataQuery::new().text("grape melon").top_k(9),
        ),
        (
            json!({"filters": {}, "text": "grape kiwi", "text_fields": ["body", "contents"],
                    "text_field_weights": [2.0, 0.5]}),
            MetadataQuery::new()
                .text("grape kiwi")
                .text_fields(&["body", "contents"])
                .text_field_weights(&[2.0, 0.5]),
        ),
    ];
    for (extra, listing) in cases {
        let mut body = json!({"index_name": "core", "index_key": hex});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = server.post("/v1/vectors/query_metadata", &body);
        assert_eq!(r.status, 200, "{extra}: {}", r.text);
        let want = core.query_metadata(&listing).unwrap();
        let got = r.body["results"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{extra}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["id"], json!(w.id), "{extra}");
            match w.score {
                Some(s) => assert!((g["score"].as_f64().unwrap() as f32 - s).abs() <= 1e-6),
                None => assert!(g.get("score").is_none()),
            }
        }
    }
}

#[test]
fn query_metadata_refuses_what_it_cannot_answer_with_400s() {
    let (server, hex, _, _) = fixture("bad");
    let qm = |extra: Value| {
        let mut body = json!({"index_name": "bad", "index_key": hex});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        server.post("/v1/vectors/query_metadata", &body)
    };
    for (extra, says) in [
        // The schema is enforced: `raw` is unindexed, `group` has no pattern dictionary,
        // `body` is a text field.
        (json!({"filters": {"raw": 3}}), "raw"),
        (json!({"filters": {"group": {"$regex": "^r"}}}), "group"),
        (json!({"filters": {"body": "apple"}}), "body"),
        (json!({"filters": {"n": {"$bogus": 1}}}), ""),
        // As CyborgDB's service: text results are ranked by score.
        (json!({"text": "apple", "order_by": "n"}), "order_by"),
        (
            json!({"order_by": {"n": -1, "group": 1}}),
            "exactly one field",
        ),
        (json!({"order_by": {"n": 2}}), "order_by"),
        (json!({"order_by": 5}), "order_by"),
        // Text options without text are refused, not ignored.
        (json!({"text_fields": ["body"]}), "text_fields"),
        (json!({"require_all_terms": true}), "require_all_terms"),
        // The core's own checks.
        (json!({"text": "apple", "text_fields": ["title"]}), ""),
        (
            json!({"text": "apple", "text_fields": ["body"], "text_field_weights": [1, 2]}),
            "",
        ),
    ] {
        let r = qm(extra.clone());
        assert_eq!(r.status, 400, "{extra}: {}", r.text);
        assert!(r.detail().contains(says), "{extra}: {}", r.detail());
    }
    let r = qm(json!({"top_k": -1}));
    assert_eq!(r.status, 422, "{}", r.text);
    let (other, _) = hex_key();
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "bad", "index_key": other}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "nope", "index_key": hex}),
    );
    assert_eq!(r.status, 404, "{}", r.text);

    // An index without a text field: text is a 400 (listing and hybrid query alike).
    let plain = common::create(&server, "plain", DIM);
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "plain", "index_key": plain,
                "items": [{"id": "a", "vector": vec![0.5; DIM], "contents": "apple"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "plain", "index_key": plain, "text": "apple"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "plain", "index_key": plain, "query_vectors": vec![0.5; DIM],
                "text": "apple"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn hybrid_queries_carry_fused_scores_and_answer_as_the_core_does() {
    let (server, hex, key, items) = fixture("hy");
    let core = server.database().open_index_read_only("hy", &key).unwrap();
    let queries = common::vectors(3, DIM, 77);
    let query = |extra: Value| {
        let mut body = json!({"index_name": "hy", "index_key": hex, "query_vectors": queries[0]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        server.post("/v1/vectors/query", &body)
    };

    // Hits carry a score, never a distance (CyborgDB's QueryResultItem), even when asked.
    let r = query(json!({"text": "cherry", "top_k": 10, "include": ["distance", "metadata"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    let hits = r.body["results"].as_array().unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h["score"].is_number()
        && h.get("distance").is_none()
        && h["metadata"].is_object()));

    // alpha 0 is the text ranking alone; alpha 1 the vector ranking alone (brute force).
    let r = query(json!({"text": "cherry", "text_fields": ["body"], "alpha": 0.0, "top_k": N}));
    assert_eq!(
        set(ids_of(&r.body["results"])),
        where_(&items, |w| body_has(w, "cherry"))
    );
    let r = query(json!({"text": "cherry", "alpha": 1.0, "top_k": 10}));
    let nearest: Vec<String> = common::brute_force(
        items.iter().map(|w| (w.id.as_str(), w.vector.as_slice())),
        &queries[0],
        10,
    )
    .into_iter()
    .map(|(id, _)| id)
    .collect();
    assert_eq!(ids_of(&r.body["results"]), nearest);

    // Every knob reaches the core: the same ids and scores as the core's own query.
    let knobs = json!({"text": "apple kiwi", "text_fields": ["body", "contents"],
                       "text_field_weights": [1.5, 0.5], "require_all_terms": false,
                       "alpha": 0.3, "rrf_k": 10.0, "window_mult": 5, "top_k": 8});
    let core_query = |v: &[f32]| {
        Query::new(v.to_vec())
            .top_k(8)
            .text("apple kiwi")
            .text_fields(&["body", "contents"])
            .text_field_weights(&[1.5, 0.5])
            .require_all_terms(false)
            .hybrid_alpha(0.3)
            .rrf_k(10.0)
            .window_mult(5)
    };
    let same = |got: &Value, v: &[f32]| {
        let want = core.query(&core_query(v)).unwrap();
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["id"], json!(w.id));
            let s = w.score.expect("a fused score");
            assert!((g["score"].as_f64().unwrap() as f32 - s).abs() <= 1e-6);
        }
    };
    let r = query(knobs.clone());
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body["results"], &queries[0]);
    // A batch and a binary batch: each row as the core answers it.
    let mut batch = knobs.clone();
    batch["query_vectors"] = json!(queries);
    batch["index_name"] = json!("hy");
    batch["index_key"] = json!(hex);
    let r = server.post("/v1/vectors/query", &batch);
    assert_eq!(r.status, 200, "{}", r.text);
    for (q, row) in queries.iter().zip(r.body["results"].as_array().unwrap()) {
        same(row, q);
    }
    let mut binary = knobs.clone();
    binary["batch"] = json!({"vectors_b64": common::b64_rows(&queries), "dimension": DIM});
    binary["index_name"] = json!("hy");
    binary["index_key"] = json!(hex);
    let r = server.post("/v1/vectors/query_binary", &binary);
    assert_eq!(r.status, 200, "{}", r.text);
    for (q, row) in queries.iter().zip(r.body["results"].as_array().unwrap()) {
        same(row, q);
    }

    // Refusals: out-of-range knobs (the core's checks), and knobs without text.
    for extra in [
        json!({"text": "apple", "alpha": 1.5}),
        json!({"text": "apple", "window_mult": 0}),
        json!({"text": "apple", "text_fields": ["title"]}),
        json!({"text": "apple", "text_field_weights": [1.0, 2.0, 3.0]}),
        json!({"alpha": 0.5}),
        json!({"window_mult": 2}),
        json!({"text_fields": ["body"]}),
        json!({"text": "", "rrf_k": 10}),
    ] {
        let r = query(extra.clone());
        assert_eq!(r.status, 400, "{extra}: {}", r.text);
    }
}

#[test]
fn create_features_reach_the_core_and_describe_reports_them() {
    let (server, hex, key, _) = fixture("desc");
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "desc", "index_key": hex}),
    );
    assert_eq!(d.status, 200, "{}", d.text);
    let flag = |f: bool, p: bool, t: bool| json!({"filterable": f, "pattern": p, "full_text": t});
    assert_eq!(
        d.body["metadata_schema"],
        json!({"title": flag(true, true, false), "raw": flag(false, false, false),
               "body": flag(false, false, true), "contents": flag(false, false, true)})
    );
    assert_eq!(d.body["bm25"]["k1"], 1.0);
    assert_eq!(d.body["bm25"]["b"], 0.5);
    assert_eq!(d.body["storage_precision"], "float32");
    let core = server
        .database()
        .open_index_read_only("desc", &key)
        .unwrap();
    let config = core.config();
    assert!(config.is_full_text());
    assert_eq!(config.bm25_params(), (1.0, 0.5));
    assert_eq!(config.schema().text_fields().collect::<Vec<_>>(), ["body"]);
    assert!(config.schema().field("title").pattern);
    assert!(!config.schema().field("raw").filterable);

    // Without a dimension (the cURL call): the features wait for the first upsert.
    let (hex2, key2) = hex_key();
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "later", "index_key": hex2, "text_fields": ["body"],
                "metadata_schema": {"tag": {"pattern": true}}, "storage_precision": "float16",
                "bm25_b": 0.25}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "later", "index_key": hex2}),
    );
    assert_eq!(d.body["dimension"], 0);
    assert_eq!(
        d.body["metadata_schema"],
        json!({"tag": flag(true, true, false), "body": flag(false, false, true)})
    );
    assert_eq!(d.body["bm25"]["b"], 0.25);
    assert_eq!(d.body["storage_precision"], "float16");
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "later", "index_key": hex2, "text": "x"}),
    );
    assert_eq!(r.body["count"], 0, "{}", r.text);
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "later", "index_key": hex2, "items": [
            {"id": "a", "vector": [0.1, 0.2, 0.3], "metadata": {"tag": "t-1", "body": "hello world"}},
            {"id": "b", "vector": [0.3, 0.2, 0.1], "metadata": {"tag": "u-2", "body": "bye"}}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let later = server
        .database()
        .open_index_read_only("later", &key2)
        .unwrap();
    assert_eq!(later.config().dimension(), 3);
    assert_eq!(later.config().precision(), StoragePrecision::Float16);
    assert_eq!(later.config().bm25_params().1, 0.25);
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "later", "index_key": hex2, "text": "hello"}),
    );
    assert_eq!(ids_of(&r.body["results"]), ["a"], "{}", r.text);
    let r = server.post(
        "/v1/vectors/query_metadata",
        &json!({"index_name": "later", "index_key": hex2, "filters": {"tag": {"$regex": "^u"}}}),
    );
    assert_eq!(ids_of(&r.body["results"]), ["b"], "{}", r.text);
}

#[test]
fn storage_precisions_store_what_the_core_stores_and_other_tiers_are_400() {
    let server = TestServer::start();
    let rows = common::vectors(20, DIM, 9);
    for (tier, precision, tolerance) in [
        ("float32", StoragePrecision::Float32, 0.0f32),
        ("float16", StoragePrecision::Float16, 1.0 / 2048.0),
        ("int8", StoragePrecision::Int8, 1.0 / 250.0),
    ] {
        let (hex, key) = hex_key();
        let r = server.post(
            "/v1/indexes/create",
            &json!({"index_name": tier, "index_key": hex, "dimension": DIM,
                    "storage_precision": tier}),
        );
        assert_eq!(r.status, 200, "{tier}: {}", r.text);
        let r = server.post(
            "/v1/vectors/upsert_binary",
            &json!({"index_name": tier, "index_key": hex, "batch": {
                "ids": (0..rows.len()).map(|i| format!("v{i}")).collect::<Vec<_>>(),
                "vectors_b64": common::b64_rows(&rows), "dimension": DIM}}),
        );
        assert_eq!(r.status, 200, "{tier}: {}", r.text);
        let got = server.post(
            "/v1/vectors/get",
            &json!({"index_name": tier, "index_key": hex, "ids": ["v3"], "include": ["vector"]}),
        );
        let vector: Vec<f32> = got.body["results"][0]["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let core = server.database().open_index_read_only(tier, &key).unwrap();
        assert_eq!(core.config().precision(), precision);
        let stored = core
            .get(&["v3"], ciphervec::Include::VECTOR)
            .unwrap()
            .remove(0)
            .vector
            .unwrap();
        assert_eq!(vector, stored, "{tier}: the vector as stored");
        // Within the tier's rounding of the written vector (|x| < 1 here); lossy tiers lose.
        let worst = vector
            .iter()
            .zip(&rows[3])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= tolerance, "{tier}: off by {worst}");
        if tolerance > 0.0 {
            assert!(worst > 0.0, "{tier}: no rounding at all");
        }
    }
    let before = server.get("/v1/indexes/list").body["indexes"].clone();
    for (body, says) in [
        (json!({"storage_precision": "tq8"}), "TurboQuant"),
        (json!({"storage_precision": "float64"}), "storage_precision"),
        (json!({"bm25_k1": 1.0}), "full_text"),
        (
            json!({"metadata_schema": {"a": {"pattern": true, "filterable": false}}}),
            "pattern",
        ),
        (json!({"metadata_schema": {"a": {"bogus": true}}}), "bogus"),
        (
            json!({"metadata_schema": {"a": {"full_text": false}}, "text_fields": ["a"]}),
            "a",
        ),
        (json!({"text_fields": ["body"], "bm25_b": 2.0}), ""),
    ] {
        let (hex, _) = hex_key();
        let mut body = body.clone();
        body["index_name"] = json!("refused");
        body["index_key"] = json!(hex);
        body["dimension"] = json!(DIM);
        let r = server.post("/v1/indexes/create", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.detail().contains(says), "{body}: {}", r.detail());
        // And without a dimension (a placeholder is created): refused the same.
        body.as_object_mut().unwrap().remove("dimension");
        let r = server.post("/v1/indexes/create", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], before);
}
