//! Users (`cdbk_` keys) over HTTP: a user created with read or read+write queries as the
//! owner does (held to brute force), a read user's write is 403, a deleted user's key is
//! refused, the list shows each user's permissions, user management needs the service key,
//! and no user key, user id or index key reaches the log or an error body.

use serde_json::{Value, json};

use super::common::{self, API_KEY, TestServer};

const DIM: usize = 8;

fn create_user(server: &TestServer, name: &str, hex: &str, permissions: Value) -> (u16, Value) {
    let r = server.post(
        &format!("/v1/indexes/{name}/users"),
        &json!({"permissions": permissions, "index_key": hex}),
    );
    (r.status, r.body)
}

fn as_user(server: &TestServer, key: &str, path: &str, body: Value) -> common::Reply {
    server.send("POST", path, Some(body.to_string().into_bytes()), Some(key))
}

fn list(server: &TestServer, name: &str, hex: &str) -> common::Reply {
    server.send_with(
        "GET",
        &format!("/v1/indexes/{name}/users"),
        None,
        Some(API_KEY),
        &[("X-Index-Key", hex)],
    )
}

fn delete(server: &TestServer, name: &str, hex: &str, user: &str) -> common::Reply {
    server.send_with(
        "DELETE",
        &format!("/v1/indexes/{name}/users/{user}"),
        None,
        Some(API_KEY),
        &[("X-Index-Key", hex)],
    )
}

fn upsert_items(ids: std::ops::Range<usize>, rows: &[Vec<f32>]) -> Vec<Value> {
    ids.map(|i| json!({"id": format!("v{i}"), "vector": rows[i]}))
        .collect()
}

#[test]
fn users_query_write_by_scope_list_and_are_revoked() {
    let server = TestServer::start();
    let hex = common::create(&server, "docs", DIM);
    let rows = common::vectors(60, DIM, 7);
    let r = server.post(
        "/v1/vectors/upsert",
        &json!({"index_name": "docs", "index_key": hex, "items": upsert_items(0..50, &rows)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let (status, reader) = create_user(&server, "docs", &hex, json!(["read"]));
    assert_eq!(status, 200, "{reader}");
    let (status, writer) = create_user(&server, "docs", &hex, json!(["write", "read"]));
    assert_eq!(status, 200, "{writer}");
    let reader_key = reader["api_key"].as_str().unwrap().to_owned();
    let writer_key = writer["api_key"].as_str().unwrap().to_owned();
    let reader_id = reader["user_id"].as_str().unwrap().to_owned();
    let writer_id = writer["user_id"].as_str().unwrap().to_owned();
    assert!(reader_key.starts_with("cdbk_1_") && writer_key.starts_with("cdbk_1_"));
    assert!(reader_id.len() == 32 && reader_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(reader_id, writer_id);

    // The reader queries with no index key (as the SDK's user client does): brute force.
    let query = &rows[3];
    let r = as_user(
        &server,
        &reader_key,
        "/v1/vectors/query",
        json!({"index_name": "docs", "query_vectors": query, "top_k": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let expected = common::brute_force(
        ids.iter()
            .map(String::as_str)
            .zip(rows[..50].iter().map(Vec::as_slice)),
        query,
        5,
    );
    common::assert_matches_oracle(&r.body["results"], &expected);

    // A read user's write is 403, and changes nothing.
    for path in ["/v1/vectors/upsert", "/v1/vectors/delete"] {
        let body = if path.ends_with("upsert") {
            json!({"index_name": "docs", "items": upsert_items(50..51, &rows)})
        } else {
            json!({"index_name": "docs", "ids": ["v1"]})
        };
        let r = as_user(&server, &reader_key, path, body);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }
    // A user key cannot manage users or indexes.
    let r = as_user(
        &server,
        &writer_key,
        "/v1/indexes/docs/users",
        json!({"permissions": ["read"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = as_user(
        &server,
        &writer_key,
        "/v1/indexes/delete",
        json!({"index_name": "docs"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);

    // The writer writes (while the owner's handle is kept too), the owner sees it.
    let r = as_user(
        &server,
        &writer_key,
        "/v1/vectors/upsert",
        json!({"index_name": "docs", "items": upsert_items(50..52, &rows)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "docs", "index_key": hex}),
    );
    assert_eq!(r.body["result"], 52, "{}", r.text);
    // The reader sees the writer's items after its refresh.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = as_user(
        &server,
        &reader_key,
        "/v1/vectors/get",
        json!({"index_name": "docs", "ids": ["v51"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["id"], "v51", "{}", r.text);

    // The list shows both, with their permissions.
    let r = list(&server, "docs", &hex);
    assert_eq!(r.status, 200, "{}", r.text);
    let mut listed: Vec<(String, Value)> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user_id"].as_str().unwrap().to_owned(),
                u["permissions"].clone(),
            )
        })
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (reader_id.clone(), json!(["read"])),
        (writer_id.clone(), json!(["read", "write"])),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);
    // Listing needs the index key.
    let r = server.send("GET", "/v1/indexes/docs/users", None, Some(API_KEY));
    assert_eq!(r.status, 401, "{}", r.text);
    let r = list(&server, "docs", &common::hex_key().0);
    assert_eq!(r.status, 401, "{}", r.text);

    // Delete the reader: its key is refused from then on; the writer's still works.
    let r = delete(&server, "docs", &hex, &reader_id);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = as_user(
        &server,
        &reader_key,
        "/v1/indexes/describe",
        json!({"index_name": "docs"}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = as_user(
        &server,
        &writer_key,
        "/v1/vectors/num_vectors",
        json!({"index_name": "docs"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"], 52);
    let r = delete(&server, "docs", &hex, &reader_id);
    assert_eq!(r.status, 404, "{}", r.text);
    let r = list(&server, "docs", &hex);
    assert_eq!(r.body["users"].as_array().unwrap().len(), 1, "{}", r.text);

    // A user key opens only its own index.
    let other = common::create(&server, "other", DIM);
    let r = as_user(
        &server,
        &writer_key,
        "/v1/indexes/describe",
        json!({"index_name": "other"}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    drop(other);

    // Secrets: no user key, user id or index key in the log or an error body.
    let logs = common::logs();
    for secret in [&reader_key, &writer_key, &reader_id, &writer_id, &hex] {
        assert!(!logs.contains(secret.as_str()), "the log holds a secret");
    }
    assert!(logs.contains("/v1/indexes/{index_name}/users"), "{logs}");
}

#[test]
fn permissions_are_checked_and_an_index_without_dimension_has_no_users_yet() {
    let server = TestServer::start();
    let hex = common::create(&server, "p", DIM);
    for bad in [
        json!([]),
        json!(["write"]),
        json!(["admin"]),
        json!(["read", "x"]),
    ] {
        let (status, body) = create_user(&server, "p", &hex, bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, body) = create_user(&server, "p", &hex, json!(["write"]));
    assert!(
        body["detail"].as_str().unwrap().contains("write-only"),
        "{body}"
    );
    // Without the index key: 401; a wrong one: 401; no such index: 404.
    let r = server.post("/v1/indexes/p/users", &json!({"permissions": ["read"]}));
    assert_eq!(r.status, 401, "{}", r.text);
    let (status, _) = create_user(&server, "p", &common::hex_key().0, json!(["read"]));
    assert_eq!(status, 401);
    let (status, _) = create_user(&server, "nope", &hex, json!(["read"]));
    assert_eq!(status, 404);
    // Without the service key: 401.
    let r = server.send(
        "POST",
        "/v1/indexes/p/users",
        Some(
            json!({"permissions": ["read"], "index_key": hex})
                .to_string()
                .into_bytes(),
        ),
        None,
    );
    assert_eq!(r.status, 401);
    // No users were granted by any of these.
    let r = list(&server, "p", &hex);
    assert_eq!(r.body, json!({"users": []}), "{}", r.text);

    // An index created without a dimension (the documented cURL call) is a placeholder
    // until its first upsert: 409 for users, an empty list.
    let (hex2, _) = common::hex_key();
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "nodim", "index_key": hex2}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, body) = create_user(&server, "nodim", &hex2, json!(["read"]));
    assert_eq!(status, 409, "{body}");
    let r = list(&server, "nodim", &hex2);
    assert_eq!(r.body, json!({"users": []}), "{}", r.text);

    // Without a service key there is no user key to mint.
    let open = TestServer::start_with(|o| o.api_key = None);
    let hex3 = common::create(&open, "q", DIM);
    let (status, body) = create_user(&open, "q", &hex3, json!(["read"]));
    assert_eq!(status, 400, "{body}");
}
