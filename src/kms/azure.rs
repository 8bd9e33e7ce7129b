//! Azure Key Vault and Managed HSM envelope encryption (feature `azure-kv`) over the Key
//! Vault REST API (api-version 7.4): `POST {vault}/keys/{name}/{version}/wrapkey` and
//! `.../unwrapkey` with RSA-OAEP-256. With a key identifier that names no version, the key's
//! current version is looked up first (`GET {vault}/keys/{name}`, the documented way to ask
//! for the latest version) and new keys are wrapped by it.
//!
//! The index key is drawn here from the operating system's random number generator. RSA-OAEP
//! as Key Vault offers it takes no associated data, so the index name is bound inside the
//! wrapped plaintext: the 32 key bytes followed by SHA3-256 of `ciphervec:index:<name>`,
//! checked after unwrapping (a wrapped key copied to another index's configuration is
//! `Refused`). OAEP is non-malleable, so the pair cannot be altered without the key; anyone
//! with the public key can wrap a key of their own choosing, which opens nothing that
//! exists.
//!
//! The wrapped key is `azurekv:<key version>:<base64url of Key Vault's ciphertext>`: the
//! version that wrapped it unwraps it, so rotating the Key Vault key (a new version) leaves
//! existing wrapped keys working while the old version stays enabled.
//!
//! Credentials (see [`AzureKeyVaultBuilder`]): a Microsoft Entra app's client secret
//! (client-credentials grant), a managed identity (the instance metadata service, IMDS), or
//! a fixed access token; [`AzureKeyVault::from_env`] picks the first two from the
//! `AZURE_*` environment as `azure_identity`'s `DefaultAzureCredential` does. The identity
//! needs the key permissions `wrapKey` (and `get` with a versionless key identifier) to
//! generate and `unwrapKey` to unwrap (RBAC role "Key Vault Crypto User", or "Managed HSM
//! Crypto User").

mod auth;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use sha3::{Digest as _, Sha3_256};
use zeroize::Zeroizing;

use super::rest::{self, Bearer, Http, HttpConfig, bad_response};
use super::{Kms, WrappedKey, key_from_service};
use crate::crypto::key::IndexKey;
use crate::error::{Error, KeyServiceFailure, Result};

pub use auth::AzureCredentials;

/// The Key Vault REST API version used.
const API_VERSION: &str = "7.4";
/// The key-wrapping algorithm.
const ALGORITHM: &str = "RSA-OAEP-256";
/// The prefix of a wrapped key's text.
const PREFIX: &str = "azurekv";

/// A Key Vault (or Managed HSM) client bound to one RSA key, named by its key identifier:
/// `https://<vault>.vault.azure.net/keys/<name>` (wraps with the current version) or
/// `.../keys/<name>/<version>` (wraps with that version).
///
/// ```no_run
/// use ciphervec::kms::KmsEnvelope;
/// use ciphervec::kms::azure::AzureKeyVault;
/// let key_id = "https://acme-search.vault.azure.net/keys/ciphervec";
/// // AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, else the managed identity.
/// let (provider, index_key) = KmsEnvelope::generate(AzureKeyVault::from_env(key_id)?, "docs")?;
/// # Ok::<(), ciphervec::Error>(())
/// ```
pub struct AzureKeyVault {
    http: Http,
    vault: String,
    key_name: String,
    key_version: Option<String>,
    bearer: Bearer<AzureCredentials>,
}

impl fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVault")
            .field("vault", &self.vault)
            .field("key_name", &self.key_name)
            .field("key_version", &self.key_version)
            .field("credentials", self.bearer.source())
            .finish_non_exhaustive()
    }
}

/// Settings for [`AzureKeyVault`].
pub struct AzureKeyVaultBuilder {
    key_id: String,
    credentials: Option<AzureCredentials>,
    resource: Option<String>,
    http: HttpConfig,
}

impl fmt::Debug for AzureKeyVaultBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultBuilder")
            .field("key_id", &self.key_id)
            .field("credentials", &self.credentials)
            .field("resource", &self.resource)
            .field("http", &self.http)
            .finish()
    }
}

impl AzureKeyVault {
    /// A builder for a client of the key identified by `key_id`.
    pub fn builder(key_id: impl Into<String>) -> AzureKeyVaultBuilder {
        AzureKeyVaultBuilder {
            key_id: key_id.into(),
            credentials: None,
            resource: None,
            http: HttpConfig::default(),
        }
    }

    /// A client of `key_id` with credentials from the environment: a client secret when
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are set (authority
    /// `AZURE_AUTHORITY_HOST` or `https://login.microsoftonline.com`), else the managed
    /// identity (the user-assigned one named by `AZURE_CLIENT_ID` when set).
    ///
    /// # Errors
    /// As [`AzureKeyVaultBuilder::build`].
    pub fn from_env(key_id: impl Into<String>) -> Result<AzureKeyVault> {
        AzureKeyVault::builder(key_id)
            .credentials(AzureCredentials::from_env()?)
            .build()
    }

    /// `{vault}/keys/{name}/{version}/{operation}?api-version=...`.
    fn key_url(&self, version: &str, operation: &str) -> String {
        format!(
            "{}/keys/{}/{version}/{operation}?api-version={API_VERSION}",
            self.vault, self.key_name
        )
    }

    fn post(&self, what: &str, url: &str, body: &[u8]) -> Result<Value> {
        let reply = rest::send_authorized(&self.http, &self.bearer, what, url, Some(body))?;
        reply.json(what)
    }

    /// The version that wraps new keys: the configured one, else the key's current version
    /// as `GET {vault}/keys/{name}` names it in its `kid`.
    fn wrapping_version(&self) -> Result<String> {
        if let Some(version) = &self.key_version {
            return Ok(version.clone());
        }
        let what = "Key Vault get key";
        let url = format!(
            "{}/keys/{}?api-version={API_VERSION}",
            self.vault, self.key_name
        );
        let answer =
            rest::send_authorized(&self.http, &self.bearer, what, &url, None)?.json(what)?;
        let kid = answer
            .get("key")
            .and_then(|key| key.get("kid"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        version_of_kid(kid, &self.key_name)
            .map(str::to_owned)
            .ok_or_else(|| {
                bad_response("Key Vault get key: the answer's kid does not name this key")
            })
    }
}

impl AzureKeyVaultBuilder {
    /// The credentials (default: [`AzureCredentials::from_env`] at `build`).
    pub fn credentials(mut self, credentials: AzureCredentials) -> AzureKeyVaultBuilder {
        self.credentials = Some(credentials);
        self
    }

    /// A fixed access token for the vault's resource, never refreshed.
    pub fn access_token(self, token: impl Into<String>) -> AzureKeyVaultBuilder {
        self.credentials(AzureCredentials::access_token(token))
    }

    /// The resource the tokens are for, when it is not derived correctly from the vault's
    /// host (`https://vault.azure.net` for `*.vault.azure.net`, `https://managedhsm.azure.net`
    /// for `*.managedhsm.azure.net`, and likewise in the sovereign clouds).
    pub fn resource(mut self, resource: impl Into<String>) -> AzureKeyVaultBuilder {
        self.resource = Some(resource.into());
        self
    }

    /// The time allowed for one attempt of a request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> AzureKeyVaultBuilder {
        self.http.timeout = timeout;
        self
    }

    /// How many times a request is retried after a transient failure (connection refused
    /// or reset, HTTP 429, 500, 502, 503, 504), with exponential backoff and `Retry-After`
    /// (up to 10 s); default 3.
    pub fn max_retries(mut self, retries: u32) -> AzureKeyVaultBuilder {
        self.http.retries = retries;
        self
    }

    /// The first backoff between retries (default 200 ms; each later one doubles).
    pub fn retry_backoff(mut self, backoff: Duration) -> AzureKeyVaultBuilder {
        self.http.backoff = backoff;
        self
    }

    /// The client; sends nothing yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed key identifier, a vault or token address
    /// over plain http to a host that is not loopback, or incomplete credentials.
    pub fn build(self) -> Result<AzureKeyVault> {
        let (vault, key_name, key_version) = parse_key_id(&self.key_id)?;
        rest::check_url(&vault)?;
        let credentials = match self.credentials {
            Some(credentials) => credentials,
            None => AzureCredentials::from_env()?,
        };
        let resource = self.resource.unwrap_or_else(|| resource_of(&vault));
        Ok(AzureKeyVault {
            http: Http::new(self.http),
            vault,
            key_name,
            key_version,
            bearer: Bearer::new(credentials.for_resource(resource)?),
        })
    }
}

/// Splits `https://host[:port]/keys/<name>[/<version>]` into the vault URL, the name and the
/// version; names and versions are letters, digits and `-` (so they cannot change the path).
fn parse_key_id(key_id: &str) -> Result<(String, String, Option<String>)> {
    let invalid = || {
        Error::invalid_argument(
            "Key Vault key identifier must be https://<vault>/keys/<name>[/<version>]",
        )
    };
    let key_id = key_id.trim().trim_end_matches('/');
    let scheme_end = key_id.find("://").ok_or_else(invalid)? + 3;
    let path_start = key_id[scheme_end..]
        .find('/')
        .map(|at| at + scheme_end)
        .ok_or_else(invalid)?;
    let (vault, path) = key_id.split_at(path_start);
    if vault.contains(['?', '#', '@']) || path.contains(['?', '#']) {
        return Err(invalid());
    }
    let segment = |s: &str| {
        !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "keys", name] if segment(name) => Ok((vault.to_owned(), (*name).to_owned(), None)),
        ["", "keys", name, version] if segment(name) && segment(version) => Ok((
            vault.to_owned(),
            (*name).to_owned(),
            Some((*version).to_owned()),
        )),
        _ => Err(invalid()),
    }
}

/// The token resource of a vault: its host without the vault's own label
/// (`https://x.vault.azure.net` -> `https://vault.azure.net`), or Key Vault's public
/// resource for an address that is not a vault host (a loopback test server).
fn resource_of(vault: &str) -> String {
    let host = vault
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.split_once('.') {
        Some((_, rest)) if rest.starts_with("vault.") || rest.starts_with("managedhsm.") => {
            format!("https://{rest}")
        }
        _ => "https://vault.azure.net".to_owned(),
    }
}

/// SHA3-256 of the index name's binding string: appended to the key inside the wrap.
fn binding(index_name: &str) -> [u8; 32] {
    Sha3_256::digest(format!("ciphervec:index:{index_name}").as_bytes()).into()
}

#[derive(Serialize)]
struct KeyOperation<'a> {
    alg: &'a str,
    value: &'a str,
}

/// The key version at the end of a `kid` (`https://.../keys/<name>/<version>`), when the
/// kid names this key.
fn version_of_kid<'a>(kid: &'a str, key_name: &str) -> Option<&'a str> {
    let mut parts = kid.rsplit('/');
    let version = parts.next()?;
    let name = parts.next()?;
    let keys = parts.next()?;
    let ok = keys == "keys"
        && name == key_name
        && !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(version)
}

impl Kms for AzureKeyVault {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        let key = IndexKey::generate();
        let mut plaintext = Zeroizing::new([0u8; 64]);
        plaintext[..32].copy_from_slice(key.as_bytes());
        plaintext[32..].copy_from_slice(&binding(context));
        let value = Zeroizing::new(URL_SAFE_NO_PAD.encode(&plaintext[..]));
        let body = rest::json_body(&KeyOperation {
            alg: ALGORITHM,
            value: &value,
        })?;
        let wrapping_version = self.wrapping_version()?;
        let url = self.key_url(&wrapping_version, "wrapkey");
        let answer = self.post("Key Vault wrapKey", &url, &body)?;
        let kid = answer
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = version_of_kid(kid, &self.key_name).ok_or_else(|| {
            bad_response("Key Vault wrapKey: the answer's kid does not name this key")
        })?;
        if version != wrapping_version {
            return Err(bad_response(
                "Key Vault wrapKey: the answer names another key version than the one asked for",
            ));
        }
        let wrapped = answer
            .get("value")
            .and_then(Value::as_str)
            .map(|v| v.trim_end_matches('='))
            .filter(|v| !v.is_empty() && URL_SAFE_NO_PAD.decode(v).is_ok())
            .ok_or_else(|| bad_response("Key Vault wrapKey: no base64url value in the answer"))?;
        let text = format!("{PREFIX}:{version}:{wrapped}");
        let wrapped = WrappedKey::new(text)
            .map_err(|_| bad_response("Key Vault wrapKey: wrapped key too long"))?;
        Ok((key, wrapped))
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        let mut parts = wrapped.as_str().splitn(3, ':');
        let (Some(PREFIX), Some(version), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::InvalidKey);
        };
        let version_ok = !version.is_empty()
            && version.len() <= 127
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !version_ok || URL_SAFE_NO_PAD.decode(value).is_err() {
            return Err(Error::InvalidKey);
        }
        let body = rest::json_body(&KeyOperation {
            alg: ALGORITHM,
            value,
        })?;
        let url = self.key_url(version, "unwrapkey");
        let mut answer = self.post("Key Vault unwrapKey", &url, &body)?;
        let text = rest::take_secret(&mut answer, "value")
            .ok_or_else(|| bad_response("Key Vault unwrapKey: no value in the answer"))?;
        let plaintext = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| bad_response("Key Vault unwrapKey: value is not base64url"))?,
        );
        if plaintext.len() != 64 {
            return Err(bad_response(format!(
                "Key Vault unwrapKey: expected 64 bytes, got {}",
                plaintext.len()
            )));
        }
        if plaintext[32..] != binding(context) {
            return Err(Error::key_service(
                KeyServiceFailure::Refused,
                "Key Vault unwrapKey: the wrapped key belongs to another index",
            ));
        }
        key_from_service(&plaintext[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_identifiers_are_parsed_and_checked() {
        assert_eq!(
            parse_key_id("https://acme.vault.azure.net/keys/ciphervec").unwrap(),
            (
                "https://acme.vault.azure.net".to_owned(),
                "ciphervec".to_owned(),
                None
            )
        );
        assert_eq!(
            parse_key_id("https://h.managedhsm.azure.net/keys/k-1/0123abcd/").unwrap(),
            (
                "https://h.managedhsm.azure.net".to_owned(),
                "k-1".to_owned(),
                Some("0123abcd".to_owned())
            )
        );
        for bad in [
            "",
            "acme.vault.azure.net/keys/k",
            "https://acme.vault.azure.net",
            "https://acme.vault.azure.net/secrets/k",
            "https://acme.vault.azure.net/keys/",
            "https://acme.vault.azure.net/keys/k/v/extra",
            "https://acme.vault.azure.net/keys/../k",
            "https://acme.vault.azure.net/keys/k?x=1",
            "https://user@acme.vault.azure.net/keys/k",
            "https://acme.vault.azure.net/keys/k_1",
        ] {
            assert!(parse_key_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_resources_follow_the_vault_host() {
        assert_eq!(
            resource_of("https://acme.vault.azure.net"),
            "https://vault.azure.net"
        );
        assert_eq!(
            resource_of("https://hsm1.managedhsm.azure.net"),
            "https://managedhsm.azure.net"
        );
        assert_eq!(
            resource_of("https://acme.vault.azure.cn:443"),
            "https://vault.azure.cn"
        );
        assert_eq!(
            resource_of("http://127.0.0.1:8443"),
            "https://vault.azure.net"
        );
    }

    #[test]
    fn kid_versions_are_read_for_this_key_only() {
        let kid = "https://acme.vault.azure.net/keys/ciphervec/78deebed173b48e48f55abf87ed4cf71";
        assert_eq!(
            version_of_kid(kid, "ciphervec"),
            Some("78deebed173b48e48f55abf87ed4cf71")
        );
        assert_eq!(version_of_kid(kid, "other"), None);
        assert_eq!(
            version_of_kid("https://x/keys/ciphervec/", "ciphervec"),
            None
        );
        assert_eq!(version_of_kid("", "ciphervec"), None);
    }

    #[test]
    fn malformed_wrapped_keys_are_invalid_before_any_request() {
        let kms = AzureKeyVault::builder("http://127.0.0.1:1/keys/k")
            .access_token("t0ken")
            .max_retries(0)
            .build()
            .unwrap();
        for bad in [
            "c2VhbGVk",
            "vault:v1:abc",
            "azurekv::abc",
            "azurekv:v1",
            "azurekv:v/1:abc",
            "azurekv:v1:a+b/",
        ] {
            let wrapped = WrappedKey::new(bad).unwrap();
            assert!(
                matches!(kms.unwrap_key(&wrapped, "docs"), Err(Error::InvalidKey)),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let builder = AzureKeyVault::builder("https://acme.vault.azure.net/keys/k")
            .access_token("eyJ0eXAi-very-secret");
        assert!(!format!("{builder:?}").contains("very-secret"));
        let kms = builder.build().unwrap();
        let text = format!("{kms:?}");
        assert!(!text.contains("very-secret"), "{text}");
        let secret = AzureCredentials::client_secret("tenant", "client", "pa55-very-secret");
        assert!(!format!("{secret:?}").contains("very-secret"));
    }
}
