//! Google Cloud KMS (`encrypt` / `decrypt` with the index name as additional authenticated
//! data) against the repository's Cloud KMS server: every credential kind (a fixed token, a
//! service account's signed JWT, gcloud's user credentials, the metadata server), key
//! versions (rotation, a version that does not exist, a disabled one), tokens that expire
//! or are revoked, 429/503 retried within a bound, redirects refused, plain http refused
//! off loopback, and no secret in any error.

use std::collections::HashMap;
use std::time::Duration;

use ciphervec::kms::Kms;
use ciphervec::kms::gcp::{GcpCredentials, GcpKms, GcpKmsBuilder};
use ciphervec::{Error, KeyServiceFailure};
use serde_json::json;

use super::common::{exercise, failure_message, is_failure, servers};
use super::mock::{Mock, unique};

fn mock(servers: &HashMap<String, String>) -> Mock {
    Mock::new(&servers["CIPHERVEC_TEST_GCP_ENDPOINT"])
}

/// A builder for `key` at the test server, with quick retries.
fn builder(servers: &HashMap<String, String>, key: &str) -> GcpKmsBuilder {
    GcpKms::builder(key)
        .endpoint(&servers["CIPHERVEC_TEST_GCP_ENDPOINT"])
        .timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(10))
}

/// A client of `key` with the server's fixed token.
fn with_token(servers: &HashMap<String, String>, key: &str) -> GcpKms {
    builder(servers, key)
        .access_token(&servers["CIPHERVEC_TEST_GCP_TOKEN"])
        .build()
        .unwrap()
}

/// A new symmetric key of its own for one test (version 1, primary), made as Cloud KMS's
/// `cryptoKeys.create` makes it; returns its resource name.
fn new_key(servers: &HashMap<String, String>, name: &str) -> String {
    let ring = &servers["CIPHERVEC_TEST_GCP_KEY_RING"];
    let name = unique(name);
    let answer = mock(servers).call(
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId={name}"),
        Some(&servers["CIPHERVEC_TEST_GCP_TOKEN"]),
        &json!({"purpose": "ENCRYPT_DECRYPT"}),
    );
    answer["name"].as_str().unwrap().to_owned()
}

/// The service account's credentials file with its token endpoint moved to `path` on the
/// same server (so that a test's token hooks touch only its own tokens).
fn service_account_at(servers: &HashMap<String, String>, path: &str) -> String {
    let text = std::fs::read_to_string(&servers["CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT"]).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["token_uri"] = json!(format!("{}{path}", servers["CIPHERVEC_TEST_GCP_ENDPOINT"]));
    value.to_string()
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn generate_unwrap_bind_and_rotate_with_a_fixed_token() {
    let servers = servers();
    exercise(|| with_token(&servers, &servers["CIPHERVEC_TEST_GCP_KEY"]));
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn service_account_assertions_are_signed_and_checked() {
    let servers = servers();
    let key = &servers["CIPHERVEC_TEST_GCP_KEY"];
    let mock = mock(&servers);
    // The file as Google issues it: its RS256 assertion is exchanged for a token.
    let kms = builder(&servers, key)
        .credentials_file(&servers["CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT"])
        .build()
        .unwrap();
    let (index_key, wrapped) = kms.generate_key("docs").unwrap();
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    let exchanges: Vec<_> = mock
        .log("/token")
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/token" && r.status == 200)
        .collect();
    assert!(!exchanges.is_empty(), "no token exchange was logged");

    // The same account and key id signed by another private key: the server refuses the
    // assertion, and the error names the reason without the assertion itself.
    let impostor = builder(&servers, key)
        .credentials_file(&servers["CIPHERVEC_TEST_GCP_IMPOSTOR"])
        .build()
        .unwrap();
    let message = failure_message(impostor.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("Invalid JWT Signature"), "{message}");
    assert!(
        !message.contains("eyJ"),
        "an assertion leaked into: {message}"
    );
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn gcloud_user_credentials_and_the_metadata_server_give_tokens() {
    let servers = servers();
    let key = &servers["CIPHERVEC_TEST_GCP_KEY"];
    let user = builder(&servers, key)
        .credentials_file(&servers["CIPHERVEC_TEST_GCP_AUTHORIZED_USER"])
        .build()
        .unwrap();
    let (index_key, wrapped) = user.generate_key("docs").unwrap();
    let metadata = builder(&servers, key)
        .metadata_server(Some(servers["CIPHERVEC_TEST_GCP_ENDPOINT"].clone()))
        .build()
        .unwrap();
    assert_eq!(metadata.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    let asked = mock(&servers).log("/computeMetadata/v1/instance/service-accounts/default/token");
    assert!(
        asked
            .iter()
            .any(|r| r.status == 200 && r.path.contains("scopes=")),
        "{asked:?}"
    );
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn rotated_missing_and_disabled_key_versions() {
    let servers = servers();
    let token = servers["CIPHERVEC_TEST_GCP_TOKEN"].clone();
    let mock = mock(&servers);
    let key = new_key(&servers, "versions");
    let kms = with_token(&servers, &key);
    let (first_key, first) = kms.generate_key("docs").unwrap();

    // Rotation: version 2 becomes primary; new keys are wrapped by it, old ones still open.
    mock.call(
        "POST",
        &format!("/v1/{key}/cryptoKeyVersions"),
        Some(&token),
        &json!({}),
    );
    mock.call(
        "POST",
        &format!("/v1/{key}:updatePrimaryVersion"),
        Some(&token),
        &json!({"cryptoKeyVersionId": "2"}),
    );
    let (second_key, second) = kms.generate_key("docs").unwrap();
    assert_eq!(kms.unwrap_key(&first, "docs").unwrap(), first_key);

    // A pinned version that does not exist is refused by the service.
    let missing = with_token(&servers, &format!("{key}/cryptoKeyVersions/7"));
    let message = failure_message(missing.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("NOT_FOUND"), "{message}");
    // A pinned version that exists wraps with that version.
    let pinned = with_token(&servers, &format!("{key}/cryptoKeyVersions/1"));
    let (pinned_key, pinned_wrapped) = pinned.generate_key("docs").unwrap();

    // Version 1 disabled: what it wrapped is refused, what version 2 wrapped still opens.
    mock.call(
        "PATCH",
        &format!("/v1/{key}/cryptoKeyVersions/1?updateMask=state"),
        Some(&token),
        &json!({"state": "DISABLED"}),
    );
    for wrapped in [&first, &pinned_wrapped] {
        let message = failure_message(kms.unwrap_key(wrapped, "docs"), KeyServiceFailure::Refused);
        assert!(message.contains("FAILED_PRECONDITION"), "{message}");
        assert!(message.contains("DISABLED"), "{message}");
    }
    assert!(is_failure(
        &pinned.generate_key("docs"),
        KeyServiceFailure::Refused
    ));
    assert_eq!(kms.unwrap_key(&second, "docs").unwrap(), second_key);

    // Enabled again, version 1's keys open again (disabling is reversible, unlike destroy).
    mock.call(
        "PATCH",
        &format!("/v1/{key}/cryptoKeyVersions/1?updateMask=state"),
        Some(&token),
        &json!({"state": "ENABLED"}),
    );
    assert_eq!(kms.unwrap_key(&pinned_wrapped, "docs").unwrap(), pinned_key);
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn expired_and_revoked_tokens_are_fetched_again() {
    let servers = servers();
    let mock = mock(&servers);
    let key = new_key(&servers, "expiry");
    let path = &format!("/token/{}", unique("expiry"));
    let kms = builder(&servers, &key)
        .credentials_json(service_account_at(&servers, path))
        .build()
        .unwrap();
    let (index_key, wrapped) = kms.generate_key("docs").unwrap();
    assert_eq!(mock.log(path).len(), 1, "one token for two calls");

    // Revoked on the server while the client still holds it: a 401, one new token, success.
    mock.revoke_tokens(path);
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    assert_eq!(mock.log(path).len(), 2);

    // Short-lived tokens are replaced before they expire: no 401 on the way.
    mock.token_lifetime(path, 2);
    mock.revoke_tokens(path);
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    let fetched = mock.log(path).len();
    std::thread::sleep(Duration::from_millis(2200));
    let unauthorized_before = count_401(&mock, &key);
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    assert_eq!(
        mock.log(path).len(),
        fetched + 1,
        "a new token after expiry"
    );
    assert_eq!(
        count_401(&mock, &key),
        unauthorized_before,
        "the old one was not tried"
    );
}

/// How many Cloud KMS calls on `key` were answered 401 so far.
fn count_401(mock: &Mock, key: &str) -> usize {
    mock.log(key).iter().filter(|r| r.status == 401).count()
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn throttling_and_unavailability_are_retried_within_a_bound() {
    let servers = servers();
    let mock = mock(&servers);
    let key = new_key(&servers, "retries");
    let kms = builder(&servers, &key)
        .access_token(&servers["CIPHERVEC_TEST_GCP_TOKEN"])
        .max_retries(2)
        .build()
        .unwrap();
    let encrypts = || mock.log(&format!("{key}:encrypt")).len();

    mock.fault(&format!("{key}:encrypt"), &[503, 429]);
    let before = encrypts();
    kms.generate_key("docs").unwrap();
    assert_eq!(encrypts() - before, 3, "two retries, then the answer");

    mock.fault(&format!("{key}:encrypt"), &[503, 503, 503, 503]);
    let before = encrypts();
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::Unreachable);
    assert_eq!(encrypts() - before, 3, "at most max_retries + 1 attempts");
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("after 3 attempts"), "{message}");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn redirects_are_refused_and_never_followed() {
    let servers = servers();
    let mock = mock(&servers);
    let key = new_key(&servers, "redirected");
    mock.redirect(&format!("{key}:encrypt"));
    let kms = with_token(&servers, &key);
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::BadResponse);
    assert!(message.contains("redirect"), "{message}");
    assert_eq!(mock.landing_hits(), 0, "the redirect was followed");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn a_refused_token_is_not_in_the_error() {
    let servers = servers();
    let token = "ya29.made-up-token-that-must-not-leak";
    let kms = builder(&servers, &servers["CIPHERVEC_TEST_GCP_KEY"])
        .access_token(token)
        .build()
        .unwrap();
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("UNAUTHENTICATED"), "{message}");
    assert!(!message.contains("made-up-token"), "{message}");
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let key = "projects/p/locations/global/keyRings/r/cryptoKeys/k";
    let refused =
        |result: Result<GcpKms, Error>| matches!(result, Err(Error::InvalidArgument { .. }));
    assert!(refused(
        GcpKms::builder(key)
            .endpoint("http://cloudkms.googleapis.com")
            .access_token("t")
            .build()
    ));
    // A token endpoint in a credentials file, over plain http to a remote host.
    let user = r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s",
                   "refresh_token": "r", "token_uri": "http://oauth2.example.com/token"}"#;
    assert!(refused(GcpKms::builder(key).credentials_json(user).build()));
    // A metadata server that is neither loopback nor the link-local one.
    assert!(refused(
        GcpKms::builder(key)
            .metadata_server(Some("http://metadata.example.com".into()))
            .build()
    ));
    assert!(matches!(
        GcpCredentials::metadata_server(Some("http://10.1.2.3".into())),
        Err(Error::InvalidArgument { .. })
    ));
    // Loopback and https are fine.
    for endpoint in [
        "http://127.0.0.1:9",
        "http://[::1]:9",
        "https://cloudkms.googleapis.com",
    ] {
        assert!(
            GcpKms::builder(key)
                .endpoint(endpoint)
                .access_token("t")
                .build()
                .is_ok(),
            "{endpoint}"
        );
    }
}
