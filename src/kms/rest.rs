//! The small HTTPS client that the Google Cloud KMS and Azure Key Vault providers share
//! (features `gcp-kms` and `azure-kv`), on the `ureq` stack the Vault provider already uses.
//!
//! What it guarantees for every request: `https://` only (plain http only to a loopback test
//! server, and for token requests marked as such to the clouds' link-local metadata
//! endpoints, which speak nothing else); no redirect is
//! followed (a 3xx is an error: it would carry a bearer token elsewhere); a timeout per
//! attempt; transient failures (connection refused or reset, HTTP 429, 500, 502, 503, 504)
//! retried a bounded number of times with exponential backoff and jitter, honouring a short
//! `Retry-After`; bearer tokens cached until shortly before they expire and fetched again once
//! after a 401; errors as [`Error::KeyService`] with the service's own reason, truncated, and
//! with every secret of the request (token, client secret) cut out of it. Secrets that pass
//! through here (request bodies, response bodies, tokens) live in `Zeroizing` buffers.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, KeyServiceFailure, Result};

/// The longest response body read (key-service answers are a few hundred bytes).
const MAX_BODY: u64 = 256 * 1024;
/// The longest reason from a service kept in an error message.
const MAX_REASON: usize = 400;
/// The longest `Retry-After` waited for; a service asking for more gets no retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// A token is fetched again this long before it expires (a quarter of its lifetime when
/// that is shorter), so that it does not expire on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Timeouts and retries of a [`Http`] client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpConfig {
    /// The time allowed for one attempt (connection, request and response).
    pub timeout: Duration,
    /// How many times a transient failure is retried (so `retries + 1` attempts at most).
    pub retries: u32,
    /// The first backoff; each later one doubles, plus up to as much again of jitter.
    pub backoff: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// A request body.
pub(crate) enum Payload<'a> {
    /// No body (a GET).
    None,
    /// JSON text (`Content-Type: application/json`).
    Json(&'a [u8]),
    /// URL-encoded form text (`Content-Type: application/x-www-form-urlencoded`).
    Form(&'a [u8]),
}

/// One request: what it is (for error messages), where, which headers, what body.
pub(crate) struct Request<'a> {
    /// Names the operation in errors, e.g. `Cloud KMS encrypt`.
    pub what: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body; `Payload::None` sends a GET, anything else a POST.
    pub body: Payload<'a>,
    /// Secrets the request carries, cut out of any error message.
    pub secrets: &'a [&'a str],
    /// A token request to an instance metadata server: plain http to the clouds' link-local
    /// metadata addresses is allowed (see [`check_metadata_url`]).
    pub metadata: bool,
}

/// A final answer (2xx or an error status that is not worth retrying).
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, wiped when dropped (it may hold a key or a token).
    pub body: Zeroizing<String>,
    /// The `Metadata-Flavor` header (the GCE metadata server's proof of identity).
    #[cfg_attr(not(feature = "gcp-kms"), allow(dead_code))]
    pub metadata_flavor: Option<String>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self, what: &str) -> Result<Value> {
        serde_json::from_str(&self.body)
            .map_err(|_| bad_response(format!("{what}: answer is not JSON")))
    }
}

/// A `ureq` agent with the transport rules above.
pub(crate) struct Http {
    agent: ureq::Agent,
    config: HttpConfig,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("config", &self.config)
            .finish()
    }
}

impl Http {
    /// A client with these timeouts and retries.
    pub fn new(config: HttpConfig) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect would carry the bearer token to another address: never followed,
            // and a 3xx is returned as is (then refused below).
            .max_redirects(0)
            .build()
            .into();
        Http { agent, config }
    }

    /// Sends `request`, retrying transient failures; returns the final answer (any status
    /// but 3xx) or an error.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an address over plain http that is not allowed (see
    /// [`check_url`] and [`check_metadata_url`]); [`Error::KeyService`] `Unreachable` when no
    /// attempt got a final answer, `BadResponse` for a redirect or an unreadable answer.
    pub fn send(&self, request: &Request<'_>) -> Result<Reply> {
        if request.metadata {
            check_metadata_url(request.url)?;
        } else {
            check_url(request.url)?;
        }
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(request);
            let wait = match &outcome {
                Ok(Attempt::Retry {
                    retry_after: Some(after),
                    ..
                }) if *after > MAX_RETRY_AFTER => None,
                Ok(Attempt::Retry { retry_after, .. }) => {
                    Some(retry_after.unwrap_or_default().max(self.backoff(attempt)))
                }
                Err(Failure::Transient(_)) => Some(self.backoff(attempt)),
                _ => None,
            };
            match (outcome, wait) {
                (Ok(Attempt::Final(reply)), _) => return Ok(reply),
                (outcome, Some(wait)) if attempt < self.config.retries => {
                    drop(outcome);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                (Ok(Attempt::Retry { status, reply, .. }), _) => {
                    let reason = service_reason(status, &reply.body);
                    return Err(unreachable(
                        request,
                        format!("{reason} (after {} attempts)", attempt + 1),
                    ));
                }
                (Err(Failure::Transient(reason)), _) => {
                    return Err(unreachable(
                        request,
                        format!("{reason} (after {} attempts)", attempt + 1),
                    ));
                }
                (Err(Failure::Final(error)), _) => return Err(error),
            }
        }
    }

    /// The backoff before retry number `attempt + 1`: the base doubled `attempt` times, plus
    /// random jitter of up to as much again (so that many clients do not retry in step).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.backoff.saturating_mul(1 << attempt.min(16));
        let jitter_ms = base.as_millis().min(u128::from(u32::MAX)) as u64;
        base + Duration::from_millis(rand::random_range(0..=jitter_ms))
    }

    fn attempt(&self, request: &Request<'_>) -> std::result::Result<Attempt, Failure> {
        let result = match request.body {
            Payload::None => {
                let mut builder = self.agent.get(request.url);
                for (name, value) in request.headers {
                    builder = builder.header(*name, *value);
                }
                builder.call()
            }
            Payload::Json(body) | Payload::Form(body) => {
                let content_type = match request.body {
                    Payload::Json(_) => "application/json",
                    _ => "application/x-www-form-urlencoded",
                };
                let mut builder = self
                    .agent
                    .post(request.url)
                    .header("Content-Type", content_type);
                for (name, value) in request.headers {
                    builder = builder.header(*name, *value);
                }
                builder.send(body)
            }
        };
        let mut response = result.map_err(|error| {
            let reason = redact(&error.to_string(), request.secrets);
            match error {
                // Refused or reset connections are worth another try; a timeout already
                // spent the time allowed and an unknown host will not appear.
                ureq::Error::Io(_) | ureq::Error::ConnectionFailed => Failure::Transient(reason),
                _ => Failure::Final(unreachable(request, reason)),
            }
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let metadata_flavor = header("metadata-flavor");
        if (300..400).contains(&status) {
            return Err(Failure::Final(bad_response(format!(
                "{}: HTTP {status} redirect refused (a redirect would carry credentials to \
                 another address)",
                request.what
            ))));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map(Zeroizing::new)
            .map_err(|e| Failure::Transient(redact(&e.to_string(), request.secrets)))?;
        let reply = Reply {
            status,
            body,
            metadata_flavor,
        };
        if matches!(status, 429 | 500 | 502 | 503 | 504) {
            Ok(Attempt::Retry {
                status,
                retry_after,
                reply,
            })
        } else {
            Ok(Attempt::Final(reply))
        }
    }
}

/// What one attempt gave.
enum Attempt {
    /// An answer to return.
    Final(Reply),
    /// A transient error status, worth another attempt.
    Retry {
        status: u16,
        retry_after: Option<Duration>,
        reply: Reply,
    },
}

/// Why one attempt gave no answer.
enum Failure {
    /// Worth another attempt (the reason, already redacted).
    Transient(String),
    /// Not worth another attempt.
    Final(Error),
}

fn unreachable(request: &Request<'_>, reason: String) -> Error {
    let reason = redact(&reason, request.secrets);
    Error::key_service(
        KeyServiceFailure::Unreachable,
        format!("{}: {reason}", request.what),
    )
}

/// An error for an answer that makes no sense.
pub(crate) fn bad_response(message: impl Into<String>) -> Error {
    Error::key_service(KeyServiceFailure::BadResponse, message)
}

/// The error for a final non-2xx answer: 5xx is `Unreachable` (the service is not answering
/// about this key), anything else `Refused`; the message is the service's own reason.
pub(crate) fn status_error(request: &Request<'_>, reply: &Reply) -> Error {
    let kind = if reply.status >= 500 {
        KeyServiceFailure::Unreachable
    } else {
        KeyServiceFailure::Refused
    };
    let reason = redact(&service_reason(reply.status, &reply.body), request.secrets);
    Error::key_service(kind, format!("{}: {reason}", request.what))
}

/// `HTTP <status> <code>: <message>` from the error bodies these services send: Google's
/// `{"error": {"code", "message", "status"}}`, Key Vault's `{"error": {"code", "message",
/// "innererror": {"code"}}}` and OAuth's `{"error", "error_description"}`. Nothing else of
/// the body is kept (it is not echoed whole: it might hold anything), and the text is cut
/// to a bounded length.
pub(crate) fn service_reason(status: u16, body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let (code, message) = match error {
        Some(Value::Object(fields)) => {
            let mut code = fields
                .get("status")
                .and_then(Value::as_str)
                .or_else(|| fields.get("code").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            let inner = fields
                .get("innererror")
                .or_else(|| fields.get("innerError"))
                .and_then(|v| v.get("code"))
                .and_then(Value::as_str);
            if let Some(inner) = inner {
                code = format!("{code} ({inner})");
            }
            (code, text(fields.get("message")))
        }
        Some(Value::String(code)) => (
            code.clone(),
            text(parsed.as_ref().and_then(|v| v.get("error_description"))),
        ),
        _ => (String::new(), String::new()),
    };
    let mut reason = format!("HTTP {status}");
    if !code.trim().is_empty() {
        reason.push(' ');
        reason.push_str(code.trim());
    }
    if !message.trim().is_empty() {
        reason.push_str(": ");
        reason.push_str(message.trim());
    }
    truncate(clean(&reason), MAX_REASON)
}

/// Only printable characters: a hostile answer cannot forge log lines.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// `text` with every occurrence of each secret (of 4 bytes or more) replaced by `[redacted]`:
/// a service that echoes a request field back cannot put a secret into an error message.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 && text.contains(secret) {
            text = text.replace(secret, "[redacted]");
        }
    }
    text
}

/// Refuses an address that would send credentials or keys in the clear: `https://` is
/// required, except for plain http to a loopback host (a local test server or a sidecar that
/// terminates TLS; see [`super::check_transport`]).
///
/// # Errors
/// [`Error::InvalidArgument`] for any other address.
pub(crate) fn check_url(url: &str) -> Result<()> {
    super::check_transport(url)
}

/// As [`check_url`], and also plain http to the link-local instance metadata endpoints of
/// Google Cloud and Azure (`169.254.169.254`, `metadata.google.internal`), which only speak
/// http and are reachable only from the machine itself. Only token requests to a metadata
/// server are checked with this; key-service calls always go through [`check_url`].
///
/// # Errors
/// [`Error::InvalidArgument`] for any other address.
pub(crate) fn check_metadata_url(url: &str) -> Result<()> {
    if check_url(url).is_ok() {
        return Ok(());
    }
    let lower = url.trim().to_ascii_lowercase();
    let host = lower
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .filter(|authority| !authority.contains('@'))
        .map(|authority| authority.split(':').next().unwrap_or_default());
    match host {
        Some("169.254.169.254" | "metadata.google.internal") => Ok(()),
        _ => Err(Error::invalid_argument(
            "metadata server address must be https://, loopback, 169.254.169.254 or \
             metadata.google.internal",
        )),
    }
}

/// `application/x-www-form-urlencoded` text of `pairs`, in a buffer wiped when dropped (it
/// carries client secrets and signed assertions).
pub(crate) fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let size = pairs.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum();
    let mut out = Zeroizing::new(String::with_capacity(size));
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(key, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// `text` percent-encoded for a URL query or form value (everything but unreserved
/// characters).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(3 * text.len());
    percent_encode(text, &mut out);
    out
}

fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
}

/// JSON text of `value` in a buffer wiped when dropped, sized so that it is not reallocated
/// (which would leave copies of a key behind) for the small bodies sent here.
pub(crate) fn json_body(value: &impl serde::Serialize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *out, value)
        .map_err(|_| Error::invalid_argument("request body could not be encoded"))?;
    Ok(out)
}

/// Where bearer tokens come from.
pub(crate) trait TokenSource: Send + Sync {
    /// A new token and how long it is valid (`None`: unknown, kept until the service
    /// refuses it).
    ///
    /// # Errors
    /// [`Error::KeyService`] when the token endpoint fails or refuses.
    fn fetch(&self, http: &Http) -> Result<(Zeroizing<String>, Option<Duration>)>;

    /// Whether fetching again may give a different token (false for a fixed token).
    fn refreshable(&self) -> bool;
}

/// A cached token: fetched on first use and again shortly before it expires, or after the
/// service refused it.
pub(crate) struct Bearer<S> {
    source: S,
    cached: Mutex<Option<(Zeroizing<String>, Option<Instant>)>>,
}

impl<S: fmt::Debug> fmt::Debug for Bearer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cached token is a secret: never printed.
        f.debug_struct("Bearer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> Bearer<S> {
    /// Tokens from `source`.
    pub fn new(source: S) -> Bearer<S> {
        Bearer {
            source,
            cached: Mutex::new(None),
        }
    }

    /// The current token, fetched when there is none or it is about to expire.
    pub fn token(&self, http: &Http) -> Result<Zeroizing<String>> {
        // Held while fetching, so that concurrent callers wait for one fetch.
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, refresh_at)) = cached.as_ref()
            && refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.source.fetch(http)?;
        let refresh_at = lifetime.map(|life| {
            let margin = REFRESH_MARGIN.min(life / 4);
            Instant::now() + life.saturating_sub(margin)
        });
        *cached = Some((token.clone(), refresh_at));
        Ok(token)
    }

    /// Drops the cached token (the service refused it); returns whether another can be had.
    pub fn invalidate(&self) -> bool {
        if !self.source.refreshable() {
            return false;
        }
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        true
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }
}

/// Sends a request with `Authorization: Bearer <token>` (a JSON POST with `body`, a GET
/// without); after a 401, fetches a new token once and tries again (an expired or revoked
/// token). Returns a 2xx answer.
///
/// # Errors
/// As [`Http::send`]; [`status_error`] for a final non-2xx answer.
pub(crate) fn send_authorized<S: TokenSource>(
    http: &Http,
    bearer: &Bearer<S>,
    what: &str,
    url: &str,
    body: Option<&[u8]>,
) -> Result<Reply> {
    check_url(url)?;
    let mut refreshed = false;
    loop {
        let token = bearer.token(http)?;
        let authorization = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let request = Request {
            what,
            url,
            headers: &[("Authorization", authorization.as_str())],
            body: body.map_or(Payload::None, Payload::Json),
            secrets: &[token.as_str()],
            metadata: false,
        };
        let reply = http.send(&request)?;
        if (200..300).contains(&reply.status) {
            return Ok(reply);
        }
        if reply.status == 401 && !refreshed && bearer.invalidate() {
            refreshed = true;
            continue;
        }
        return Err(status_error(&request, &reply));
    }
}

/// Takes string field `name` out of `value` (so that the copy in the JSON tree is gone)
/// into a buffer wiped when dropped.
pub(crate) fn take_secret(value: &mut Value, name: &str) -> Option<Zeroizing<String>> {
    match value.get_mut(name).map(Value::take) {
        Some(Value::String(text)) => Some(Zeroizing::new(text)),
        _ => None,
    }
}

/// A token answer of an OAuth endpoint or a metadata server: `access_token` and
/// `expires_in` (a number, or a string of digits as Azure's IMDS sends it).
pub(crate) fn token_answer(
    reply: &Reply,
    what: &str,
) -> Result<(Zeroizing<String>, Option<Duration>)> {
    let mut answer = reply.json(what)?;
    let token = take_secret(&mut answer, "access_token")
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| bad_response(format!("{what}: no access_token in the answer")))?;
    let expires_in = match answer.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok((token, expires_in.map(Duration::from_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_each_error_shape() {
        let google = r#"{"error": {"code": 400, "message": "projects/p/.../cryptoKeyVersions/1 is not enabled, current state is: DISABLED.", "status": "FAILED_PRECONDITION"}}"#;
        assert_eq!(
            service_reason(400, google),
            "HTTP 400 FAILED_PRECONDITION: projects/p/.../cryptoKeyVersions/1 is not enabled, \
             current state is: DISABLED."
        );
        let azure = r#"{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}"#;
        assert_eq!(
            service_reason(403, azure),
            "HTTP 403 Forbidden (KeyDisabled): Operation unwrapKey is not allowed on a disabled key."
        );
        let oauth = r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(
            service_reason(400, oauth),
            "HTTP 400 invalid_grant: Invalid JWT Signature."
        );
        assert_eq!(service_reason(502, "<html>gateway</html>"), "HTTP 502");
        let long = format!(
            r#"{{"error":{{"code":"X","message":"{}"}}}}"#,
            "é".repeat(600)
        );
        assert!(service_reason(400, &long).len() <= MAX_REASON + 3);
        let forged = r#"{"error":{"code":"X","message":"line\nFAKE LOG LINE"}}"#;
        assert!(!service_reason(400, forged).contains('\n'));
    }

    #[test]
    fn secrets_are_cut_out() {
        assert_eq!(
            redact(
                "bad secret s3cr3t-value for s3cr3t-value",
                &["s3cr3t-value"]
            ),
            "bad secret [redacted] for [redacted]"
        );
        assert_eq!(redact("abc", &["", "ab"]), "abc");
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[
                ("a b", "x&y=z"),
                ("scope", "https://vault.azure.net/.default")
            ])
            .as_str(),
            "a%20b=x%26y%3Dz&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        );
    }

    #[test]
    fn metadata_endpoints_may_be_plain_http_only_for_tokens() {
        for ok in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://127.0.0.1:9/x",
            "https://cloudkms.googleapis.com",
        ] {
            assert!(check_metadata_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254.evil.example/",
            "http://user@169.254.169.254/",
            "http://metadata.google.internal.evil.example/",
            "http://cloudkms.googleapis.com",
            "http://10.0.0.1/",
        ] {
            assert!(check_metadata_url(bad).is_err(), "{bad}");
        }
        // A key-service call never goes to a metadata address over plain http.
        for bad in [
            "http://169.254.169.254/keys/k/wrapkey",
            "http://metadata.google.internal/v1/projects/p",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
