//! `kms_name` at create, against real local key services (moto for AWS KMS, OpenBao for Vault
//! transit, the repository's Cloud KMS and Key Vault servers), started by
//! `scripts/kms_servers.sh` and run by `scripts/test_kms.sh`, which exports the servers'
//! settings (`target/kms-servers.env`). The tests are `#[ignore]`d in a plain `cargo test`
//! (reported as ignored, never passed); with `--include-ignored` and no servers they fail.
//!
//! The oracle: the envelope the server stored, unwrapped through the same key service by the
//! core's own client, must be the key that opens the index in the core, and the core's answers
//! must be the server's.
#![cfg(any(
    feature = "aws-kms",
    feature = "vault",
    feature = "gcp-kms",
    feature = "azure-kv"
))]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ciphervec::kms::{KmsProvider, KmsRegistry, WrappedKey};
use ciphervec::{IndexKey, Query};
use ciphervec_server::ServeOptions;
use ciphervec_server::envelopes::KmsConfig;
use ciphervec_server::sidecar::DirSidecar;
use serde_json::{Value, json};

use super::common::{self, TestServer};

/// A setting of the running key services, exported by scripts/test_kms.sh.
fn setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test_kms.sh (it starts the KMS servers)")
    })
}

/// The registry entries of every provider this build has, named after the provider.
fn registry_json() -> Value {
    let mut entries = serde_json::Map::new();
    if KmsProvider::Vault.available() {
        entries.insert(
            "vault".into(),
            json!({"provider": "vault", "endpoint": setting("CIPHERVEC_TEST_VAULT_ADDR"),
                   "key": setting("CIPHERVEC_TEST_VAULT_KEY"),
                   "token_env": "CIPHERVEC_TEST_VAULT_TOKEN"}),
        );
    }
    if KmsProvider::Aws.available() {
        entries.insert(
            "aws".into(),
            json!({"provider": "aws", "endpoint": setting("CIPHERVEC_TEST_AWS_ENDPOINT"),
                   "key": setting("CIPHERVEC_TEST_AWS_KEY_ID"), "region": "us-east-1"}),
        );
    }
    if KmsProvider::Gcp.available() {
        entries.insert(
            "gcp".into(),
            json!({"provider": "gcp", "endpoint": setting("CIPHERVEC_TEST_GCP_ENDPOINT"),
                   "key": setting("CIPHERVEC_TEST_GCP_KEY"),
                   "token_env": "CIPHERVEC_TEST_GCP_TOKEN"}),
        );
    }
    if KmsProvider::Azure.available() {
        entries.insert(
            "azure".into(),
            json!({"provider": "azure", "key": setting("CIPHERVEC_TEST_AZURE_KEY_ID"),
                   "token_env": "CIPHERVEC_TEST_AZURE_TOKEN"}),
        );
    }
    Value::Object(entries)
}

/// A server on `path` with `registry`.
fn start(path: &Path, registry: &Value) -> TestServer {
    let registry = KmsRegistry::from_json(registry).unwrap();
    let adjust = |o: &mut ServeOptions| {
        let store = Arc::new(DirSidecar::new(path));
        o.kms = Some(KmsConfig::new(registry, store).unwrap());
    };
    TestServer::start_on(path, adjust)
}

fn envelope_path(root: &Path, index: &str) -> PathBuf {
    let hex: String = index.bytes().map(|b| format!("{b:02x}")).collect();
    root.join(".ciphervec-server/kms-envelopes")
        .join(format!("{hex}.json"))
}

/// The key in `index`'s envelope, unwrapped by the core's own client of the entry it names.
fn unwrap_envelope(root: &Path, index: &str, registry: &Value) -> IndexKey {
    let text = std::fs::read_to_string(envelope_path(root, index)).unwrap();
    let envelope: Value = serde_json::from_str(&text).unwrap();
    let registry = KmsRegistry::from_json(registry).unwrap();
    let client = registry
        .get(envelope["kms_name"].as_str().unwrap())
        .unwrap()
        .connect()
        .unwrap();
    let wrapped = WrappedKey::new(envelope["wrapped_key"].as_str().unwrap()).unwrap();
    client.unwrap_key(&wrapped, index).unwrap()
}

fn key_texts(key: &IndexKey) -> Vec<String> {
    let b64 = key.to_base64().to_string();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    vec![b64, hex]
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn kms_name_round_trip_on_every_provider_survives_a_restart_and_delete_removes_the_envelope() {
    let registry = registry_json();
    let providers: Vec<String> = registry.as_object().unwrap().keys().cloned().collect();
    assert!(!providers.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &registry);
    let items = common::vectors(40, 4, 11);
    let queries = common::vectors(3, 4, 12);

    for provider in &providers {
        let name = format!("docs {provider}");
        let r = server.post(
            "/v1/indexes/create",
            // As the Python SDK sends it for a KMS-backed index: index_key null.
            &json!({"index_name": name, "kms_name": provider, "index_key": null, "dimension": 4}),
        );
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        let batch: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"id": format!("v{i}"), "vector": v}))
            .collect();
        let r = server.post(
            "/v1/vectors/upsert",
            &json!({"index_name": name, "index_key": null, "items": batch}),
        );
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        // Without index_key at all, as the JS SDK and cURL send it.
        let r = server.post(
            "/v1/vectors/query",
            &json!({"index_name": name, "query_vectors": queries[0], "top_k": 5}),
        );
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        let served: Vec<String> = r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect();

        // The envelope names the entry, holds no key, and its wrapped key is the index key.
        let envelope = std::fs::read_to_string(envelope_path(dir.path(), &name)).unwrap();
        let key = unwrap_envelope(dir.path(), &name, &registry);
        for text in key_texts(&key) {
            assert!(!envelope.contains(&text), "{provider}: key in the envelope");
        }
        let core = server.database().open_index_read_only(&name, &key).unwrap();
        assert_eq!(core.len(), items.len());
        let from_core: Vec<String> = core
            .query(&Query::new(queries[0].clone()).top_k(5))
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(served, from_core, "{provider}");
        // A key the client makes up does not open a KMS-backed index.
        let (random, _) = common::hex_key();
        let r = server.post(
            "/v1/vectors/num_vectors",
            &json!({"index_name": name, "index_key": random}),
        );
        assert_eq!(r.status, 401, "{provider}: {}", r.text);
    }
    // The server's folder is no index.
    let listed = server.get("/v1/indexes/list");
    assert_eq!(
        listed.body["indexes"].as_array().unwrap().len(),
        providers.len()
    );

    // A restart (nothing cached) opens every index through its envelope.
    server.shutdown();
    let server = start(dir.path(), &registry);
    for provider in &providers {
        let name = format!("docs {provider}");
        let r = server.post(
            "/v1/vectors/num_vectors",
            &json!({"index_name": name, "index_key": null}),
        );
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        assert_eq!(r.body["result"], items.len());
        let r = server.post("/v1/indexes/describe", &json!({"index_name": name}));
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        assert_eq!(r.body["dimension"], 4);
    }

    // Delete without a key removes the index and its envelope.
    for provider in &providers {
        let name = format!("docs {provider}");
        let r = server.post("/v1/indexes/delete", &json!({"index_name": name}));
        assert_eq!(r.status, 200, "{provider}: {}", r.text);
        assert!(!envelope_path(dir.path(), &name).exists(), "{provider}");
        let r = server.post("/v1/vectors/num_vectors", &json!({"index_name": name}));
        assert_eq!(r.status, 401, "{provider}: {}", r.text);
    }
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], json!([]),);

    // No token of the registry reached the log.
    let logs = common::logs();
    for secret in [
        "CIPHERVEC_TEST_VAULT_TOKEN",
        "CIPHERVEC_TEST_GCP_TOKEN",
        "CIPHERVEC_TEST_AZURE_TOKEN",
    ] {
        if let Ok(value) = std::env::var(secret) {
            assert!(!logs.contains(&value), "{secret} in the log");
        }
    }
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn create_checks_index_key_and_kms_name() {
    let registry = registry_json();
    let entry = registry.as_object().unwrap().keys().next().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &registry);
    let (hex, _) = common::hex_key();
    for (body, says) in [
        (
            json!({"index_name": "a", "index_key": hex, "kms_name": entry, "dimension": 2}),
            "not both",
        ),
        (json!({"index_name": "a", "dimension": 2}), "required"),
        (
            json!({"index_name": "a", "kms_name": "no-such-entry", "dimension": 2}),
            "no-such-entry",
        ),
    ] {
        let r = server.post("/v1/indexes/create", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.detail().contains(says), "{body}: {}", r.text);
    }
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], json!([]));

    // A server without a registry refuses kms_name.
    let plain = TestServer::start();
    let r = plain.post(
        "/v1/indexes/create",
        &json!({"index_name": "a", "kms_name": entry, "dimension": 2}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.detail().contains("--kms-registry"), "{}", r.text);
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn a_tampered_envelope_is_refused() {
    let registry = registry_json();
    let entries: Vec<String> = registry.as_object().unwrap().keys().cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &registry);
    for name in ["t", "other"] {
        let r = server.post(
            "/v1/indexes/create",
            &json!({"index_name": name, "kms_name": entries[0], "dimension": 2}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    server.shutdown();
    let path = envelope_path(dir.path(), "t");
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let other = std::fs::read_to_string(envelope_path(dir.path(), "other")).unwrap();

    let mut tampered: Vec<(String, String)> = Vec::new();
    // A wrapped key altered in one character.
    let mut v = good.clone();
    let mut wrapped = v["wrapped_key"].as_str().unwrap().to_owned();
    let last = wrapped.pop().unwrap();
    wrapped.push(if last == 'A' { 'B' } else { 'A' });
    v["wrapped_key"] = wrapped.into();
    tampered.push(("wrapped key".into(), v.to_string()));
    // The tag, the provider, the entry (to another real entry when there is one).
    let mut v = good.clone();
    v["tag"] = "00".repeat(32).into();
    tampered.push(("tag".into(), v.to_string()));
    let mut v = good.clone();
    v["provider"] = "something-else".into();
    tampered.push(("provider".into(), v.to_string()));
    // Another index's envelope copied over this one's.
    tampered.push(("copied".into(), other));
    tampered.push(("not json".into(), "{\"format\":".into()));

    for (what, text) in tampered {
        std::fs::write(&path, &text).unwrap();
        let server = start(dir.path(), &registry);
        let r = server.post("/v1/vectors/num_vectors", &json!({"index_name": "t"}));
        // 502 when the key service refuses the altered wrapped key, 500 when the tag fails.
        assert!(
            (r.status == 500 || (r.status == 502 && what == "wrapped key"))
                && r.detail().contains("envelope"),
            "{what}: {} {}",
            r.status,
            r.text
        );
        server.shutdown();
    }
    // Put back, it opens again.
    std::fs::write(&path, good.to_string()).unwrap();
    let server = start(dir.path(), &registry);
    let r = server.post("/v1/vectors/num_vectors", &json!({"index_name": "t"}));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn a_missing_key_service_is_503_and_nothing_is_created() {
    let registry = registry_json();
    let dir = tempfile::tempdir().unwrap();
    // The same entries, every one pointing at a port nobody listens on.
    let mut dead = registry.clone();
    for (_, entry) in dead.as_object_mut().unwrap() {
        match entry["provider"].as_str().unwrap() {
            "azure" => entry["key"] = "http://127.0.0.1:1/keys/ciphervec".into(),
            _ => entry["endpoint"] = "http://127.0.0.1:1".into(),
        }
        entry["timeout_secs"] = 2.into();
        entry["max_retries"] = 0.into();
        if entry["provider"] == "aws" || entry["provider"] == "vault" {
            entry.as_object_mut().unwrap().remove("max_retries");
        }
    }
    let server = start(dir.path(), &dead);
    for entry in dead.as_object().unwrap().keys() {
        let r = server.post(
            "/v1/indexes/create",
            &json!({"index_name": format!("x-{entry}"), "kms_name": entry, "dimension": 2}),
        );
        assert_eq!(r.status, 503, "{entry}: {}", r.text);
        assert!(r.detail().contains("key service"), "{}", r.text);
    }
    assert_eq!(server.get("/v1/indexes/list").body["indexes"], json!([]));
    server.shutdown();

    // An index whose key service goes away answers 503 until it is back.
    let entry = registry.as_object().unwrap().keys().next().unwrap().clone();
    let server = start(dir.path(), &registry);
    let r = server.post(
        "/v1/indexes/create",
        &json!({"index_name": "k", "kms_name": entry, "dimension": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    server.shutdown();
    let server = start(dir.path(), &dead);
    let r = server.post("/v1/vectors/num_vectors", &json!({"index_name": "k"}));
    assert_eq!(r.status, 503, "{}", r.text);
    server.shutdown();
    let server = start(dir.path(), &registry);
    let r = server.post("/v1/vectors/num_vectors", &json!({"index_name": "k"}));
    assert_eq!(r.status, 200, "{}", r.text);
}
