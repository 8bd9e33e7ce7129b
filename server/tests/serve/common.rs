//! The harness: a server on a loopback port over a temporary directory, a blocking HTTP
//! client, the log the server wrote, and the oracles (brute force over the same vectors, a
//! metadata filter evaluator, and the core itself opened read-only on the same directory).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ciphervec::{Database, IndexKey};
use ciphervec_server::{ServeOptions, Server, ServiceKey};
use serde_json::{Value, json};

/// The service API key every test server uses (unless a test says otherwise).
pub const API_KEY: &str = "test-service-key-0123456789abcdef";

/// Everything the servers of this test binary logged (one global subscriber per process).
pub fn logs() -> String {
    let buf = log_buffer().lock().unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running server and its database folder.
pub struct TestServer {
    server: Mutex<Option<Server>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The database folder.
    pub path: std::path::PathBuf,
    /// The folder's owner (kept until the test ends), when this server made it.
    _dir: Option<tempfile::TempDir>,
    agent: ureq::Agent,
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// The `x-request-id` header.
    pub request_id: Option<String>,
}

impl Reply {
    /// The `detail` text of an error body.
    pub fn detail(&self) -> String {
        match &self.body["detail"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl TestServer {
    /// A server with [`API_KEY`] on a fresh folder.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server on a fresh folder, options adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(&mut ServeOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer::start_on(dir.path(), adjust);
        server._dir = Some(dir);
        server
    }

    /// A server on the folder at `path` (another server's, for replicas), options adjusted
    /// by `adjust`.
    pub fn start_on(path: &std::path::Path, adjust: impl FnOnce(&mut ServeOptions)) -> TestServer {
        log_buffer();
        let db = Database::open(path).unwrap();
        let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
        options.api_key = Some(ServiceKey::new(API_KEY).unwrap());
        options.shutdown_grace = Duration::from_secs(10);
        adjust(&mut options);
        let server = Server::start(db, options).unwrap();
        let base = format!("http://{}", server.addr());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        TestServer {
            server: Mutex::new(Some(server)),
            base,
            path: path.to_owned(),
            _dir: None,
            agent,
        }
    }

    /// POST `body` to `path` with the service key.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            Some(body.to_string().into_bytes()),
            Some(API_KEY),
        )
    }

    /// GET `path` with the service key.
    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, Some(API_KEY))
    }

    /// A request with an explicit API key (or none) and raw body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        key: Option<&str>,
    ) -> Reply {
        self.send_with(method, path, body, key, &[])
    }

    /// As [`TestServer::send`], with extra headers.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        key: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(key) = key {
            builder = builder.header("X-API-Key", key);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = match body {
            Some(bytes) => {
                let request = builder
                    .header("Content-Type", "application/json")
                    .body(bytes)
                    .unwrap();
                self.agent.run(request)
            }
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("x-request-id");
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            text,
            request_id,
        }
    }

    /// The database this server serves, opened again in this process (for the core's own
    /// answers, read-only: the server holds the writer lock).
    pub fn database(&self) -> Database {
        Database::open(&self.path).unwrap()
    }

    /// Stops the server, letting in-flight requests finish.
    pub fn shutdown(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.shutdown();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A random index key as the SDKs send it (64 hex digits) and as the core takes it.
pub fn hex_key() -> (String, IndexKey) {
    let raw: [u8; 32] = rand::random();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    (hex, IndexKey::from_bytes(&raw).unwrap())
}

/// Creates `name` with `dimension` (Euclidean, IVF-Flat) and returns its hex key.
pub fn create(server: &TestServer, name: &str, dimension: usize) -> String {
    let (hex, _) = hex_key();
    let reply = server.post(
        "/v1/indexes/create",
        &json!({"index_name": name, "index_key": hex, "dimension": dimension}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    hex
}

/// Deterministic pseudo-random vectors (a small LCG, so that tests need no RNG crate state).
pub fn vectors(n: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            (0..dimension)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

/// Little-endian f32 rows, base64 (as numpy's `<f4` `tobytes()` and the SDKs send them).
pub fn b64_rows(rows: &[Vec<f32>]) -> String {
    let bytes: Vec<u8> = rows
        .iter()
        .flat_map(|r| r.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    STANDARD.encode(bytes)
}

/// Euclidean distance.
pub fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// The `k` nearest of `items` to `q` by brute force, as (id, distance), closest first (ties
/// by id).
pub fn brute_force<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    q: &[f32],
    k: usize,
) -> Vec<(String, f32)> {
    let mut all: Vec<(String, f32)> = items
        .into_iter()
        .map(|(id, v)| (id.to_owned(), euclidean(v, q)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Holds a query's hits to the brute-force answer: the same distances in order (within
/// float tolerance), and the same ids wherever the distance is not tied.
pub fn assert_matches_oracle(hits: &Value, expected: &[(String, f32)]) {
    let hits = hits.as_array().expect("a list of hits");
    assert_eq!(hits.len(), expected.len(), "{hits:?}");
    for (i, (hit, (id, distance))) in hits.iter().zip(expected).enumerate() {
        let got = hit["distance"].as_f64().expect("distance") as f32;
        assert!(
            (got - distance).abs() <= 1e-4 * (1.0 + distance.abs()),
            "hit {i}: distance {got} != {distance}"
        );
        let tied = expected
            .iter()
            .filter(|(_, d)| (d - distance).abs() <= 1e-5)
            .count()
            > 1;
        if !tied {
            assert_eq!(hit["id"], json!(id), "hit {i}");
        }
    }
}

/// Whether `metadata` satisfies `filter`: the oracle for the operators the tests use
/// (`$eq $ne $gt $gte $lt $lte $in $nin`, bare values, `$and`, `$or`), flat fields only.
pub fn matches(metadata: &Value, filter: &Value) -> bool {
    let Value::Object(conditions) = filter else {
        return false;
    };
    conditions.iter().all(|(field, cond)| match field.as_str() {
        "$and" => cond
            .as_array()
            .unwrap()
            .iter()
            .all(|f| matches(metadata, f)),
        "$or" => cond
            .as_array()
            .unwrap()
            .iter()
            .any(|f| matches(metadata, f)),
        _ => {
            let value = metadata.get(field);
            match cond {
                Value::Object(ops) => ops.iter().all(|(op, arg)| compare(value, op, arg)),
                bare => value == Some(bare),
            }
        }
    })
}

fn compare(value: Option<&Value>, op: &str, arg: &Value) -> bool {
    let num = |v: &Value| v.as_f64();
    match op {
        "$eq" => value == Some(arg),
        "$ne" => value != Some(arg),
        "$in" => value.is_some_and(|v| arg.as_array().unwrap().contains(v)),
        "$nin" => !value.is_some_and(|v| arg.as_array().unwrap().contains(v)),
        _ => {
            let (Some(a), Some(b)) = (value.and_then(num), num(arg)) else {
                return false;
            };
            match op {
                "$gt" => a > b,
                "$gte" => a >= b,
                "$lt" => a < b,
                "$lte" => a <= b,
                other => panic!("the oracle does not know {other}"),
            }
        }
    }
}
