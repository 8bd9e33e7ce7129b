//! Who is calling: the `X-API-Key` header checked against the service API key, or a user key
//! (`cdbk_…`) that carries a user's id and key. A user key is only a claim here: what it
//! may do is decided by the core's grants when the index is opened with it.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciphervec::IndexKey;
use hmac::{KeyInit, Mac, SimpleHmac};
use sha3::{Digest, Sha3_256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::ApiError;
use crate::state::AppState;

/// The header both SDKs send.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The service API key, from `--api-key-file` or `CIPHERVEC_API_KEY`; wiped on drop.
pub struct ServiceKey(Zeroizing<String>);

impl ServiceKey {
    /// Wraps the key text (surrounding whitespace removed).
    ///
    /// # Errors
    /// When it is shorter than 16 characters: a short shared secret is guessable.
    pub fn new(text: &str) -> Result<ServiceKey, String> {
        let text = text.trim();
        if text.chars().count() < 16 {
            return Err("the API key must be at least 16 characters".into());
        }
        Ok(ServiceKey(Zeroizing::new(text.to_owned())))
    }

    /// Compares in time independent of where the texts differ (both are hashed first).
    fn matches(&self, presented: &str) -> bool {
        let a = Sha3_256::digest(self.0.as_bytes());
        let b = Sha3_256::digest(presented.as_bytes());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }

    /// The key that tags user keys minted under this service key.
    fn tag_key(&self) -> Zeroizing<[u8; 32]> {
        let mut h = Sha3_256::new();
        h.update(b"ciphervec-server/user-key-tag/v1");
        h.update(self.0.as_bytes());
        Zeroizing::new(h.finalize().into())
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceKey(REDACTED)")
    }
}

/// The caller of one request.
pub enum Caller {
    /// The service key (or any caller when the server runs without one): every operation.
    Service,
    /// A user key: data operations on the indexes its grant opens.
    User(UserKey),
}

impl Caller {
    /// Index lifecycle and user management need the service key.
    ///
    /// # Errors
    /// 403 for a user key.
    pub fn require_service(&self) -> Result<(), ApiError> {
        match self {
            Caller::Service => Ok(()),
            Caller::User(_) => Err(ApiError::forbidden(
                "this operation requires the service API key, not a user key",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(service_key) = state.service_key.as_deref() else {
            return Ok(Caller::Service);
        };
        let presented = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::unauthorized("API Key is required"))?;
        if service_key.matches(presented) {
            return Ok(Caller::Service);
        }
        if presented.starts_with(USER_KEY_PREFIX) {
            return UserKey::decode(presented, service_key)
                .map(Caller::User)
                .ok_or_else(|| ApiError::unauthorized("Invalid user API key"));
        }
        Err(ApiError::unauthorized("Invalid API Key"))
    }
}

/// The caller of an endpoint CyborgDB serves without authentication (the training status:
/// its OpenAPI document declares no key, and the JS SDK 0.14 sends none): no key is
/// allowed, but a key that is sent must be valid.
pub struct OptionalCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for OptionalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<OptionalCaller, ApiError> {
        if parts.headers.get(API_KEY_HEADER).is_none() {
            return Ok(OptionalCaller(None));
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| OptionalCaller(Some(c)))
    }
}

const USER_KEY_PREFIX: &str = "cdbk_1_";
const USER_ID_LEN: usize = 16;
const TAG_LEN: usize = 8;

/// A user's id and key as a `cdbk_1_` API key carries them:
/// `cdbk_1_<base64url(user_id(16) || user_key(32) || tag(8))>`, CyborgDB's layout. The tag
/// (HMAC-SHA3-256 under a key derived from the service key) rejects foreign or mistyped
/// keys cheaply; the grant the core keeps is what opens the index.
pub struct UserKey {
    /// The user's id as the core's grants name it: 32 hex digits.
    pub user_id: String,
    /// The user's key.
    pub key: IndexKey,
}

impl UserKey {
    /// A new user: a random id and key.
    pub fn generate() -> UserKey {
        let id: [u8; USER_ID_LEN] = rand::random();
        UserKey {
            user_id: hex(&id),
            key: IndexKey::generate(),
        }
    }

    /// The `cdbk_1_…` text handed to the user once.
    pub fn encode(&self, service_key: &ServiceKey) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(USER_ID_LEN + 32 + TAG_LEN));
        raw.extend_from_slice(&unhex(&self.user_id).unwrap_or_default());
        let key = base64::engine::general_purpose::STANDARD
            .decode(self.key.to_base64().as_bytes())
            .map(Zeroizing::new)
            .unwrap_or_default();
        raw.extend_from_slice(&key);
        let tag = tag(service_key, &raw);
        raw.extend_from_slice(&tag);
        Zeroizing::new(format!(
            "{USER_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&*raw)
        ))
    }

    fn decode(text: &str, service_key: &ServiceKey) -> Option<UserKey> {
        let body = text.strip_prefix(USER_KEY_PREFIX)?;
        let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(body).ok()?);
        if raw.len() != USER_ID_LEN + 32 + TAG_LEN {
            return None;
        }
        let (signed, presented_tag) = raw.split_at(USER_ID_LEN + 32);
        let expected = tag(service_key, signed);
        let diff = expected
            .iter()
            .zip(presented_tag)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        if diff != 0 {
            return None;
        }
        let key = IndexKey::from_bytes(&signed[USER_ID_LEN..]).ok()?;
        Some(UserKey {
            user_id: hex(&signed[..USER_ID_LEN]),
            key,
        })
    }
}

fn tag(service_key: &ServiceKey, signed: &[u8]) -> [u8; TAG_LEN] {
    let tag_key = service_key.tag_key();
    let mut mac = <SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(&*tag_key)
        .expect("HMAC takes a key of any length");
    mac.update(b"1");
    mac.update(signed);
    let mut full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    full.zeroize();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_key_round_trips_and_a_foreign_one_does_not() {
        let service = ServiceKey::new("service-key-for-tests-0001").unwrap();
        let other = ServiceKey::new("service-key-for-tests-0002").unwrap();
        let user = UserKey::generate();
        let text = user.encode(&service);
        assert!(text.starts_with("cdbk_1_"));
        let back = UserKey::decode(&text, &service).unwrap();
        assert_eq!(back.user_id, user.user_id);
        assert_eq!(*back.key.to_base64(), *user.key.to_base64());
        assert!(UserKey::decode(&text, &other).is_none());
        let mut flipped = text.to_string();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert!(UserKey::decode(&flipped, &service).is_none());
        assert!(UserKey::decode("cdbk_1_", &service).is_none());
    }

    #[test]
    fn service_keys_compare_exactly_and_short_ones_are_refused() {
        let k = ServiceKey::new("  0123456789abcdef  ").unwrap();
        assert!(k.matches("0123456789abcdef"));
        assert!(!k.matches("0123456789abcdeF"));
        assert!(!k.matches(""));
        assert!(ServiceKey::new("short").is_err());
        assert_eq!(format!("{k:?}"), "ServiceKey(REDACTED)");
    }
}
