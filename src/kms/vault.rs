//! HashiCorp Vault / OpenBao transit envelope encryption (feature `vault`):
//! `POST /v1/<mount>/datakey/plaintext/<key>` and `POST /v1/<mount>/decrypt/<key>`.
//!
//! The transit key must be created with `derived=true`: the index name is sent as the
//! derivation context, so a wrapped key only unwraps for the index it was generated for.
//! The token needs `update` on both paths.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Kms, WrappedKey, key_from_service};
use crate::crypto::key::IndexKey;
use crate::error::{Error, KeyServiceFailure, Result};

/// A Vault or OpenBao transit client bound to one transit key.
pub struct VaultTransit {
    agent: ureq::Agent,
    address: String,
    token: Zeroizing<String>,
    mount: String,
    key_name: String,
}

impl VaultTransit {
    /// A client of transit key `key_name` on the server at `address` (e.g.
    /// `https://vault.internal:8200`), authenticated by `token`, with the engine mounted at
    /// `transit` and a 10 s timeout.
    pub fn new(
        address: impl Into<String>,
        token: impl Into<String>,
        key_name: impl Into<String>,
    ) -> VaultTransit {
        VaultTransit {
            agent: agent(Duration::from_secs(10)),
            address: address.into().trim_end_matches('/').to_owned(),
            token: Zeroizing::new(token.into()),
            mount: "transit".to_owned(),
            key_name: key_name.into(),
        }
    }

    /// The transit engine's mount path, when not `transit`.
    pub fn mount(mut self, mount: impl Into<String>) -> VaultTransit {
        self.mount = mount.into().trim_matches('/').to_owned();
        self
    }

    /// The time allowed for one request.
    pub fn timeout(mut self, timeout: Duration) -> VaultTransit {
        self.agent = agent(timeout);
        self
    }

    /// Posts `body` to `operation` (`datakey/plaintext` or `decrypt`) and returns `data`.
    fn post(&self, operation: &str, body: &Value) -> Result<Value> {
        super::check_transport(&self.address)?;
        let url = format!(
            "{}/v1/{}/{}/{}",
            self.address, self.mount, operation, self.key_name
        );
        let mut response = self
            .agent
            .post(&url)
            .header("X-Vault-Token", self.token.as_str())
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| Error::key_service(KeyServiceFailure::Unreachable, e.to_string()))?;
        let status = response.status().as_u16();
        // The body of a data-key answer holds the key in base64: wiped when dropped.
        let text = Zeroizing::new(
            response
                .body_mut()
                .read_to_string()
                .map_err(|e| Error::key_service(KeyServiceFailure::Unreachable, e.to_string()))?,
        );
        if !(200..300).contains(&status) {
            // 5xx: sealed, standby or overloaded, so not an answer about this key.
            let kind = if status >= 500 {
                KeyServiceFailure::Unreachable
            } else {
                KeyServiceFailure::Refused
            };
            return Err(Error::key_service(kind, vault_errors(status, &text)));
        }
        let mut answer: Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
        Ok(answer
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }
}

impl Kms for VaultTransit {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        let body = json!({ "bits": 256, "context": STANDARD.encode(context_bytes(context)) });
        let mut data = self.post("datakey/plaintext", &body)?;
        let key = decode_plaintext(&mut data)?;
        let wrapped = data
            .get("ciphertext")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no ciphertext"))?;
        Ok((
            key,
            WrappedKey::new(wrapped).map_err(|_| bad("bad ciphertext"))?,
        ))
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        let body = json!({
            "ciphertext": wrapped.as_str(),
            "context": STANDARD.encode(context_bytes(context)),
        });
        let mut data = self.post("decrypt", &body)?;
        decode_plaintext(&mut data)
    }
}

/// The derivation context bound to a wrapped key for index `index_name`.
fn context_bytes(index_name: &str) -> Vec<u8> {
    format!("ciphervec:index:{index_name}").into_bytes()
}

/// Takes `data.plaintext` (base64 of the key) out of a response and wipes the text.
fn decode_plaintext(data: &mut Value) -> Result<IndexKey> {
    let text = match data.get_mut("plaintext").map(Value::take) {
        Some(Value::String(text)) => Zeroizing::new(text),
        _ => return Err(bad("no plaintext")),
    };
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.as_bytes())
            .map_err(|_| bad("bad base64"))?,
    );
    key_from_service(&bytes)
}

fn bad(what: &str) -> Error {
    Error::key_service(KeyServiceFailure::BadResponse, what)
}

/// The server's `errors` list, which names the problem without echoing request data.
fn vault_errors(status: u16, body: &str) -> String {
    let errors = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|v| v.as_array().cloned())
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("HTTP {status}: {errors}")
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A redirect would carry the token elsewhere.
        .max_redirects(0)
        .build()
        .into()
}
