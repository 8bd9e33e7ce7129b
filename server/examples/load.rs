//! A bounded load test of `ciphervec serve` on loopback: CLIENTS threads mix queries and
//! upserts over HTTP for SECONDS against one index, then every acknowledged write is
//! checked to be present. Prints p50/p99 latency per operation and the error count.
//!
//!   cargo run --release -p ciphervec-server --example load -- [SECONDS] [CLIENTS]
//!
//! Defaults: 60 s, 16 clients; 384-dimensional vectors, 20,000 items loaded first, each
//! client doing 1 upsert of 50 new items for every 9 queries (top_k 10). The server runs in
//! this process on 127.0.0.1 over a temporary folder; requests go through the kernel's
//! loopback like any client's.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ciphervec::{Database, IndexKey};
use ciphervec_server::{ServeOptions, Server, ServiceKey};
use serde_json::{Value, json};

const DIM: usize = 384;
const PRELOAD: usize = 20_000;
const UPSERT_BATCH: usize = 50;
const API_KEY: &str = "load-test-service-key-0000000001";

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(60, |s| s.parse().expect("SECONDS"));
    let clients: usize = args.next().map_or(16, |s| s.parse().expect("CLIENTS"));

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.api_key = Some(ServiceKey::new(API_KEY).unwrap());
    let server = Server::start(db, options).unwrap();
    let base = format!("http://{}", server.addr());
    let key = IndexKey::generate();
    let hex: String = STANDARD
        .decode(key.to_base64().as_bytes())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |agent: &ureq::Agent, path: &str, body: &Value| -> (u16, Value) {
        let mut r = agent
            .post(&format!("{base}{path}"))
            .header("X-API-Key", API_KEY)
            .send_json(body)
            .expect("request");
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let (s, b) = post(
        &agent,
        "/v1/indexes/create",
        &json!({"index_name": "load", "index_key": hex, "dimension": DIM}),
    );
    assert_eq!(s, 200, "{b}");
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for start in (0..PRELOAD).step_by(5_000) {
        let ids: Vec<String> = (start..start + 5_000).map(|i| format!("pre-{i}")).collect();
        let rows = random_rows(ids.len(), start as u64);
        let (s, b) = post(
            &agent,
            "/v1/vectors/upsert_binary",
            &json!({"index_name": "load", "index_key": hex,
                    "batch": {"ids": ids, "vectors_b64": b64(&rows), "dimension": DIM}}),
        );
        assert_eq!(s, 200, "{b}");
        acked.lock().unwrap().extend(ids);
    }
    eprintln!("loaded {PRELOAD} items; {clients} clients for {seconds} s");

    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<(Vec<f64>, Vec<f64>)>> = Arc::default();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (agent, hex, acked, latencies, errors, stop) = (
                agent.clone(),
                &hex,
                acked.clone(),
                latencies.clone(),
                errors.clone(),
                stop.clone(),
            );
            let post = &post;
            scope.spawn(move || {
                let mut op = 0u64;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    op += 1;
                    let started = Instant::now();
                    if op.is_multiple_of(10) {
                        let ids: Vec<String> = (0..UPSERT_BATCH)
                            .map(|i| format!("c{client}-op{op}-{i}"))
                            .collect();
                        let rows = random_rows(UPSERT_BATCH, (client as u64) << 32 | op);
                        let (s, b) = post(
                            &agent,
                            "/v1/vectors/upsert_binary",
                            &json!({"index_name": "load", "index_key": hex,
                                    "batch": {"ids": ids, "vectors_b64": b64(&rows), "dimension": DIM}}),
                        );
                        let ms = started.elapsed().as_secs_f64() * 1e3;
                        if s == 200 {
                            acked.lock().unwrap().extend(ids);
                            latencies.lock().unwrap().1.push(ms);
                        } else {
                            errors.lock().unwrap().push(format!("upsert {s}: {b}"));
                        }
                    } else {
                        let q = random_rows(1, (client as u64) << 40 | op).remove(0);
                        let (s, b) = post(
                            &agent,
                            "/v1/vectors/query",
                            &json!({"index_name": "load", "index_key": hex,
                                    "query_vectors": q, "top_k": 10}),
                        );
                        let ms = started.elapsed().as_secs_f64() * 1e3;
                        let ok = s == 200 && b["results"].as_array().is_some_and(|r| r.len() == 10);
                        if ok {
                            latencies.lock().unwrap().0.push(ms);
                        } else {
                            errors.lock().unwrap().push(format!("query {s}: {b}"));
                        }
                    }
                }
            });
        }
    });
    let errors = errors.lock().unwrap();
    let (mut queries, mut upserts) = std::mem::take(&mut *latencies.lock().unwrap());
    let (s, b) = post(
        &agent,
        "/v1/vectors/list_ids",
        &json!({"index_name": "load", "index_key": hex}),
    );
    assert_eq!(s, 200);
    let stored: BTreeSet<String> = serde_json::from_value(b["ids"].clone()).unwrap();
    let acked = acked.lock().unwrap();
    let missing = acked.difference(&stored).count();
    println!(
        "clients {clients}, {seconds} s: {} queries ({:.0}/s) p50 {:.1} ms p99 {:.1} ms; {} upserts of {UPSERT_BATCH} ({:.0}/s) p50 {:.1} ms p99 {:.1} ms; errors {}; acknowledged {} stored {} missing {missing}",
        queries.len(),
        queries.len() as f64 / seconds as f64,
        percentile(&mut queries, 0.50),
        percentile(&mut queries, 0.99),
        upserts.len(),
        upserts.len() as f64 / seconds as f64,
        percentile(&mut upserts, 0.50),
        percentile(&mut upserts, 0.99),
        errors.len(),
        acked.len(),
        stored.len(),
    );
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    server.shutdown();
    assert!(errors.is_empty() && missing == 0, "load test failed");
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn random_rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            (0..DIM)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect()
}

fn b64(rows: &[Vec<f32>]) -> String {
    let bytes: Vec<u8> = rows
        .iter()
        .flat_map(|r| r.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    STANDARD.encode(bytes)
}
