//! What the KMS tests share: the servers' settings, typed-failure checks, and the round trip
//! every client must pass.

use std::collections::HashMap;

use ciphervec::kms::{Kms, KmsEnvelope, WrappedKey};
use ciphervec::{Database, Error, IndexConfig, Item, KeyProvider, KeyServiceFailure, Query};

/// The servers' settings from `target/kms-servers.env`; panics when the file is missing (the
/// tests that call this are `#[ignore]`d unless the servers were started).
pub fn servers() -> HashMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kms-servers.env");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(e) => panic!(
            "no local KMS servers ({}: {e}): run scripts/kms_servers.sh start, or \
             scripts/test_kms.sh",
            path.display()
        ),
    }
}

/// Whether `result` failed with a key-service error of kind `want`.
pub fn is_failure<T>(result: &Result<T, Error>, want: KeyServiceFailure) -> bool {
    matches!(result, Err(Error::KeyService { kind, .. }) if *kind == want)
}

/// The message of a key-service error of kind `want`; panics on anything else.
pub fn failure_message<T>(result: Result<T, Error>, want: KeyServiceFailure) -> String {
    match result {
        Err(Error::KeyService { kind, message }) if kind == want => message,
        Err(other) => panic!("expected a {want:?} key-service error, got {other:?}"),
        Ok(_) => panic!("expected a {want:?} key-service error, got success"),
    }
}

/// What every client must do: generate, unwrap, refuse a wrong context or an altered
/// wrapped key, and drive an index through `KmsEnvelope` including a key rotation.
pub fn exercise<K: Kms>(make: impl Fn() -> K) {
    let kms = make();
    let (key, wrapped) = kms.generate_key("docs").unwrap();
    assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), key);
    let (key2, wrapped2) = kms.generate_key("docs").unwrap();
    assert_ne!(key, key2, "every data key is fresh");
    assert_ne!(wrapped, wrapped2);

    // The index name is bound as encryption context.
    assert!(is_failure(
        &kms.unwrap_key(&wrapped, "other"),
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
#[cfg(any(feature = "aws-kms", feature = "vault"))]
pub const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";
