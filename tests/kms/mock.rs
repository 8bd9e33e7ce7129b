//! Driving the repository's Cloud KMS and Key Vault servers (`scripts/kms_mock/`) from tests:
//! their admin calls (keys, versions, states, as the real services' REST APIs make them) and
//! their test hooks (injected 429/503 answers, redirects, token lifetimes and revocation,
//! the request log).

use serde_json::{Value, json};

/// One mock server at `base` (`http://127.0.0.1:<port>`).
pub struct Mock {
    pub base: String,
}

/// One logged request: method, path with query, status answered.
#[derive(Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Mock {
    pub fn new(base: &str) -> Mock {
        Mock {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends `method path` with a JSON body and an optional bearer token; the JSON answer.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let authorization = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
        let mut response = if method == "GET" {
            let mut request = agent.get(&url);
            if token.is_some() {
                request = request.header("Authorization", &authorization);
            }
            request.call().unwrap()
        } else {
            let mut request = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Content-Type", "application/json");
            if token.is_some() {
                request = request.header("Authorization", &authorization);
            }
            agent.run(request.body(body.to_string()).unwrap()).unwrap()
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The next requests whose path contains `matching` get these statuses, one each.
    pub fn fault(&self, matching: &str, statuses: &[u16]) {
        self.call(
            "POST",
            "/_test/fault",
            None,
            &json!({"match": matching, "statuses": statuses, "retry_after": "0"}),
        );
    }

    /// Every request whose path contains `matching` is answered 307 to the landing hook.
    pub fn redirect(&self, matching: &str) {
        let location = format!("{}/_test/landing", self.base);
        self.call(
            "POST",
            "/_test/redirect",
            None,
            &json!({"match": matching, "location": location}),
        );
    }

    /// Tokens issued at paths containing `matching` live `seconds`.
    pub fn token_lifetime(&self, matching: &str, seconds: u64) {
        self.call(
            "POST",
            "/_test/lifetime",
            None,
            &json!({"match": matching, "seconds": seconds}),
        );
    }

    /// Tokens issued at paths containing `matching` expire now (the client still thinks them
    /// valid).
    pub fn revoke_tokens(&self, matching: &str) {
        self.call("POST", "/_test/revoke", None, &json!({"match": matching}));
    }

    /// The requests whose path contains `matching`, in order.
    pub fn log(&self, matching: &str) -> Vec<Logged> {
        let answer = self.call(
            "GET",
            &format!("/_test/log?match={}", encode(matching)),
            None,
            &Value::Null,
        );
        answer["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| Logged {
                method: entry["method"].as_str().unwrap().to_owned(),
                path: entry["path"].as_str().unwrap().to_owned(),
                status: entry["status"].as_u64().unwrap() as u16,
            })
            .collect()
    }

    /// How many requests reached the redirects' target.
    pub fn landing_hits(&self) -> u64 {
        self.call("GET", "/_test/log?match=", None, &Value::Null)["landing_hits"]
            .as_u64()
            .unwrap()
    }
}

/// Percent-encoding of a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `prefix` with a suffix unique to this run, for names on a server that outlives the test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
