//! Graceful shutdown: a request in flight when the server is told to stop is answered, and
//! what it wrote is durable; `/metrics` counts requests per route template, errors and
//! in-flight requests, and names no index.

use std::time::Duration;

use ciphervec::IndexKey;
use serde_json::json;

use super::common::{self, TestServer, hex_key};

fn in_flight(server: &TestServer) -> usize {
    let text = server.get("/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix("ciphervec_http_requests_in_flight "))
        .and_then(|n| n.trim().parse().ok())
        .expect("an in-flight gauge")
}

#[test]
fn a_request_in_flight_at_shutdown_is_answered_and_durable() {
    let server = TestServer::start();
    let (hex, key) = hex_key();
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "s", "index_key": hex, "dimension": 64}),
    );
    assert_eq!(r.status, 200);
    let rows = common::vectors(30_000, 64, 9);
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("{i}")).collect();
    let body = json!({"index_name": "s", "index_key": hex,
                      "batch": {"ids": ids, "vectors_b64": common::b64_rows(&rows), "dimension": 64}});
    let reply = std::thread::scope(|s| {
        let upsert = s.spawn(|| server.post("/v1/vectors/upsert_binary", &body));
        // The metrics request itself is one; the upsert is the other.
        while in_flight(&server) < 2 {
            assert!(
                !upsert.is_finished(),
                "the upsert ended before it was seen in flight"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        server.shutdown();
        upsert.join().unwrap()
    });
    assert_eq!(reply.status, 200, "{}", reply.text);
    let index = server.database().open_index("s", &key).unwrap();
    assert_eq!(index.len(), 30_000);
    let _: &IndexKey = &key;
}

#[test]
fn metrics_count_per_route_template_and_name_no_index() {
    let server = TestServer::start();
    let hex = common::create(&server, "metricsindexname", 3);
    let ok = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "metricsindexname", "index_key": hex}),
    );
    assert_eq!(ok.status, 200);
    let bad = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "metricsindexname", "index_key": hex_key().0}),
    );
    assert_eq!(bad.status, 401);
    let users = server.send_with(
        "GET",
        "/v1/indexes/metricsindexname/users",
        None,
        Some(common::API_KEY),
        &[("X-Index-Key", &hex)],
    );
    assert_eq!(users.status, 200, "{}", users.text);
    let text = server.get("/metrics").text;
    assert!(
        text.contains(
            "ciphervec_http_requests_total{endpoint=\"/v1/vectors/num_vectors\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ciphervec_http_requests_total{endpoint=\"/v1/vectors/num_vectors\",status=\"401\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ciphervec_http_request_errors_total{endpoint=\"/v1/vectors/num_vectors\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("endpoint=\"/v1/indexes/{index_name}/users\""),
        "{text}"
    );
    assert!(
        text.contains(
            "ciphervec_http_request_duration_seconds_count{endpoint=\"/v1/vectors/num_vectors\"} 2"
        ),
        "{text}"
    );
    assert!(!text.contains("metricsindexname"), "{text}");
}

fn open_handles(server: &TestServer) -> usize {
    let text = server.get("/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix("ciphervec_open_index_handles "))
        .and_then(|n| n.trim().parse().ok())
        .expect("an open-handles gauge")
}

#[test]
fn idle_handles_and_their_keys_are_dropped_and_reopened_on_demand() {
    let server = TestServer::start_with(|o| o.idle_timeout = Duration::from_millis(300));
    let hex = common::create(&server, "idle", 3);
    assert_eq!(open_handles(&server), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while open_handles(&server) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle handle was never dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The next request opens it again, with the key it carries.
    let r = server.post(
        "/v1/vectors/num_vectors",
        &json!({"index_name": "idle", "index_key": hex}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(open_handles(&server), 1);
}
