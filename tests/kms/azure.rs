//! Azure Key Vault (`wrapkey` / `unwrapkey`, RSA-OAEP-256, the index name bound inside the
//! wrap) against the repository's Key Vault server: every credential kind (a fixed token, an
//! Entra client secret, a managed identity), key versions (a new version, a missing one, a
//! disabled one), tokens that expire or are revoked, 429/503 retried within a bound,
//! redirects refused, plain http refused off loopback, and no secret in any error.

use std::collections::HashMap;
use std::time::Duration;

use ciphervec::kms::Kms;
use ciphervec::kms::azure::{AzureCredentials, AzureKeyVault, AzureKeyVaultBuilder};
use ciphervec::{Error, KeyServiceFailure};
use serde_json::json;

use super::common::{exercise, failure_message, servers};
use super::mock::{Mock, unique};

fn mock(servers: &HashMap<String, String>) -> Mock {
    Mock::new(&servers["CIPHERVEC_TEST_AZURE_VAULT"])
}

/// A builder for key identifier `key_id`, with quick retries.
fn builder(key_id: &str) -> AzureKeyVaultBuilder {
    AzureKeyVault::builder(key_id)
        .timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(10))
}

/// A client of `key_id` with the server's fixed token.
fn with_token(servers: &HashMap<String, String>, key_id: &str) -> AzureKeyVault {
    builder(key_id)
        .access_token(&servers["CIPHERVEC_TEST_AZURE_TOKEN"])
        .build()
        .unwrap()
}

/// The app registration's client secret, at the server's token endpoint for `tenant`.
fn client_secret(servers: &HashMap<String, String>, tenant: &str) -> AzureCredentials {
    AzureCredentials::client_secret(
        tenant,
        &servers["CIPHERVEC_TEST_AZURE_CLIENT_ID"],
        &servers["CIPHERVEC_TEST_AZURE_CLIENT_SECRET"],
    )
    .authority_host(&servers["CIPHERVEC_TEST_AZURE_VAULT"])
}

/// A new RSA key of its own for one test (as Key Vault's `create key` makes it): its
/// versionless identifier and its first version.
fn new_key(servers: &HashMap<String, String>, name: &str) -> (String, String) {
    let name = unique(name);
    let version = new_version(servers, &name);
    (
        format!("{}/keys/{name}", servers["CIPHERVEC_TEST_AZURE_VAULT"]),
        version,
    )
}

/// A new version of key `name`, now its current one.
fn new_version(servers: &HashMap<String, String>, name: &str) -> String {
    let answer = mock(servers).call(
        "POST",
        &format!("/keys/{name}/create?api-version=7.4"),
        Some(&servers["CIPHERVEC_TEST_AZURE_TOKEN"]),
        &json!({"kty": "RSA", "key_size": 2048}),
    );
    let kid = answer["key"]["kid"].as_str().unwrap();
    kid.rsplit('/').next().unwrap().to_owned()
}

fn set_enabled(servers: &HashMap<String, String>, key_id: &str, version: &str, enabled: bool) {
    let path = key_id.trim_start_matches(&servers["CIPHERVEC_TEST_AZURE_VAULT"]);
    mock(servers).call(
        "PATCH",
        &format!("{path}/{version}?api-version=7.4"),
        Some(&servers["CIPHERVEC_TEST_AZURE_TOKEN"]),
        &json!({"attributes": {"enabled": enabled}}),
    );
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn generate_unwrap_bind_and_rotate_with_a_fixed_token() {
    let servers = servers();
    exercise(|| with_token(&servers, &servers["CIPHERVEC_TEST_AZURE_KEY_ID"]));
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn client_secrets_and_managed_identities_give_tokens() {
    let servers = servers();
    let key_id = &servers["CIPHERVEC_TEST_AZURE_KEY_ID"];
    let vault = &servers["CIPHERVEC_TEST_AZURE_VAULT"];
    let tenant = unique("tenant");
    let app = builder(key_id)
        .credentials(client_secret(&servers, &tenant))
        .build()
        .unwrap();
    let (index_key, wrapped) = app.generate_key("docs").unwrap();
    let log = mock(&servers).log(&format!("/{tenant}/oauth2/v2.0/token"));
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("POST", format!("/{tenant}/oauth2/v2.0/token").as_str(), 200)
    );

    let imds = format!("{vault}/metadata/identity/oauth2/token");
    let system = builder(key_id)
        .credentials(AzureCredentials::managed_identity(None).imds_endpoint(&imds))
        .build()
        .unwrap();
    assert_eq!(system.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    let user_assigned = AzureCredentials::managed_identity(Some(
        servers["CIPHERVEC_TEST_AZURE_USER_ASSIGNED_ID"].clone(),
    ))
    .imds_endpoint(&imds);
    let user = builder(key_id).credentials(user_assigned).build().unwrap();
    assert_eq!(user.unwrap_key(&wrapped, "docs").unwrap(), index_key);

    // An identity IMDS does not know, and a wrong client secret, are refused; the secret is
    // not in the message.
    let unknown =
        AzureCredentials::managed_identity(Some("99999999-0000-0000-0000-000000000000".into()))
            .imds_endpoint(&imds);
    let unknown = builder(key_id).credentials(unknown).build().unwrap();
    let message = failure_message(
        unknown.unwrap_key(&wrapped, "docs"),
        KeyServiceFailure::Refused,
    );
    assert!(message.contains("Identity not found"), "{message}");
    let secret = "wrong-secret-that-must-not-leak";
    let wrong = AzureCredentials::client_secret(&tenant, "some-app", secret).authority_host(vault);
    let wrong = builder(key_id).credentials(wrong).build().unwrap();
    let message = failure_message(
        wrong.unwrap_key(&wrapped, "docs"),
        KeyServiceFailure::Refused,
    );
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains("must-not-leak"), "{message}");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn new_missing_and_disabled_key_versions() {
    let servers = servers();
    let (key_id, first_version) = new_key(&servers, "versions");
    let kms = with_token(&servers, &key_id);
    let (first_key, first) = kms.generate_key("docs").unwrap();
    assert!(
        first
            .as_str()
            .starts_with(&format!("azurekv:{first_version}:")),
        "wrapped by the current version"
    );

    // A new version: new keys are wrapped by it, old ones are unwrapped by theirs.
    let name = key_id.rsplit('/').next().unwrap();
    let second_version = new_version(&servers, name);
    let (second_key, second) = kms.generate_key("docs").unwrap();
    assert!(
        second
            .as_str()
            .starts_with(&format!("azurekv:{second_version}:"))
    );
    assert_eq!(kms.unwrap_key(&first, "docs").unwrap(), first_key);

    // A pinned version wraps with that version; one that does not exist is refused.
    let pinned = with_token(&servers, &format!("{key_id}/{first_version}"));
    let (_, pinned_wrapped) = pinned.generate_key("docs").unwrap();
    assert!(
        pinned_wrapped
            .as_str()
            .starts_with(&format!("azurekv:{first_version}:"))
    );
    let missing = with_token(
        &servers,
        &format!("{key_id}/0123456789abcdef0123456789abcdef"),
    );
    let message = failure_message(missing.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("KeyNotFound"), "{message}");

    // The first version disabled: what it wrapped is refused, and it wraps nothing new.
    set_enabled(&servers, &key_id, &first_version, false);
    let message = failure_message(kms.unwrap_key(&first, "docs"), KeyServiceFailure::Refused);
    assert!(message.contains("KeyDisabled"), "{message}");
    let message = failure_message(pinned.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("KeyDisabled"), "{message}");
    assert_eq!(kms.unwrap_key(&second, "docs").unwrap(), second_key);
    set_enabled(&servers, &key_id, &first_version, true);
    assert_eq!(kms.unwrap_key(&first, "docs").unwrap(), first_key);
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn expired_and_revoked_tokens_are_fetched_again() {
    let servers = servers();
    let mock = mock(&servers);
    let (key_id, _) = new_key(&servers, "expiry");
    let tenant = unique("expiry");
    let token_path = format!("/{tenant}/oauth2/v2.0/token");
    let kms = builder(&key_id)
        .credentials(client_secret(&servers, &tenant))
        .build()
        .unwrap();
    let (index_key, wrapped) = kms.generate_key("docs").unwrap();
    assert_eq!(mock.log(&token_path).len(), 1, "one token for get and wrap");

    // Revoked on the server while the client still holds it: a 401, one new token, success.
    mock.revoke_tokens(&token_path);
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    assert_eq!(mock.log(&token_path).len(), 2);

    // Short-lived tokens are replaced before they expire: no 401 on the way.
    mock.token_lifetime(&token_path, 2);
    mock.revoke_tokens(&token_path);
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    let fetched = mock.log(&token_path).len();
    std::thread::sleep(Duration::from_millis(2200));
    let name = key_id.rsplit('/').next().unwrap();
    let unauthorized = || {
        mock.log(&format!("/keys/{name}/"))
            .iter()
            .filter(|r| r.status == 401)
            .count()
    };
    let before = unauthorized();
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), index_key);
    assert_eq!(
        mock.log(&token_path).len(),
        fetched + 1,
        "a new token after expiry"
    );
    assert_eq!(unauthorized(), before, "the old one was not tried");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn throttling_and_unavailability_are_retried_within_a_bound() {
    let servers = servers();
    let mock = mock(&servers);
    let (key_id, version) = new_key(&servers, "retries");
    let kms = builder(&format!("{key_id}/{version}"))
        .access_token(&servers["CIPHERVEC_TEST_AZURE_TOKEN"])
        .max_retries(2)
        .build()
        .unwrap();
    let name = key_id.rsplit('/').next().unwrap();
    let wraps = || mock.log(&format!("/keys/{name}/{version}/wrapkey")).len();

    mock.fault(&format!("/keys/{name}/{version}/wrapkey"), &[429, 503]);
    let before = wraps();
    kms.generate_key("docs").unwrap();
    assert_eq!(wraps() - before, 3, "two retries, then the answer");

    mock.fault(
        &format!("/keys/{name}/{version}/wrapkey"),
        &[503, 503, 503, 503],
    );
    let before = wraps();
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::Unreachable);
    assert_eq!(wraps() - before, 3, "at most max_retries + 1 attempts");
    assert!(message.contains("ServiceUnavailable"), "{message}");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn redirects_are_refused_and_never_followed() {
    let servers = servers();
    let mock = mock(&servers);
    let (key_id, _) = new_key(&servers, "redirected");
    let name = key_id.rsplit('/').next().unwrap();
    mock.redirect(&format!("/keys/{name}"));
    let kms = with_token(&servers, &key_id);
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::BadResponse);
    assert!(message.contains("redirect"), "{message}");
    assert_eq!(mock.landing_hits(), 0, "the redirect was followed");
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn a_refused_token_is_not_in_the_error() {
    let servers = servers();
    let kms = builder(&servers["CIPHERVEC_TEST_AZURE_KEY_ID"])
        .access_token("eyJ.made-up-token-that-must-not-leak")
        .build()
        .unwrap();
    let message = failure_message(kms.generate_key("docs"), KeyServiceFailure::Refused);
    assert!(message.contains("Unauthorized"), "{message}");
    assert!(!message.contains("made-up-token"), "{message}");
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let refused =
        |result: Result<AzureKeyVault, Error>| matches!(result, Err(Error::InvalidArgument { .. }));
    assert!(refused(
        AzureKeyVault::builder("http://acme.vault.azure.net/keys/k")
            .access_token("t")
            .build()
    ));
    let https = "https://acme.vault.azure.net/keys/k";
    let remote_authority = AzureCredentials::client_secret("tenant", "client", "secret")
        .authority_host("http://login.example.com");
    assert!(refused(
        AzureKeyVault::builder(https)
            .credentials(remote_authority)
            .build()
    ));
    let remote_imds =
        AzureCredentials::managed_identity(None).imds_endpoint("http://10.0.0.1/token");
    assert!(refused(
        AzureKeyVault::builder(https)
            .credentials(remote_imds)
            .build()
    ));
    // The link-local IMDS (plain http by design), loopback and https are fine.
    assert!(
        AzureKeyVault::builder(https)
            .credentials(AzureCredentials::managed_identity(None))
            .build()
            .is_ok()
    );
    assert!(
        AzureKeyVault::builder("http://127.0.0.1:9/keys/k")
            .access_token("t")
            .build()
            .is_ok()
    );
}
