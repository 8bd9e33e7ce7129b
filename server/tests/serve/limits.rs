//! Bounded requests: bodies up to the limit (64 MiB by default) are read, one byte more is
//! 413; a configured smaller limit holds too.

use serde_json::json;

use super::common::{self, API_KEY, TestServer};

/// A valid JSON request padded with trailing whitespace to exactly `size` bytes (cheap to
/// parse, so the test measures the limit and not the engine).
fn padded(body: &serde_json::Value, size: usize) -> Vec<u8> {
    let mut bytes = body.to_string().into_bytes();
    assert!(bytes.len() < size);
    bytes.resize(size, b' ');
    bytes
}

#[test]
fn the_default_limit_reads_64_mib_and_refuses_one_byte_more() {
    let server = TestServer::start();
    let hex = common::create(&server, "big", 4);
    let body = json!({"index_name": "big", "index_key": hex, "items": [{"id": "a", "vector": [1, 2, 3, 4]}]});
    let limit = 64 << 20;
    let r = server.send(
        "POST",
        "/v1/vectors/upsert",
        Some(padded(&body, limit)),
        Some(API_KEY),
    );
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);
    let r = server.send(
        "POST",
        "/v1/vectors/upsert",
        Some(padded(&body, limit + 1)),
        Some(API_KEY),
    );
    assert_eq!(r.status, 413, "{}", &r.text[..r.text.len().min(300)]);
    assert!(r.detail().contains("limit"), "{}", r.text);
}

#[test]
fn a_configured_limit_holds() {
    let server = TestServer::start_with(|o| o.max_body_bytes = 4096);
    let hex = common::create(&server, "small", 4);
    let rows = common::vectors(200, 4, 1);
    let body = json!({"index_name": "small", "index_key": hex, "items":
        rows.iter().enumerate().map(|(i, v)| json!({"id": i.to_string(), "vector": v})).collect::<Vec<_>>()});
    let r = server.post("/v1/vectors/upsert", &body);
    assert_eq!(r.status, 413, "{}", r.text);
    let r = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "small", "index_key": hex}),
    );
    assert_eq!(r.body["result"], 0);
}
