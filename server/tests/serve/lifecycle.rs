//! Index lifecycle over HTTP: create (hex and base64 keys, without a dimension as the
//! documented cURL call does, the JS SDK's older `index_config`), describe (the fields both
//! SDKs read), list, delete, train; and the status codes of WIRE.md for each failure.

use serde_json::{Value, json};

use super::common::{self, TestServer, hex_key};

#[test]
fn the_documented_curl_call_creates_an_index_whose_first_upsert_sets_the_dimension() {
    let server = TestServer::start();
    let (hex, key) = hex_key();
    let reply = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "docs", "index_key": hex}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "success");
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "docs", "index_key": hex}),
    );
    assert_eq!(d.status, 200);
    assert_eq!(d.body["dimension"], 0);
    assert_eq!(d.body["is_trained"], false);
    assert_eq!(d.body["n_lists"], 1);
    // Empty answers before the first upsert.
    let ids = server.post(
        "/v1/vectors/list_ids",
        &json!({"index_name": "docs", "index_key": hex}),
    );
    assert_eq!(ids.body, json!({"ids": [], "count": 0}));

    let rows = common::vectors(3, 5, 1);
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": format!("v{i}"), "vector": v}))
        .collect();
    let up = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "docs", "index_key": hex, "items": items}),
    );
    assert_eq!(up.status, 200, "{}", up.text);
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "docs", "index_key": hex}),
    );
    assert_eq!(d.body["dimension"], 5);
    assert_eq!(d.body["index_config"]["dimension"], 5);
    // The core sees a real index of that dimension, under that key, holding those items.
    let index = server
        .database()
        .open_index_read_only("docs", &key)
        .unwrap();
    assert_eq!(index.config().dimension(), 5);
    assert_eq!(index.list_ids().unwrap(), vec!["v0", "v1", "v2"]);
    // A second dimension is refused now.
    let bad = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "docs", "index_key": hex,
                "items": [{"id": "x", "vector": [1.0, 2.0]}]}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[test]
fn a_base64_key_opens_the_index_its_hex_form_created() {
    let server = TestServer::start();
    let (hex, key) = hex_key();
    assert_eq!(
        server
            .post(
                "/v1/indexes/create",
                &json!({"index_name": "k", "index_key": hex, "dimension": 4})
            )
            .status,
        200
    );
    let b64 = key.to_base64().to_string();
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "k", "index_key": b64}),
    );
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["dimension"], 4);
}

#[test]
fn describe_carries_the_fields_both_sdks_read() {
    let server = TestServer::start();
    let (hex, _) = hex_key();
    let reply = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "d", "index_key": hex, "dimension": 8, "metric": "cosine"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "d", "index_key": hex}),
    );
    assert_eq!(d.status, 200);
    for field in [
        "index_name",
        "is_trained",
        "dimension",
        "metric",
        "n_lists",
        "metadata_schema",
        "bm25",
        "index_type",
        "index_config",
    ] {
        assert!(
            d.body.get(field).is_some(),
            "describe lacks {field}: {}",
            d.text
        );
    }
    assert_eq!(d.body["index_name"], "d");
    assert_eq!(d.body["metric"], "cosine");
    assert_eq!(d.body["index_type"], "ivfflat");
    assert_eq!(d.body["index_config"]["type"], "ivfflat");
    assert_eq!(d.body["index_config"]["dimension"], 8);
    assert_eq!(d.body["index_config"]["metric"], "cosine");
}

#[test]
fn the_js_sdks_index_config_shapes_create_the_matching_core_types() {
    let server = TestServer::start();
    for (name, config, expected) in [
        (
            "flat",
            json!({"type": "ivfflat", "dimension": 16}),
            "ivfflat",
        ),
        ("ivf", json!({"type": "ivf", "dimension": 16}), "ivfflat"),
        ("sq", json!({"type": "ivfsq", "dimension": 16}), "ivfsq"),
        (
            "pq",
            json!({"type": "ivfpq", "dimension": 16, "pq_dim": 4, "pq_bits": 8}),
            "ivfpq",
        ),
    ] {
        let (hex, key) = hex_key();
        let reply = server.post(
            "/v1/indexes/create",
            &json!({"index_name": name, "index_key": hex, "index_config": config}),
        );
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let d = server.post(
            "/v1/indexes/describe",
            &json!({"index_name": name, "index_key": hex}),
        );
        assert_eq!(d.body["index_type"], expected, "{name}");
        assert_eq!(d.body["dimension"], 16);
        let core = server.database().open_index_read_only(name, &key).unwrap();
        let core_type = match core.config().index_type() {
            ciphervec::IndexType::IvfFlat => "ivfflat",
            ciphervec::IndexType::IvfSq8 => "ivfsq",
            ciphervec::IndexType::IvfPq { n_subquantizers } => {
                assert_eq!(n_subquantizers, 4, "{name}");
                "ivfpq"
            }
            _ => "other",
        };
        assert_eq!(core_type, expected, "{name}");
    }
    // PQ without a dimension waits for it like any other type.
    let (hex, _) = hex_key();
    let reply = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "pq0", "index_key": hex, "index_config": {"type": "ivfpq", "pq_dim": 4}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "pq0", "index_key": hex}),
    );
    assert_eq!(d.body["index_type"], "ivfpq");
    assert_eq!(d.body["dimension"], 0);
}

#[test]
fn list_and_delete_and_a_wrong_key_deletes_nothing() {
    let server = TestServer::start();
    let a = common::create(&server, "a", 3);
    let _b = common::create(&server, "b", 3);
    let list = server.get("/v1/indexes/list");
    assert_eq!(list.status, 200);
    let mut names: Vec<String> = serde_json::from_value(list.body["indexes"].clone()).unwrap();
    names.sort();
    assert_eq!(names, ["a", "b"]);

    let (wrong, _) = hex_key();
    let r = server.post(
        "/v1/indexes/delete",
        &json!({"index_name": "a", "index_key": wrong}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(server.get("/v1/indexes/list").text.contains("\"a\""));

    let r = server.post(
        "/v1/indexes/delete",
        &json!({"index_name": "a", "index_key": a}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], json!(["b"]));
    let r = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "a", "index_key": a}),
    );
    assert_eq!(r.status, 404);
    // The JS SDK treats a 404 whose detail says "not exist" as already deleted.
    assert!(r.detail().contains("not exist"), "{}", r.text);
}

#[test]
fn each_failure_answers_the_status_wire_md_gives_it() {
    let server = TestServer::start();
    let hex = common::create(&server, "idx", 4);
    let (wrong, _) = hex_key();
    let cases: Vec<(&str, Value, u16)> = vec![
        // Creating over an existing name: a conflict.
        (
            "/v1/indexes/create",
            json!({"index_name": "idx", "index_key": hex, "dimension": 4}),
            409,
        ),
        // Keys that are not 32 bytes as hex or base64.
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": "zz"}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": "abcd"}),
            400,
        ),
        // Neither key nor KMS name; a KMS name; an embedding model; a precision tier ciphervec lacks.
        ("/v1/indexes/create", json!({"index_name": "n1"}), 400),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "kms_name": "aws"}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "dimension": 4, "embedding_model": "all-MiniLM-L6-v2"}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "dimension": 4, "storage_precision": "tq8"}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "dimension": 4, "metric": "bogus"}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "index_config": {"type": "ivfpq", "dimension": 8, "pq_dim": 4, "pq_bits": 6}}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "index_config": {"type": "hnsw", "dimension": 8}}),
            400,
        ),
        (
            "/v1/indexes/create",
            json!({"index_name": "n1", "index_key": hex, "dimension": 4, "index_config": {"type": "ivfflat", "dimension": 8}}),
            400,
        ),
        // A name the core refuses.
        (
            "/v1/indexes/create",
            json!({"index_name": "a/b", "index_key": hex, "dimension": 4}),
            400,
        ),
        // Schema errors: 422.
        ("/v1/indexes/create", json!({"index_key": hex}), 422),
        (
            "/v1/indexes/create",
            json!({"index_name": 5, "index_key": hex}),
            422,
        ),
        (
            "/v1/indexes/describe",
            json!({"index_name": "idx", "index_key": 7}),
            422,
        ),
        // A wrong index key; no index key; no such index.
        (
            "/v1/indexes/describe",
            json!({"index_name": "idx", "index_key": wrong}),
            401,
        ),
        ("/v1/indexes/describe", json!({"index_name": "idx"}), 401),
        (
            "/v1/indexes/describe",
            json!({"index_name": "nope", "index_key": hex}),
            404,
        ),
        (
            "/v1/vectors/upsert",
            json!({"index_name": "nope", "index_key": hex, "items": []}),
            404,
        ),
        // Training options ciphervec has no knob for.
        (
            "/v1/indexes/train",
            json!({"index_name": "idx", "index_key": hex, "batch_size": 2048}),
            400,
        ),
        // Training an empty index.
        (
            "/v1/indexes/train",
            json!({"index_name": "idx", "index_key": hex}),
            400,
        ),
    ];
    for (path, body, status) in cases {
        let reply = server.post(path, &body);
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
        assert!(
            reply.body.get("detail").is_some(),
            "{path}: no detail in {}",
            reply.text
        );
        if status != 422 {
            assert_eq!(reply.body["status_code"], status, "{}", reply.text);
        }
    }
    // Malformed JSON is 422 in FastAPI's shape, and names no value.
    let reply = server.send(
        "POST",
        "/v1/indexes/create",
        Some(b"{\"index_name\": ".to_vec()),
        Some(common::API_KEY),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "json_invalid");
    // An unknown route.
    assert_eq!(server.get("/v1/nothing").status, 404);
}

#[test]
fn train_trains_and_queries_then_probe_every_list_exactly() {
    let server = TestServer::start();
    let hex = common::create(&server, "t", 8);
    let rows = common::vectors(600, 8, 7);
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("id{i}")).collect();
    let up = server.post(
        "/v1/vectors/upsert_binary",
        &json!({"index_name": "t", "index_key": hex,
                "batch": {"ids": ids, "vectors_b64": common::b64_rows(&rows), "dimension": 8}}),
    );
    assert_eq!(up.status, 200, "{}", up.text);
    let r = server.post(
        "/v1/indexes/train",
        &json!({"index_name": "t", "index_key": hex, "n_lists": 8, "max_iters": 10}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let d = server.post(
        "/v1/indexes/describe",
        &json!({"index_name": "t", "index_key": hex}),
    );
    assert_eq!(d.body["is_trained"], true);
    assert_eq!(d.body["n_lists"], 8);
    // With every list probed, a trained IVF index answers exactly.
    let q = &common::vectors(1, 8, 99)[0];
    let reply = server.post(
        "/v1/vectors/query",
        &json!({"index_name": "t", "index_key": hex, "query_vectors": q, "top_k": 10, "n_probes": 8}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let expected = common::brute_force(
        ids.iter()
            .map(String::as_str)
            .zip(rows.iter().map(Vec::as_slice)),
        q,
        10,
    );
    common::assert_matches_oracle(&reply.body["results"], &expected);
    // The training status lists nothing once it is done.
    let s = server.get("/v1/indexes/training-status");
    assert_eq!(s.status, 200);
    assert_eq!(s.body["training_indexes"], json!([]));
    assert!(s.body.get("retrain_threshold").is_some());
}

#[test]
fn a_train_request_while_one_runs_is_a_conflict() {
    let server = TestServer::start();
    let hex = common::create(&server, "busy", 32);
    let rows = common::vectors(20_000, 32, 3);
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("{i}")).collect();
    let up = server.post(
        "/v1/vectors/upsert_binary",
        &json!({"index_name": "busy", "index_key": hex,
                "batch": {"ids": ids, "vectors_b64": common::b64_rows(&rows), "dimension": 32}}),
    );
    assert_eq!(up.status, 200, "{}", up.text);
    // 20,000 items start the core's own training in the background (a train request then
    // would be the 409 of its own): wait until it is done, so the first request below trains.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let d = server.post(
            "/v1/indexes/describe",
            &json!({"index_name": "busy", "index_key": hex}),
        );
        let s = server.get("/v1/indexes/training-status");
        if d.body["is_trained"] == true && s.body["training_indexes"] == json!([]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never trained itself");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let body = json!({"index_name": "busy", "index_key": hex, "n_lists": 256, "max_iters": 50, "tolerance": 0.0});
    std::thread::scope(|s| {
        let first = s.spawn(|| server.post("/v1/indexes/train", &body));
        // Wait until the first is seen training, then ask again.
        let mut second = None;
        for _ in 0..2000 {
            let status = server.get("/v1/indexes/training-status");
            if status.body["training_indexes"] == json!(["busy"]) {
                second = Some(server.post("/v1/indexes/train", &body));
                break;
            }
            if first.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let first = first.join().unwrap();
        assert_eq!(first.status, 200, "{}", first.text);
        let second = second.expect("the first training ended before it was seen running");
        assert_eq!(second.status, 409, "{}", second.text);
        assert!(second.detail().contains("training"), "{}", second.text);
    });
}

#[test]
fn an_index_created_here_trains_itself_once_it_holds_10000_vectors() {
    let server = TestServer::start();
    let hex = common::create(&server, "auto", 8);
    let rows = common::vectors(12_000, 8, 5);
    for (n, chunk) in rows.chunks(3_000).enumerate() {
        let ids: Vec<String> = (0..chunk.len()).map(|i| format!("{n}-{i}")).collect();
        let up = server.post(
            "/v1/vectors/upsert_binary",
            &json!({"index_name": "auto", "index_key": hex,
                    "batch": {"ids": ids, "vectors_b64": common::b64_rows(chunk), "dimension": 8}}),
        );
        assert_eq!(up.status, 200, "{}", up.text);
    }
    // No train request: the core trains in the background (the status lists it meanwhile);
    // polled until trained.
    let describe = || {
        server.post(
            "/v1/indexes/describe",
            &json!({"index_name": "auto", "index_key": hex}),
        )
    };
    let mut seen_training = false;
    // A deadline so that a training that never starts fails instead of hanging.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while describe().body["is_trained"] != true {
        assert!(std::time::Instant::now() < deadline, "never trained itself");
        let s = server.get("/v1/indexes/training-status");
        seen_training |= s.body["training_indexes"] == json!(["auto"]);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let d = describe();
    assert!(d.body["n_lists"].as_u64().unwrap() > 1, "{}", d.text);
    println!("seen in the training status while it trained: {seen_training}");
    // Done: the status lists nothing.
    let mut s = server.get("/v1/indexes/training-status");
    while s.body["training_indexes"] != json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the status still lists it"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        s = server.get("/v1/indexes/training-status");
    }
}
