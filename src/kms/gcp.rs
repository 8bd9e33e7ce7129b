//! Google Cloud KMS envelope encryption (feature `gcp-kms`) over the Cloud KMS REST API v1:
//! `POST /v1/{cryptoKey}:encrypt` and `POST /v1/{cryptoKey}:decrypt`, with the index name
//! as additional authenticated data (`ciphervec:index:<name>`), so that a wrapped key only
//! unwraps for the index it was made for.
//!
//! Cloud KMS has no data-key generation: the index key is drawn here from the operating
//! system's random number generator and encrypted by the symmetric Cloud KMS key (purpose
//! `ENCRYPT_DECRYPT`). The wrapped key is the standard base64 of Cloud KMS's ciphertext,
//! which names the key version that made it, so decryption keeps working after the key is
//! rotated (until that version is disabled or destroyed). Every request and answer carries
//! CRC32C checksums, checked on both sides as Google recommends.
//!
//! Credentials (see [`GcpKmsBuilder`]): Application Default Credentials by default (the
//! JSON file named by `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
//! `application_default_credentials.json`, else the GCE metadata server), an explicit
//! service-account key or credentials file, or a fixed access token. The caller needs
//! `cloudkms.cryptoKeyVersions.useToEncrypt` to generate (role
//! `roles/cloudkms.cryptoKeyEncrypter`) and `cloudkms.cryptoKeyVersions.useToDecrypt` to
//! unwrap (`roles/cloudkms.cryptoKeyDecrypter`).

mod auth;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::rest::{self, Bearer, Http, HttpConfig, bad_response};
use super::{Kms, WrappedKey, key_from_service};
use crate::crypto::key::IndexKey;
use crate::error::{Error, Result};

pub use auth::GcpCredentials;

/// The Cloud KMS endpoint.
const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// A Cloud KMS client bound to one symmetric key
/// (`projects/P/locations/L/keyRings/R/cryptoKeys/K`, or a `.../cryptoKeyVersions/N` of it to
/// encrypt with that version rather than the primary one).
///
/// ```no_run
/// use ciphervec::kms::KmsEnvelope;
/// use ciphervec::kms::gcp::GcpKms;
/// let key = "projects/acme/locations/europe-west1/keyRings/search/cryptoKeys/ciphervec";
/// // Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server).
/// let (provider, index_key) = KmsEnvelope::generate(GcpKms::from_env(key)?, "docs")?;
/// # Ok::<(), ciphervec::Error>(())
/// ```
pub struct GcpKms {
    http: Http,
    endpoint: String,
    key_name: String,
    bearer: Bearer<GcpCredentials>,
}

impl fmt::Debug for GcpKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpKms")
            .field("endpoint", &self.endpoint)
            .field("key_name", &self.key_name)
            .field("credentials", self.bearer.source())
            .finish_non_exhaustive()
    }
}

/// Settings for [`GcpKms`]. Without a credentials setting, Application Default Credentials
/// are used.
pub struct GcpKmsBuilder {
    key_name: String,
    endpoint: Option<String>,
    credentials: CredentialChoice,
    http: HttpConfig,
}

/// Where the builder takes credentials from.
enum CredentialChoice {
    ApplicationDefault,
    Given(GcpCredentials),
    Json(Zeroizing<String>),
    File(PathBuf),
    MetadataServer(Option<String>),
}

impl fmt::Debug for GcpKmsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = match &self.credentials {
            CredentialChoice::ApplicationDefault => "application default".to_owned(),
            CredentialChoice::Given(c) => format!("{c:?}"),
            CredentialChoice::Json(_) => "credentials JSON [redacted]".to_owned(),
            CredentialChoice::File(path) => format!("credentials file {}", path.display()),
            CredentialChoice::MetadataServer(_) => "metadata server".to_owned(),
        };
        f.debug_struct("GcpKmsBuilder")
            .field("key_name", &self.key_name)
            .field("endpoint", &self.endpoint)
            .field("credentials", &credentials)
            .field("http", &self.http)
            .finish()
    }
}

impl GcpKms {
    /// A builder for a client of Cloud KMS key `key_name`.
    pub fn builder(key_name: impl Into<String>) -> GcpKmsBuilder {
        GcpKmsBuilder {
            key_name: key_name.into(),
            endpoint: None,
            credentials: CredentialChoice::ApplicationDefault,
            http: HttpConfig::default(),
        }
    }

    /// A client of `key_name` with Application Default Credentials and default settings.
    ///
    /// # Errors
    /// As [`GcpKmsBuilder::build`].
    pub fn from_env(key_name: impl Into<String>) -> Result<GcpKms> {
        GcpKms::builder(key_name).build()
    }

    /// The key's resource name.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The CryptoKey of the configured name (a version's name without its version):
    /// decryption is always asked of the key, which picks the version from the ciphertext.
    fn crypto_key(&self) -> &str {
        match self.key_name.find("/cryptoKeyVersions/") {
            Some(at) => &self.key_name[..at],
            None => &self.key_name,
        }
    }

    fn post(&self, what: &str, url: &str, body: &[u8]) -> Result<Value> {
        let reply = rest::send_authorized(&self.http, &self.bearer, what, url, Some(body))?;
        reply.json(what)
    }
}

impl GcpKmsBuilder {
    /// Sends requests to `url` instead of `https://cloudkms.googleapis.com` (a Private
    /// Service Connect endpoint, a regional endpoint, or a local test server).
    pub fn endpoint(mut self, url: impl Into<String>) -> GcpKmsBuilder {
        self.endpoint = Some(url.into());
        self
    }

    /// A fixed OAuth 2.0 access token (for example from `gcloud auth print-access-token`):
    /// never refreshed, so calls fail as `Refused` once it expires.
    pub fn access_token(mut self, token: impl Into<String>) -> GcpKmsBuilder {
        self.credentials = CredentialChoice::Given(GcpCredentials::access_token(token));
        self
    }

    /// The text of a credentials JSON file: a service-account key (`"type":
    /// "service_account"`, whose RS256-signed assertion is exchanged at its `token_uri`) or
    /// gcloud's user credentials (`"type": "authorized_user"`). Checked by `build`.
    pub fn credentials_json(mut self, json: impl Into<String>) -> GcpKmsBuilder {
        self.credentials = CredentialChoice::Json(Zeroizing::new(json.into()));
        self
    }

    /// A credentials JSON file, read once by `build` (see
    /// [`credentials_json`](Self::credentials_json)).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> GcpKmsBuilder {
        self.credentials = CredentialChoice::File(path.into());
        self
    }

    /// Tokens from the GCE metadata server (the instance's service account) at `url`, or at
    /// `http://$GCE_METADATA_HOST` / `http://metadata.google.internal` when `None`.
    pub fn metadata_server(mut self, url: Option<String>) -> GcpKmsBuilder {
        self.credentials = CredentialChoice::MetadataServer(url);
        self
    }

    /// Credentials made elsewhere.
    pub fn credentials(mut self, credentials: GcpCredentials) -> GcpKmsBuilder {
        self.credentials = CredentialChoice::Given(credentials);
        self
    }

    /// The time allowed for one attempt of a request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> GcpKmsBuilder {
        self.http.timeout = timeout;
        self
    }

    /// How many times a request is retried after a transient failure (connection refused
    /// or reset, HTTP 429, 500, 502, 503, 504), with exponential backoff; default 3.
    pub fn max_retries(mut self, retries: u32) -> GcpKmsBuilder {
        self.http.retries = retries;
        self
    }

    /// The first backoff between retries (default 200 ms; each later one doubles).
    pub fn retry_backoff(mut self, backoff: Duration) -> GcpKmsBuilder {
        self.http.backoff = backoff;
        self
    }

    /// The client. Reads and checks the credentials; sends nothing yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed key name, an endpoint or token address
    /// over plain http to a host that is not loopback, or credentials that cannot be read
    /// or are not a supported kind.
    pub fn build(self) -> Result<GcpKms> {
        check_key_name(&self.key_name)?;
        let endpoint = self
            .endpoint
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
            .trim_end_matches('/')
            .to_owned();
        rest::check_url(&endpoint)?;
        let credentials = match self.credentials {
            CredentialChoice::ApplicationDefault => GcpCredentials::application_default()?,
            CredentialChoice::Given(credentials) => credentials,
            CredentialChoice::Json(json) => GcpCredentials::from_json(&json)?,
            CredentialChoice::File(path) => GcpCredentials::from_file(&path)?,
            CredentialChoice::MetadataServer(url) => GcpCredentials::metadata_server(url)?,
        };
        Ok(GcpKms {
            http: Http::new(self.http),
            endpoint,
            key_name: self.key_name,
            bearer: Bearer::new(credentials),
        })
    }
}

/// `projects/P/locations/L/keyRings/R/cryptoKeys/K`, optionally `/cryptoKeyVersions/N`, with
/// segments of letters, digits, `-` and `_` (so that the name cannot change the URL path).
fn check_key_name(name: &str) -> Result<()> {
    let parts: Vec<&str> = name.split('/').collect();
    let labels = [
        "projects",
        "locations",
        "keyRings",
        "cryptoKeys",
        "cryptoKeyVersions",
    ];
    let shape_ok = (parts.len() == 8 || parts.len() == 10)
        && parts
            .chunks(2)
            .zip(labels)
            .all(|(pair, label)| pair[0] == label && is_segment(pair[1]));
    if shape_ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "Cloud KMS key name must be projects/P/locations/L/keyRings/R/cryptoKeys/K \
             (optionally /cryptoKeyVersions/N)",
        ))
    }
}

fn is_segment(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && text != "."
        && text != ".."
}

/// The additional authenticated data bound to a wrapped key of index `index_name`.
fn aad(index_name: &str) -> Vec<u8> {
    format!("ciphervec:index:{index_name}").into_bytes()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncryptRequest<'a> {
    plaintext: &'a str,
    additional_authenticated_data: &'a str,
    plaintext_crc32c: String,
    additional_authenticated_data_crc32c: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecryptRequest<'a> {
    ciphertext: &'a str,
    additional_authenticated_data: &'a str,
    ciphertext_crc32c: String,
    additional_authenticated_data_crc32c: String,
}

impl Kms for GcpKms {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        let key = IndexKey::generate();
        let plaintext = Zeroizing::new(STANDARD.encode(key.as_bytes()));
        let aad = aad(context);
        let body = rest::json_body(&EncryptRequest {
            plaintext: &plaintext,
            additional_authenticated_data: &STANDARD.encode(&aad),
            plaintext_crc32c: crc32c(key.as_bytes()).to_string(),
            additional_authenticated_data_crc32c: crc32c(&aad).to_string(),
        })?;
        let url = format!("{}/v1/{}:encrypt", self.endpoint, self.key_name);
        let answer = self.post("Cloud KMS encrypt", &url, &body)?;
        let verified = |field: &str| answer.get(field).and_then(Value::as_bool) == Some(true);
        if !verified("verifiedPlaintextCrc32c")
            || !verified("verifiedAdditionalAuthenticatedDataCrc32c")
        {
            return Err(bad_response(
                "Cloud KMS encrypt: the service did not verify the request's checksums",
            ));
        }
        let used = answer.get("name").and_then(Value::as_str).unwrap_or("");
        let expected_prefix = format!("{}/cryptoKeyVersions/", self.crypto_key());
        if !used.starts_with(&expected_prefix)
            || (self.key_name.contains("/cryptoKeyVersions/") && used != self.key_name)
        {
            return Err(bad_response(
                "Cloud KMS encrypt: the answer names another key version than the one asked for",
            ));
        }
        let ciphertext = answer
            .get("ciphertext")
            .and_then(Value::as_str)
            .and_then(|text| STANDARD.decode(text).ok())
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| bad_response("Cloud KMS encrypt: no ciphertext in the answer"))?;
        if int64_field(&answer, "ciphertextCrc32c") != Some(u64::from(crc32c(&ciphertext))) {
            return Err(bad_response(
                "Cloud KMS encrypt: the ciphertext does not match its checksum",
            ));
        }
        let wrapped = WrappedKey::new(STANDARD.encode(&ciphertext))
            .map_err(|_| bad_response("Cloud KMS encrypt: ciphertext too long"))?;
        Ok((key, wrapped))
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        let ciphertext = STANDARD
            .decode(wrapped.as_str())
            .map_err(|_| Error::InvalidKey)?;
        let aad = aad(context);
        let body = rest::json_body(&DecryptRequest {
            ciphertext: wrapped.as_str(),
            additional_authenticated_data: &STANDARD.encode(&aad),
            ciphertext_crc32c: crc32c(&ciphertext).to_string(),
            additional_authenticated_data_crc32c: crc32c(&aad).to_string(),
        })?;
        let url = format!("{}/v1/{}:decrypt", self.endpoint, self.crypto_key());
        let mut answer = self.post("Cloud KMS decrypt", &url, &body)?;
        let text = rest::take_secret(&mut answer, "plaintext")
            .ok_or_else(|| bad_response("Cloud KMS decrypt: no plaintext in the answer"))?;
        let plaintext = Zeroizing::new(
            STANDARD
                .decode(text.as_bytes())
                .map_err(|_| bad_response("Cloud KMS decrypt: plaintext is not base64"))?,
        );
        if int64_field(&answer, "plaintextCrc32c") != Some(u64::from(crc32c(&plaintext))) {
            return Err(bad_response(
                "Cloud KMS decrypt: the plaintext does not match its checksum",
            ));
        }
        key_from_service(&plaintext)
    }
}

/// An int64 field of a Google JSON answer (a string of digits in proto3 JSON, or a number).
fn int64_field(answer: &Value, name: &str) -> Option<u64> {
    match answer.get(name)? {
        Value::String(text) => text.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Cloud KMS uses.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 appendix B.4 and the common "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn key_names_are_checked() {
        for ok in [
            "projects/p/locations/global/keyRings/r/cryptoKeys/k",
            "projects/my-proj/locations/europe-west1/keyRings/ring_1/cryptoKeys/key.v2/cryptoKeyVersions/3",
        ] {
            assert!(check_key_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "projects/p/locations/global/keyRings/r",
            "projects/p/locations/global/keyRings/r/cryptoKeys/",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k:decrypt",
            "projects/p/locations/global/keyRings/../cryptoKeys/k",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k?x=1",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1/x/y",
            "keyRings/p/locations/global/projects/r/cryptoKeys/k",
        ] {
            assert!(check_key_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_endpoints_are_refused_unless_loopback() {
        let key = "projects/p/locations/global/keyRings/r/cryptoKeys/k";
        let build = |url: &str| {
            GcpKms::builder(key)
                .endpoint(url)
                .access_token("token")
                .build()
        };
        assert!(build("https://cloudkms.googleapis.com").is_ok());
        assert!(build("http://127.0.0.1:9").is_ok());
        assert!(matches!(
            build("http://cloudkms.googleapis.com"),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key = "projects/p/locations/global/keyRings/r/cryptoKeys/k";
        let builder = GcpKms::builder(key).access_token("ya29.very-secret-token");
        assert!(!format!("{builder:?}").contains("very-secret"));
        let kms = builder.build().unwrap();
        let text = format!("{kms:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("cryptoKeys/k"), "{text}");
    }
}
