//! Index keys as requests carry them (64 hex digits as both SDKs send, or base64 as
//! `openssl rand -base64 32` writes), and their fingerprints: the handle cache is keyed by a
//! salted digest of the key, never by the key.

use std::fmt;

use ciphervec::IndexKey;
use serde::{Deserialize, Deserializer};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

use crate::error::ApiError;

/// The text of an index key from a request body or header; wiped on drop, redacted in
/// `Debug`.
#[derive(Clone)]
pub struct KeyText(Zeroizing<String>);

impl KeyText {
    /// Wraps header or body text.
    pub fn new(text: String) -> KeyText {
        KeyText(Zeroizing::new(text))
    }

    /// The key: 64 hex digits, or base64 of 32 bytes.
    ///
    /// # Errors
    /// 400 when it is neither.
    pub fn parse(&self) -> Result<IndexKey, ApiError> {
        let text = self.0.trim();
        let parsed = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            IndexKey::from_hex(text)
        } else {
            IndexKey::from_base64(text)
        };
        parsed.map_err(|_| {
            ApiError::bad_request(
                "index_key must be 32 bytes as 64 hex digits (as the SDKs send it) or as base64",
            )
        })
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyText(REDACTED)")
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        String::deserialize(d).map(KeyText::new)
    }
}

/// The key of an index operation, required.
///
/// # Errors
/// 401 when the request has none (as CyborgDB's service answers a keyless request on an
/// index whose key the client holds), 400 when it does not parse.
pub fn required(key: Option<&KeyText>) -> Result<IndexKey, ApiError> {
    match key {
        Some(text) => text.parse(),
        None => Err(ApiError::unauthorized(
            "index_key is required: the client holds this index's key",
        )),
    }
}

/// A salted digest that tells keys apart without revealing them: 16 bytes of
/// SHA3-256(label || salt || key), with a salt drawn once per process so that a fingerprint
/// is no offline oracle for the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 16]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

/// Computes fingerprints under one process-wide salt.
pub struct Fingerprinter {
    salt: [u8; 32],
}

impl Fingerprinter {
    /// A fingerprinter with a fresh random salt.
    pub fn new() -> Fingerprinter {
        Fingerprinter {
            salt: rand::random(),
        }
    }

    /// The fingerprint of `key` (and of the user it is opened as, if any).
    pub fn of(&self, key: &IndexKey, user: Option<&str>) -> Fingerprint {
        let text = key.to_base64();
        let mut h = Sha3_256::new();
        h.update(b"ciphervec-server/handle-fingerprint/v1");
        h.update(self.salt);
        h.update(text.as_bytes());
        if let Some(user) = user {
            h.update((user.len() as u64).to_le_bytes());
            h.update(user.as_bytes());
        }
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Fingerprint(out)
    }
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_forms_give_the_same_key() {
        let key = IndexKey::generate();
        let b64 = KeyText::new(key.to_base64().to_string());
        let fp = Fingerprinter::new();
        let from_b64 = b64.parse().unwrap();
        // Hex of the same bytes, as the SDKs send it.
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.to_base64().as_bytes())
            .unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let from_hex = KeyText::new(hex.to_uppercase()).parse().unwrap();
        assert_eq!(fp.of(&from_b64, None), fp.of(&from_hex, None));
        assert_ne!(fp.of(&from_hex, None), fp.of(&IndexKey::generate(), None));
        assert_ne!(fp.of(&from_hex, None), fp.of(&from_hex, Some("u")));
    }

    #[test]
    fn short_or_garbage_keys_are_400() {
        for bad in ["", "abcd", "zz", &"0".repeat(63), &"g".repeat(64)] {
            let e = KeyText::new(bad.to_owned()).parse().unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            format!("{:?}", KeyText::new("secret".into())),
            "KeyText(REDACTED)"
        );
    }
}
