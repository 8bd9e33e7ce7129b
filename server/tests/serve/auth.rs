//! Who may call: the service API key on every endpoint but `/v1/health` and the training
//! status, 401 without it or
//! with a wrong one (and with a forged user key), the server refusing to run without a key
//! off loopback (users' `cdbk_` keys: `users.rs`).

use ciphervec::Database;
use ciphervec_server::{ServeOptions, Server, StartError};
use serde_json::json;

use super::common::{self, TestServer};

#[test]
fn every_endpoint_but_health_and_training_status_needs_the_api_key() {
    let server = TestServer::start();
    let health = server.send("GET", "/v1/health", None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "healthy");
    assert!(health.body["version"].is_string() && health.body["api_version"] == "v1");
    assert!(
        health.request_id.is_some(),
        "every answer carries x-request-id"
    );

    let hex = common::create(&server, "i", 3);
    let body = json!({"index_name": "i", "index_key": hex})
        .to_string()
        .into_bytes();
    for (method, path) in [
        ("GET", "/v1/indexes/list"),
        ("POST", "/v1/indexes/describe"),
        ("POST", "/v1/indexes/create"),
        ("POST", "/v1/indexes/delete"),
        ("POST", "/v1/vectors/list_ids"),
        ("POST", "/v1/vectors/num_vectors"),
    ] {
        let payload = (method == "POST").then(|| body.clone());
        let none = server.send(method, path, payload.clone(), None);
        assert_eq!(none.status, 401, "{path} without a key: {}", none.text);
        assert_eq!(none.detail(), "API Key is required");
        let wrong = server.send(
            method,
            path,
            payload.clone(),
            Some("not-the-key-at-all-000"),
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong key");
        assert_eq!(wrong.detail(), "Invalid API Key");
        let forged = server.send(
            method,
            path,
            payload,
            Some(
                "cdbk_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        );
        assert_eq!(forged.status, 401, "{path} with a forged user key");
    }
    // The training status needs no key (as CyborgDB's OpenAPI declares; the JS SDK sends
    // none), but a key that is sent must be valid.
    assert_eq!(
        server
            .send("GET", "/v1/indexes/training-status", None, None)
            .status,
        200
    );
    let wrong = server.send(
        "GET",
        "/v1/indexes/training-status",
        None,
        Some("not-the-key-at-all-000"),
    );
    assert_eq!(wrong.status, 401);
    // The index is still there.
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], json!(["i"]));
}

#[test]
fn without_a_key_the_server_runs_only_on_loopback() {
    let db = Database::in_memory();
    let options = ServeOptions::new("0.0.0.0:0".parse().unwrap());
    match Server::start(db, options) {
        Err(StartError::Insecure(_)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("served without a key off loopback"),
    }
    // On loopback without a key every call is allowed.
    let server = TestServer::start_with(|o| o.api_key = None);
    let r = server.send("GET", "/v1/indexes/list", None, None);
    assert_eq!(r.status, 200, "{}", r.text);
}
