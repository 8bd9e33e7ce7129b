//! Key services named in configuration (`KmsRegistry`, as a server lists them): each entry
//! connects to its service and drives an index through `KmsEnvelope` over the boxed client,
//! and one service's wrapped key is not another's. (A provider this build lacks, or a
//! variable a setting names that is not set, is an error naming it: `src/kms/settings.rs`'s
//! unit tests, which run with any set of features.)

#[cfg(all(feature = "gcp-kms", feature = "azure-kv"))]
mod registry {
    use ciphervec::kms::{Kms, KmsEnvelope, KmsRegistry};
    use ciphervec::{Database, IndexConfig, Item};
    use serde_json::json;

    #[test]
    #[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
    fn registry_entries_connect_and_open_indexes() {
        let servers = crate::kms::common::servers();
        let registry = KmsRegistry::from_json(&json!({
            "google": {
                "provider": "gcp",
                "key": servers["CIPHERVEC_TEST_GCP_KEY"],
                "endpoint": servers["CIPHERVEC_TEST_GCP_ENDPOINT"],
                "credentials_file": servers["CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT"],
            },
            "azure": {
                "provider": "azure",
                "key": servers["CIPHERVEC_TEST_AZURE_KEY_ID"],
                "managed_identity": true,
                "imds_endpoint":
                    format!("{}/metadata/identity/oauth2/token", servers["CIPHERVEC_TEST_AZURE_VAULT"]),
                "max_retries": 1,
            },
        }))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let mut wrapped_keys = Vec::new();
        for name in registry.names() {
            let kms = registry.get(name).unwrap().connect().unwrap();
            let (envelope, key) = KmsEnvelope::generate(kms, name).unwrap();
            let index = db
                .create_index(name, &key, IndexConfig::ivf_flat(2))
                .unwrap();
            index.upsert([Item::new("x", vec![1.0, 0.0])]).unwrap();
            drop(index);
            let again = KmsEnvelope::new(
                registry.get(name).unwrap().connect().unwrap(),
                envelope.wrapped_key().clone(),
                name,
            );
            assert_eq!(db.open_index_with(name, &again).unwrap().len(), 1);
            wrapped_keys.push((name.to_owned(), envelope.wrapped_key().clone()));
        }
        // A wrapped key of one service is not a key of the other's.
        let (google, azure) = (&wrapped_keys[1].1, &wrapped_keys[0].1);
        let gcp = registry.get("google").unwrap().connect().unwrap();
        assert!(gcp.unwrap_key(azure, "google").is_err());
        let az = registry.get("azure").unwrap().connect().unwrap();
        assert!(az.unwrap_key(google, "azure").is_err());
    }
}
