//! Data operations over HTTP against oracles: JSON and binary upserts, single, batch and
//! binary queries against brute force and against the core's own answers on the same
//! folder, filters against an evaluator, get (order, fields, contents as base64), delete,
//! list_ids, num_vectors, and the 400s of bad vectors and batches.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ciphervec::{Include, IndexKey, Query};
use serde_json::{Value, json};

use super::common::{self, TestServer, hex_key};

const DIM: usize = 12;

/// An item: id, vector, metadata.
type Fixed = (String, Vec<f32>, Value);

/// An index of 300 items with metadata (`n`, `group`, `even`) and contents, half upserted
/// as JSON and half as binary. Returns the server, the key and the items.
fn fixture(name: &str) -> (TestServer, String, IndexKey, Vec<Fixed>) {
    let server = TestServer::start();
    let (hex, key) = hex_key();
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": name, "index_key": hex, "dimension": DIM}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = common::vectors(300, DIM, 11);
    let items: Vec<Fixed> = rows
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let group = ["red", "green", "blue"][i % 3];
            let meta = json!({"n": i, "group": group, "even": i % 2 == 0});
            (format!("item-{i}"), v, meta)
        })
        .collect();
    let (json_part, binary_part) = items.split_at(150);
    let json_items: Vec<Value> = json_part
        .iter()
        .map(|(id, v, m)| json!({"id": id, "vector": v, "metadata": m, "contents": format!("text of {id}")}))
        .collect();
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": name, "index_key": hex, "items": json_items}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["message"], "Upserted 150 vectors");
    let rows: Vec<Vec<f32>> = binary_part.iter().map(|(_, v, _)| v.clone()).collect();
    let r = server.post(
        "/v1/vectors/upsert_binary",
        &json!({"index_name": name, "index_key": hex, "batch": {
            "ids": binary_part.iter().map(|(id, _, _)| id).collect::<Vec<_>>(),
            "vectors_b64": common::b64_rows(&rows),
            "dimension": DIM,
            "metadata": binary_part.iter().map(|(_, _, m)| m).collect::<Vec<_>>(),
            // The Python SDK sends "" for an item without contents.
            "contents": binary_part.iter().map(|_| "").collect::<Vec<_>>(),
        }}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (server, hex, key, items)
}

fn oracle(
    items: &[(String, Vec<f32>, Value)],
    q: &[f32],
    k: usize,
    filter: Option<&Value>,
) -> Vec<(String, f32)> {
    common::brute_force(
        items
            .iter()
            .filter(|(_, _, m)| filter.is_none_or(|f| common::matches(m, f)))
            .map(|(id, v, _)| (id.as_str(), v.as_slice())),
        q,
        k,
    )
}

#[test]
fn single_batch_and_binary_queries_match_brute_force_and_the_core() {
    let (server, hex, key, items) = fixture("q");
    let queries = common::vectors(5, DIM, 42);
    let core = server.database().open_index_read_only("q", &key).unwrap();

    // One query as a flat list: a flat list of hits.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "q", "index_key": hex, "query_vectors": queries[0], "top_k": 10}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    common::assert_matches_oracle(&r.body["results"], &oracle(&items, &queries[0], 10, None));
    let from_core = core
        .query(&Query::new(queries[0].clone()).top_k(10))
        .unwrap();
    let ids: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    let core_ids: Vec<&str> = from_core.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, core_ids);

    // A batch as a list of lists: a list of lists.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "q", "index_key": hex, "query_vectors": queries, "top_k": 7}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let batches = r.body["results"].as_array().unwrap();
    assert_eq!(batches.len(), 5);
    for (q, hits) in queries.iter().zip(batches) {
        common::assert_matches_oracle(hits, &oracle(&items, q, 7, None));
    }

    // Binary: several rows answer a list of lists, one row a flat list.
    let r = server.post(
        "/v1/vectors/query_binary",
        &json!({"index_name": "q", "index_key": hex, "top_k": 5,
                "batch": {"vectors_b64": common::b64_rows(&queries), "dimension": DIM}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for (q, hits) in queries.iter().zip(r.body["results"].as_array().unwrap()) {
        common::assert_matches_oracle(hits, &oracle(&items, q, 5, None));
    }
    let r = server.post(
        "/v1/vectors/query_binary",
        &json!({"index_name": "q", "index_key": hex, "top_k": 5,
                "batch": {"vectors_b64": common::b64_rows(&queries[..1]), "dimension": DIM}}),
    );
    common::assert_matches_oracle(&r.body["results"], &oracle(&items, &queries[0], 5, None));

    // The default top_k is CyborgDB's 100.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "q", "index_key": hex, "query_vectors": queries[1]}),
    );
    assert_eq!(r.body["results"].as_array().unwrap().len(), 100);
}

#[test]
fn filters_select_what_the_evaluator_selects() {
    let (server, hex, _key, items) = fixture("f");
    let q = &common::vectors(1, DIM, 5)[0];
    for filter in [
        json!({"group": "red"}),
        json!({"n": {"$lt": 40}}),
        json!({"n": {"$gte": 100, "$lt": 130}, "even": true}),
        json!({"group": {"$in": ["green", "blue"]}, "n": {"$gt": 250}}),
        json!({"$or": [{"group": "red"}, {"n": {"$lte": 3}}]}),
        json!({"group": {"$nin": ["red"]}, "even": {"$ne": true}}),
    ] {
        let r = server.post(
            "/v1/vectors/query",
            &json!({"index_name": "f", "index_key": hex, "query_vectors": q, "top_k": 300,
                    "filters": filter, "include": ["metadata", "distance"]}),
        );
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        let expected = oracle(&items, q, 300, Some(&filter));
        common::assert_matches_oracle(&r.body["results"], &expected);
        for hit in r.body["results"].as_array().unwrap() {
            assert!(
                common::matches(&hit["metadata"], &filter),
                "{filter}: {hit}"
            );
        }
    }
    // A filter that does not parse is 400.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "f", "index_key": hex, "query_vectors": q, "filters": {"n": {"$bogus": 1}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn include_selects_fields_and_refuses_unknown_ones() {
    let (server, hex, _key, items) = fixture("inc");
    let (id, v, meta) = &items[4];
    let ask = |include: Value| {
        server.post(
            "/v1/vectors/query",
            &json!({"index_name": "inc", "index_key": hex, "query_vectors": v, "top_k": 1, "include": include}),
        )
    };
    let r = ask(json!([]));
    assert_eq!(r.body["results"][0]["id"], json!(id));
    assert!(r.body["results"][0].get("distance").is_some());
    assert!(r.body["results"][0].get("metadata").is_none());
    let r = ask(json!(["metadata", "vector"]));
    assert_eq!(&r.body["results"][0]["metadata"], meta);
    let got: Vec<f32> = serde_json::from_value(r.body["results"][0]["vector"].clone()).unwrap();
    assert_eq!(&got, v);
    for bad in [json!(["bogus"]), json!(["contents"])] {
        let r = ask(bad.clone());
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let r = server.post(
        "/v1/vectors/get",
        &json!({"index_name": "inc", "index_key": hex, "ids": [id], "include": ["metdata"]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.detail().contains("metdata"), "{}", r.text);
}

#[test]
fn get_keeps_the_order_asked_skips_unknown_ids_and_returns_contents_as_base64() {
    let (server, hex, _key, items) = fixture("g");
    let r = server.post(
        "/v1/vectors/get",
        &json!({"index_name": "g", "index_key": hex, "ids": ["item-200", "missing", "item-3", "item-0"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    let ids: Vec<&str> = results.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["item-200", "item-3", "item-0"]);
    // JSON-upserted contents come back as base64 of their UTF-8 bytes (API.md, Wave 3).
    let contents = STANDARD
        .decode(results[1]["contents"].as_str().unwrap())
        .unwrap();
    assert_eq!(contents, b"text of item-3");
    assert_eq!(results[1]["metadata"], items[3].2);
    let vector: Vec<f32> = serde_json::from_value(results[1]["vector"].clone()).unwrap();
    assert_eq!(vector, items[3].1);
    // Binary-upserted items with "" contents have none: "" as the service answers.
    assert_eq!(results[0]["contents"], "");
    // include narrows the fields.
    let r = server.post(
        "/v1/vectors/get",
        &json!({"index_name": "g", "index_key": hex, "ids": ["item-3"], "include": ["metadata"]}),
    );
    let only = &r.body["results"][0];
    assert_eq!(only["metadata"], items[3].2);
    assert!(
        only.get("vector").is_none() && only.get("contents").is_none(),
        "{only}"
    );
}

#[test]
fn delete_list_ids_and_num_vectors_agree_with_the_core() {
    let (server, hex, key, items) = fixture("d");
    let r = server.post(
        "/v1/vectors/delete",
        &json!({"index_name": "d", "index_key": hex, "ids": ["item-1", "item-2", "never"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "d", "index_key": hex}),
    );
    assert_eq!(r.body["result"], 298);
    let r = server.post(
        "/v1/vectors/list_ids",
        &json!({"index_name": "d", "index_key": hex}),
    );
    assert_eq!(r.body["count"], 298);
    let listed: BTreeSet<String> = serde_json::from_value(r.body["ids"].clone()).unwrap();
    let expected: BTreeSet<String> = items
        .iter()
        .map(|(id, _, _)| id.clone())
        .filter(|id| id != "item-1" && id != "item-2")
        .collect();
    assert_eq!(listed, expected);
    let core = server.database().open_index_read_only("d", &key).unwrap();
    assert_eq!(core.len(), 298);
    assert!(core.get(&["item-1"], Include::NONE).unwrap().is_empty());
    // Deleted items are no longer found.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "d", "index_key": hex, "query_vectors": items[1].1, "top_k": 1}),
    );
    assert_ne!(r.body["results"][0]["id"], "item-1");
}

#[test]
fn an_upsert_replaces_an_existing_id() {
    let (server, hex, key, _) = fixture("r");
    let v = vec![9.0f32; DIM];
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "r", "index_key": hex,
                "items": [{"id": "item-7", "vector": v, "metadata": {"new": true}}]}),
    );
    assert_eq!(r.status, 200);
    let core = server.database().open_index_read_only("r", &key).unwrap();
    assert_eq!(core.len(), 300);
    let rec = &core.get(&["item-7"], Include::ALL).unwrap()[0];
    assert_eq!(rec.vector.as_deref(), Some(&v[..]));
    assert_eq!(rec.metadata, Some(json!({"new": true})));
}

#[test]
fn bad_vectors_and_batches_are_400_and_change_nothing() {
    let (server, hex, key, items) = fixture("bad");
    let good = &items[0].1;
    let short = vec![1.0f32; DIM - 1];
    let cases: Vec<(&str, Value)> = vec![
        (
            "/v1/vectors/upsert",
            json!({"items": [{"id": "x", "vector": short}]}),
        ),
        ("/v1/vectors/upsert", json!({"items": [{"id": "x"}]})),
        (
            "/v1/vectors/upsert",
            json!({"items": [{"id": "", "vector": good}]}),
        ),
        (
            "/v1/vectors/upsert",
            json!({"items": [{"id": "x", "vector": good, "metadata": [1, 2]}]}),
        ),
        (
            "/v1/vectors/upsert_binary",
            json!({"batch": {"ids": ["a", "b"], "vectors_b64": common::b64_rows(std::slice::from_ref(good)), "dimension": DIM}}),
        ),
        (
            "/v1/vectors/upsert_binary",
            json!({"batch": {"ids": ["a"], "vectors_b64": "!!!", "dimension": DIM}}),
        ),
        (
            "/v1/vectors/upsert_binary",
            json!({"batch": {"ids": ["a"], "vectors_b64": common::b64_rows(std::slice::from_ref(good)), "dimension": 0}}),
        ),
        (
            "/v1/vectors/upsert_binary",
            json!({"batch": {"ids": ["a"], "vectors_b64": common::b64_rows(std::slice::from_ref(good)), "dimension": DIM, "metadata": [{}, {}]}}),
        ),
        (
            "/v1/vectors/upsert_binary",
            json!({"batch": {"ids": ["a"], "vectors_b64": STANDARD.encode(f32::NAN.to_le_bytes().repeat(DIM)), "dimension": DIM}}),
        ),
        ("/v1/vectors/query", json!({"query_vectors": short})),
        ("/v1/vectors/query", json!({})),
        (
            "/v1/vectors/query",
            json!({"query_vectors": good, "top_k": 0}),
        ),
        (
            "/v1/vectors/query",
            json!({"query_vectors": good, "top_k": 5000, "rerank_mult": 4}),
        ),
        (
            "/v1/vectors/query",
            json!({"query_vectors": good, "query_contents": "words"}),
        ),
        (
            "/v1/vectors/query",
            json!({"query_vectors": good, "greedy": true}),
        ),
        (
            "/v1/vectors/query_binary",
            json!({"batch": {"vectors_b64": common::b64_rows(std::slice::from_ref(&short)), "dimension": DIM}}),
        ),
    ];
    for (path, mut body) in cases {
        body["index_name"] = json!("bad");
        body["index_key"] = json!(hex);
        let r = server.post(path, &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
    }
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "bad", "index_key": hex, "query_vectors": good, "top_k": 5000, "rerank_mult": 4}),
    );
    assert!(
        r.detail().contains("10000") && r.detail().contains("rerank_mult"),
        "{}",
        r.text
    );
    // The ceiling is inclusive.
    let r = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "bad", "index_key": hex, "query_vectors": good, "top_k": 100, "rerank_mult": 100}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let core = server.database().open_index_read_only("bad", &key).unwrap();
    assert_eq!(core.len(), 300);
    assert!(
        core.get(&["x", "a", "b"], Include::NONE)
            .unwrap()
            .is_empty()
    );
}
