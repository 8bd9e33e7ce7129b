//! The KMS clients against real local servers: moto (AWS KMS API) and an OpenBao dev server
//! (Vault transit API), started on loopback by `scripts/kms_servers.sh start`, which writes
//! `target/kms-servers.env`. Run with `scripts/test_kms.sh` (or `.ci/run`).
//!
//! Without the servers these tests print why and pass, unless `CIPHERVEC_REQUIRE_KMS=1`
//! (set by `.ci/run`), where a missing server fails them.
#![cfg(any(feature = "aws-kms", feature = "vault"))]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ciphervec::kms::{Kms, KmsEnvelope, WrappedKey};
use ciphervec::{
    Database, Error, IndexConfig, IndexKey, Item, KeyProvider, KeyServiceFailure, Query,
};

/// The servers' settings from `target/kms-servers.env`, or `None` (with the reason printed).
fn servers() -> Option<HashMap<String, String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kms-servers.env");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        Err(_) if std::env::var("CIPHERVEC_REQUIRE_KMS").as_deref() == Ok("1") => {
            panic!("CIPHERVEC_REQUIRE_KMS=1 but {} is missing", path.display())
        }
        Err(_) => {
            eprintln!("skipped: no local KMS servers (run scripts/kms_servers.sh start)");
            None
        }
    }
}

fn is_failure(result: Result<IndexKey, Error>, want: KeyServiceFailure) -> bool {
    matches!(result, Err(Error::KeyService { kind, .. }) if kind == want)
}

/// What every client must do: generate, unwrap, refuse a wrong context or an altered
/// wrapped key, and drive an index through `KmsEnvelope` including a key rotation.
fn exercise<K: Kms>(make: impl Fn() -> K) {
    let kms = make();
    let (key, wrapped) = kms.generate_key("docs").unwrap();
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), key);
    let (key2, wrapped2) = kms.generate_key("docs").unwrap();
    assert_ne!(key, key2, "every data key is fresh");
    assert_ne!(wrapped, wrapped2);

    // The index name is bound as encryption context.
    assert!(is_failure(
        kms.unwrap_key(&wrapped, "other"),
        KeyServiceFailure::Refused
    ));
    // An altered wrapped key is refused (by the service, or as text before it).
    let text = wrapped.as_str();
    let middle = text.len() / 2;
    let flipped = if &text[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let altered = WrappedKey::new(format!(
        "{}{}{}",
        &text[..middle],
        flipped,
        &text[middle + 1..]
    ));
    let altered = altered.unwrap();
    match kms.unwrap_key(&altered, "docs") {
        Err(
            Error::KeyService {
                kind: KeyServiceFailure::Refused,
                ..
            }
            | Error::InvalidKey,
        ) => {}
        other => panic!("altered wrapped key gave {:?}", other.map(|_| "a key")),
    }

    // End to end: create with the generated key, reopen through the provider, rotate.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let (provider, key) = KmsEnvelope::generate(make(), "docs").unwrap();
    let index = db
        .create_index("docs", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    let items: Vec<Item> = (0..50)
        .map(|i| Item::new(format!("id{i}"), vec![i as f32, 1.0, (i % 7) as f32, 2.0]))
        .collect();
    index.upsert(items).unwrap();
    let query = Query::new(vec![10.0, 1.0, 3.0, 2.0]).top_k(5);
    let before = index.query(&query).unwrap();
    drop(index);

    let stored = provider.wrapped_key().to_string();
    let reopened = KmsEnvelope::new(make(), WrappedKey::new(stored).unwrap(), "docs");
    assert_eq!(
        db.open_index_with("docs", &reopened)
            .unwrap()
            .query(&query)
            .unwrap(),
        before
    );

    let (rotated, new_key) = KmsEnvelope::generate(make(), "docs").unwrap();
    db.rotate_index_key("docs", &reopened.index_key().unwrap(), &new_key)
        .unwrap();
    assert!(matches!(
        db.open_index_with("docs", &reopened),
        Err(Error::WrongKey)
    ));
    assert_eq!(
        db.open_index_with("docs", &rotated)
            .unwrap()
            .query(&query)
            .unwrap(),
        before
    );
}

/// A closed loopback port: nothing listens on port 1 without root privileges.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

#[cfg(feature = "aws-kms")]
mod aws {
    use super::*;
    use ciphervec::kms::aws::AwsKms;

    fn client(servers: &HashMap<String, String>, endpoint: &str) -> AwsKms {
        AwsKms::builder(&servers["CIPHERVEC_TEST_AWS_KEY_ID"])
            .endpoint(endpoint)
            .region("us-east-1")
            .static_credentials("test", "test")
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    #[test]
    fn generate_unwrap_bind_and_rotate() {
        let Some(servers) = servers() else { return };
        exercise(|| client(&servers, &servers["CIPHERVEC_TEST_AWS_ENDPOINT"]));
    }

    #[test]
    fn unknown_key_is_refused() {
        let Some(servers) = servers() else { return };
        let kms = AwsKms::builder("00000000-0000-0000-0000-000000000000")
            .endpoint(&servers["CIPHERVEC_TEST_AWS_ENDPOINT"])
            .region("us-east-1")
            .static_credentials("test", "test")
            .build()
            .unwrap();
        assert!(matches!(
            kms.generate_key("docs"),
            Err(Error::KeyService {
                kind: KeyServiceFailure::Refused,
                ..
            })
        ));
    }

    #[test]
    fn unreachable_server_is_a_typed_error() {
        let Some(servers) = servers() else { return };
        let kms = client(&servers, DEAD_ENDPOINT);
        let started = Instant::now();
        let error = kms
            .generate_key("docs")
            .map(|_| ())
            .expect_err("no server there");
        assert!(
            matches!(
                error,
                Error::KeyService {
                    kind: KeyServiceFailure::Unreachable,
                    ..
                }
            ),
            "{error}"
        );
        println!(
            "unreachable reported after {:?}: {error}",
            started.elapsed()
        );
    }

    #[test]
    fn works_when_called_inside_another_runtime() {
        let Some(servers) = servers() else { return };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let endpoint = servers["CIPHERVEC_TEST_AWS_ENDPOINT"].clone();
        runtime.block_on(async {
            let kms = client(&servers, &endpoint);
            let (key, wrapped) = kms.generate_key("docs").unwrap();
            assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), key);
            drop(kms); // dropping the client inside a runtime must not panic
        });
    }
}

#[cfg(feature = "vault")]
mod vault {
    use super::*;
    use ciphervec::kms::vault::VaultTransit;

    fn client(servers: &HashMap<String, String>) -> VaultTransit {
        VaultTransit::new(
            &servers["CIPHERVEC_TEST_VAULT_ADDR"],
            &servers["CIPHERVEC_TEST_VAULT_TOKEN"],
            &servers["CIPHERVEC_TEST_VAULT_KEY"],
        )
    }

    #[test]
    fn generate_unwrap_bind_and_rotate() {
        let Some(servers) = servers() else { return };
        exercise(|| client(&servers));
    }

    #[test]
    fn bad_token_and_unknown_key_are_refused() {
        let Some(servers) = servers() else { return };
        let addr = &servers["CIPHERVEC_TEST_VAULT_ADDR"];
        let bad_token =
            VaultTransit::new(addr, "not-a-token", &servers["CIPHERVEC_TEST_VAULT_KEY"]);
        assert!(is_failure(
            bad_token.generate_key("docs").map(|(k, _)| k),
            KeyServiceFailure::Refused
        ));
        let (_, wrapped) = client(&servers).generate_key("docs").unwrap();
        let unknown =
            VaultTransit::new(addr, &servers["CIPHERVEC_TEST_VAULT_TOKEN"], "no-such-key");
        assert!(is_failure(
            unknown.unwrap_key(&wrapped, "docs"),
            KeyServiceFailure::Refused
        ));
    }

    #[test]
    fn unreachable_server_is_a_typed_error() {
        let Some(_servers) = servers() else { return };
        let kms =
            VaultTransit::new(DEAD_ENDPOINT, "token", "ciphervec").timeout(Duration::from_secs(5));
        assert!(is_failure(
            kms.generate_key("docs").map(|(k, _)| k),
            KeyServiceFailure::Unreachable
        ));
    }
}
