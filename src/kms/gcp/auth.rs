//! Google OAuth 2.0 access tokens for Cloud KMS: a fixed token, a service-account key (an
//! RS256-signed JWT assertion exchanged at the key's `token_uri`, RFC 7523), gcloud's user
//! credentials (a refresh token), or the GCE metadata server.
//!
//! RS256 signing uses `ring`, already compiled into every build with these features (it is
//! the TLS backend of `ureq`'s rustls), constant-time and maintained. The service account's
//! private key is kept as PKCS#8 DER in a buffer wiped on drop and parsed only to sign (once
//! an hour): ring does not wipe its parsed copy, so it lives only for that signature.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kms::rest::{self, Http, Payload, Request, TokenSource, bad_response};

/// The OAuth scope of Cloud KMS.
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
/// Google's token endpoint, when a credentials file names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The metadata server of Compute Engine, GKE, Cloud Run and Cloud Functions.
const DEFAULT_METADATA: &str = "http://metadata.google.internal";
/// A signed assertion is valid for at most an hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// The longest credentials file read.
const MAX_CREDENTIALS_FILE: u64 = 64 * 1024;

/// Where a [`GcpKms`](super::GcpKms) client gets its access tokens. Secrets inside are wiped
/// on drop and never printed by `Debug`.
pub struct GcpCredentials(Source);

enum Source {
    AccessToken(Zeroizing<String>),
    ServiceAccount {
        email: String,
        key_id: Option<String>,
        /// PKCS#8 DER of the RSA private key.
        private_key: Zeroizing<Vec<u8>>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: String,
    },
    Metadata {
        base: String,
    },
}

impl fmt::Debug for GcpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::AccessToken(_) => f.write_str("GcpCredentials::AccessToken([redacted])"),
            Source::ServiceAccount {
                email, token_uri, ..
            } => f
                .debug_struct("GcpCredentials::ServiceAccount")
                .field("email", email)
                .field("token_uri", token_uri)
                .field("private_key", &"[redacted]")
                .finish(),
            Source::AuthorizedUser {
                client_id,
                token_uri,
                ..
            } => f
                .debug_struct("GcpCredentials::AuthorizedUser")
                .field("client_id", client_id)
                .field("token_uri", token_uri)
                .field("client_secret", &"[redacted]")
                .field("refresh_token", &"[redacted]")
                .finish(),
            Source::Metadata { base } => f
                .debug_struct("GcpCredentials::Metadata")
                .field("server", base)
                .finish(),
        }
    }
}

impl GcpCredentials {
    /// A fixed access token, never refreshed.
    pub fn access_token(token: impl Into<String>) -> GcpCredentials {
        GcpCredentials(Source::AccessToken(Zeroizing::new(token.into())))
    }

    /// Credentials from the text of a JSON credentials file: `"type": "service_account"`
    /// (`client_email`, `private_key` as PKCS#8 PEM, optional `private_key_id` and
    /// `token_uri`) or `"type": "authorized_user"` (`client_id`, `client_secret`,
    /// `refresh_token`, as `gcloud auth application-default login` writes).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another type, a missing field, a private key that is
    /// not an RSA PKCS#8 key, or a `token_uri` over plain http to a host that is not loopback.
    pub fn from_json(json: &str) -> Result<GcpCredentials> {
        let mut value: Value = serde_json::from_str(json)
            .map_err(|_| Error::invalid_argument("Google credentials are not JSON"))?;
        let field = |value: &Value, name: &str| -> Result<String> {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("Google credentials lack \"{name}\""))
                })
        };
        let token_uri = value
            .get("token_uri")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_TOKEN_URI)
            .to_owned();
        match value.get("type").and_then(Value::as_str) {
            Some("service_account") => {
                rest::check_url(&token_uri)?;
                let pem = rest::take_secret(&mut value, "private_key").ok_or_else(|| {
                    Error::invalid_argument("Google credentials lack \"private_key\"")
                })?;
                let private_key = pkcs8_from_pem(&pem)?;
                Ok(GcpCredentials(Source::ServiceAccount {
                    email: field(&value, "client_email")?,
                    key_id: field(&value, "private_key_id").ok(),
                    private_key,
                    token_uri,
                }))
            }
            Some("authorized_user") => {
                rest::check_url(&token_uri)?;
                let secret = |value: &mut Value, name: &str| {
                    rest::take_secret(value, name)
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            Error::invalid_argument(format!("Google credentials lack \"{name}\""))
                        })
                };
                Ok(GcpCredentials(Source::AuthorizedUser {
                    client_id: field(&value, "client_id")?,
                    client_secret: secret(&mut value, "client_secret")?,
                    refresh_token: secret(&mut value, "refresh_token")?,
                    token_uri,
                }))
            }
            other => Err(Error::invalid_argument(format!(
                "Google credentials of type {:?} are not supported (service_account or \
                 authorized_user)",
                other.unwrap_or("none")
            ))),
        }
    }

    /// Credentials from a JSON credentials file (see [`from_json`](Self::from_json)).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the file cannot be read, or as `from_json`.
    pub fn from_file(path: &Path) -> Result<GcpCredentials> {
        use std::io::Read as _;
        let mut text = Zeroizing::new(String::new());
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CREDENTIALS_FILE).read_to_string(&mut text))
            .map_err(|e| {
                Error::invalid_argument(format!("Google credentials file {}: {e}", path.display()))
            })?;
        GcpCredentials::from_json(&text)
    }

    /// Tokens of the instance's service account from the metadata server at `base` (e.g.
    /// `http://metadata.google.internal`), or at `http://$GCE_METADATA_HOST` or the default
    /// when `None`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an address over plain http that is neither loopback
    /// nor the metadata server's.
    pub fn metadata_server(base: Option<String>) -> Result<GcpCredentials> {
        let base = base
            .or_else(|| {
                std::env::var("GCE_METADATA_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .map(|host| format!("http://{host}"))
            })
            .unwrap_or_else(|| DEFAULT_METADATA.to_owned());
        let base = base.trim_end_matches('/').to_owned();
        rest::check_metadata_url(&base)?;
        Ok(GcpCredentials(Source::Metadata { base }))
    }

    /// Application Default Credentials: the file named by `GOOGLE_APPLICATION_CREDENTIALS`,
    /// else gcloud's `application_default_credentials.json` when it exists, else the
    /// metadata server.
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file) for a file that exists but is not usable.
    pub fn application_default() -> Result<GcpCredentials> {
        if let Some(path) =
            std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
        {
            return GcpCredentials::from_file(Path::new(&path));
        }
        let config_dir = if cfg!(windows) {
            std::env::var_os("APPDATA").map(std::path::PathBuf::from)
        } else {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".config"))
        };
        if let Some(dir) = config_dir {
            let well_known = dir.join("gcloud/application_default_credentials.json");
            if well_known.is_file() {
                return GcpCredentials::from_file(&well_known);
            }
        }
        GcpCredentials::metadata_server(None)
    }

    /// The signed JWT assertion of a service account (RFC 7523), valid for an hour.
    fn assertion(
        email: &str,
        key_id: Option<&str>,
        private_key: &[u8],
        audience: &str,
    ) -> Result<Zeroizing<String>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": email,
            "scope": SCOPE,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let mut jwt = Zeroizing::new(String::with_capacity(2048));
        jwt.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let pair = RsaKeyPair::from_pkcs8(private_key)
            .map_err(|_| Error::invalid_argument("service account key is not an RSA key"))?;
        let mut signature = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            jwt.as_bytes(),
            &mut signature,
        )
        .map_err(|_| Error::invalid_argument("service account key could not sign"))?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        Ok(jwt)
    }
}

/// PKCS#8 DER of a `-----BEGIN PRIVATE KEY-----` PEM block, checked to be an RSA key that
/// ring accepts.
fn pkcs8_from_pem(pem: &str) -> Result<Zeroizing<Vec<u8>>> {
    let invalid = || {
        Error::invalid_argument(
            "service account private_key must be an RSA key in PKCS#8 PEM (BEGIN PRIVATE KEY)",
        )
    };
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or_else(invalid)?;
    let mut base64 = Zeroizing::new(String::with_capacity(body.len()));
    base64.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
    let der = Zeroizing::new(STANDARD.decode(base64.as_bytes()).map_err(|_| invalid())?);
    RsaKeyPair::from_pkcs8(&der).map_err(|_| invalid())?;
    Ok(der)
}

impl TokenSource for GcpCredentials {
    fn fetch(&self, http: &Http) -> Result<(Zeroizing<String>, Option<Duration>)> {
        match &self.0 {
            Source::AccessToken(token) => Ok((token.clone(), None)),
            Source::ServiceAccount {
                email,
                key_id,
                private_key,
                token_uri,
            } => {
                let assertion =
                    GcpCredentials::assertion(email, key_id.as_deref(), private_key, token_uri)?;
                let body = rest::form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ]);
                exchange(http, token_uri, body.as_bytes(), &[&assertion])
            }
            Source::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                let body = rest::form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ]);
                exchange(
                    http,
                    token_uri,
                    body.as_bytes(),
                    &[client_secret, refresh_token],
                )
            }
            Source::Metadata { base } => {
                let url = format!(
                    "{base}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
                    rest::url_encode(SCOPE)
                );
                let request = Request {
                    what: "GCE metadata server token",
                    url: &url,
                    headers: &[("Metadata-Flavor", "Google")],
                    body: Payload::None,
                    secrets: &[],
                    metadata: true,
                };
                let reply = http.send(&request)?;
                if !(200..300).contains(&reply.status) {
                    return Err(rest::status_error(&request, &reply));
                }
                // The real metadata server says who it is; anything else at that address
                // does not get to hand out tokens.
                if reply.metadata_flavor.as_deref() != Some("Google") {
                    return Err(bad_response(
                        "GCE metadata server token: answer lacks Metadata-Flavor: Google",
                    ));
                }
                rest::token_answer(&reply, request.what)
            }
        }
    }

    fn refreshable(&self) -> bool {
        !matches!(self.0, Source::AccessToken(_))
    }
}

/// Posts a token request form to an OAuth token endpoint.
fn exchange(
    http: &Http,
    token_uri: &str,
    body: &[u8],
    secrets: &[&str],
) -> Result<(Zeroizing<String>, Option<Duration>)> {
    let request = Request {
        what: "Google OAuth token",
        url: token_uri,
        headers: &[],
        body: Payload::Form(body),
        secrets,
        metadata: false,
    };
    let reply = http.send(&request)?;
    if !(200..300).contains(&reply.status) {
        return Err(rest::status_error(&request, &reply));
    }
    rest::token_answer(&reply, request.what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_or_broken_credentials_are_refused() {
        for bad in [
            "not json",
            r#"{"type": "external_account"}"#,
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "nope"}"#,
            r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s"}"#,
            r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s",
                "refresh_token": "r", "token_uri": "http://oauth.example/token"}"#,
        ] {
            assert!(
                matches!(
                    GcpCredentials::from_json(bad),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bad}"
            );
        }
        let user = GcpCredentials::from_json(
            r#"{"type": "authorized_user", "client_id": "c", "client_secret": "sssecret",
                "refresh_token": "rrrefresh"}"#,
        )
        .unwrap();
        let text = format!("{user:?}");
        assert!(
            !text.contains("sssecret") && !text.contains("rrrefresh"),
            "{text}"
        );
    }

    #[test]
    fn metadata_server_address_is_checked() {
        assert!(GcpCredentials::metadata_server(Some("http://127.0.0.1:8080".into())).is_ok());
        assert!(
            GcpCredentials::metadata_server(Some("http://metadata.google.internal".into())).is_ok()
        );
        assert!(GcpCredentials::metadata_server(Some("http://evil.example".into())).is_err());
    }
}
