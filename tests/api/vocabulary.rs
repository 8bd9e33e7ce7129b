//! One vocabulary for every leaf: type and metric names round-trip and nothing else parses;
//! `Item::from_json` and `from_json_line` read the same items, refuse unknown keys naming
//! them (never a value), and give what `Item::new` builds; `storage_info` says what the
//! folder holds.

use ciphervec::{Database, Error, IndexConfig, IndexKey, IndexType, Item, Metric};
use serde_json::json;

/// Every name reads back as its value, in any case; `Display` writes the name; a name the
/// library does not know lists the ones it does.
#[test]
fn names_round_trip_and_nothing_else_parses() {
    for t in IndexType::ALL {
        let name = t.to_string();
        assert_eq!(name.parse::<IndexType>().unwrap(), t);
        assert_eq!(name.to_uppercase().parse::<IndexType>().unwrap(), t);
    }
    for m in Metric::ALL {
        let name = m.to_string();
        assert_eq!(name.parse::<Metric>().unwrap(), m);
        assert_eq!(name.to_uppercase().parse::<Metric>().unwrap(), m);
    }
    for bad in ["", "l2", "ip", "ivf-flat", "hnsw", " cosine", "cosine\0"] {
        match bad.parse::<Metric>() {
            Err(Error::InvalidArgument { reason }) => {
                assert!(
                    Metric::ALL.iter().all(|m| reason.contains(m.name())),
                    "{reason}"
                );
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        match bad.parse::<IndexType>() {
            Err(Error::InvalidArgument { reason }) => {
                assert!(
                    IndexType::ALL.iter().all(|t| reason.contains(t.name())),
                    "{reason}"
                );
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // The subquantizers are the config's, not the name's: a parsed `ivf_pq` gets the default.
    let config = IndexConfig::new(32, "ivf_pq".parse().unwrap());
    assert_eq!(
        config.index_type(),
        IndexType::IvfPq {
            n_subquantizers: IndexConfig::default_subquantizers(32)
        }
    );
    assert_eq!(config.index_type().to_string(), "ivf_pq");
}

/// Subquantizers on a type without codes are refused when the index is created, not
/// ignored; on `ivf_pq` they reach the index.
#[test]
fn subquantizers_apply_to_ivf_pq_only() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    for t in ["ivf_flat", "ivf_sq8"] {
        let config = IndexConfig::new(8, t.parse().unwrap()).n_subquantizers(2);
        assert!(matches!(
            db.create_index("x", &key, config),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(db.list_indexes().unwrap().is_empty());
    let config = IndexConfig::new(8, "ivf_pq".parse().unwrap()).n_subquantizers(4);
    let index = db.create_index("pq", &key, config).unwrap();
    assert_eq!(
        index.config().index_type(),
        IndexType::IvfPq { n_subquantizers: 4 }
    );
}

/// The JSON forms an item may take, read from a value and from a line alike, equal the item
/// `Item::new` builds.
#[test]
fn json_items_equal_built_ones() {
    let cases = [
        (
            json!({"id": "a", "vector": [1, -0.5, 2.25]}),
            Item::new("a", vec![1.0, -0.5, 2.25]),
        ),
        (
            json!({"id": 7, "vector": [0.1], "contents": "héllo", "metadata": {"k": [1, {"n": null}]}}),
            Item::new("7", vec![0.1])
                .with_contents("héllo")
                .with_metadata(json!({"k": [1, {"n": null}]})),
        ),
        (
            json!({"vector": [1], "id": "b", "contents": {"base64": "AAH/"}, "metadata": null}),
            Item::new("b", vec![1.0]).with_contents(vec![0u8, 1, 255]),
        ),
        (
            json!({"id": "c", "vector": [1], "contents_base64": "AAH/"}),
            Item::new("c", vec![1.0]).with_contents(vec![0u8, 1, 255]),
        ),
        (
            json!({"id": "d", "vector": [], "contents": null}),
            Item::new("d", vec![]),
        ),
    ];
    for (value, want) in cases {
        assert_eq!(Item::from_json(&value).unwrap(), want, "{value}");
        let line = format!("  {value}\n");
        assert_eq!(
            Item::from_json_line(line.as_bytes()).unwrap(),
            want,
            "{line}"
        );
    }
}

/// Unknown keys (misspelt ones above all), repeated keys, missing ones and values of the
/// wrong type are `InvalidArgument` naming the key; no value appears in the message.
#[test]
fn json_items_refuse_what_they_do_not_read_naming_the_key() {
    let secret = "SECRET-7f3a";
    let cases: Vec<(String, &str)> = vec![
        (
            format!(r#"{{"id": "{secret}", "vector": [1], "content": "{secret}"}}"#),
            "\"content\"",
        ),
        (
            format!(r#"{{"id": "{secret}", "vector": [1], "meta": {{"a": "{secret}"}}}}"#),
            "\"meta\"",
        ),
        (format!(r#"{{"ID": "{secret}", "vector": [1]}}"#), "\"ID\""),
        (
            format!(r#"{{"id": "{secret}", "id": "{secret}", "vector": [1]}}"#),
            "\"id\"",
        ),
        (format!(r#"{{"id": "{secret}"}}"#), "\"vector\""),
        (
            format!(r#"{{"vector": [1], "contents": "{secret}"}}"#),
            "\"id\"",
        ),
        (
            format!(r#"{{"id": ["{secret}"], "vector": [1]}}"#),
            "\"id\"",
        ),
        (
            format!(r#"{{"id": "x", "vector": ["{secret}"]}}"#),
            "\"vector\"",
        ),
        (
            r#"{"id": "x", "vector": [1], "contents": 5}"#.to_owned(),
            "\"contents\"",
        ),
        (
            format!(r#"{{"id": "x", "vector": [1], "contents": {{"base64": "{secret}!"}}}}"#),
            "base64",
        ),
        (
            format!(r#"{{"id": "x", "vector": [1], "contents": {{"hex": "{secret}"}}}}"#),
            "\"contents\"",
        ),
        (
            r#"{"id": "x", "vector": [1], "contents": "a", "contents_base64": "YQ=="}"#.to_owned(),
            "\"contents_base64\"",
        ),
    ];
    for (text, names) in &cases {
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or(json!(null));
        let from_line = Item::from_json_line(text.as_bytes());
        // A repeated key does not survive `serde_json::Value` (the last one wins), so only
        // the line reader sees it.
        let results = if text.matches("\"id\"").count() > 1 {
            vec![from_line]
        } else {
            vec![Item::from_json(&value), from_line]
        };
        for result in results {
            match result {
                Err(Error::InvalidArgument { reason }) => {
                    assert!(reason.contains(names), "{text}: {reason}");
                    assert!(!reason.contains(secret), "{text}: {reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
    // Not an object, not JSON, trailing text: refused, quoting nothing.
    for text in [
        "[1, 2]".to_owned(),
        format!("{{\"id\": \"{secret}\""),
        format!(r#"{{"id": "a", "vector": [1]}} "{secret}""#),
        secret.to_owned(),
    ] {
        match Item::from_json_line(text.as_bytes()) {
            Err(Error::InvalidArgument { reason }) => {
                assert!(!reason.contains(secret), "{text}: {reason}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// `storage_info` reports the files of the index's folder and their bytes, as the folder
/// itself shows them, and the format version of its manifest.
#[test]
fn storage_info_matches_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let key = IndexKey::generate();
    let index = db
        .create_index("docs", &key, IndexConfig::ivf_flat(4))
        .unwrap();
    index
        .upsert((0..50).map(|i| Item::new(i.to_string(), vec![i as f32, 1.0, 0.0, 2.0])))
        .unwrap();
    let info = db.storage_info("docs").unwrap();
    let entries: Vec<std::fs::Metadata> = std::fs::read_dir(dir.path().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .collect();
    assert_eq!(info.files, entries.len());
    assert_eq!(
        info.bytes,
        entries.iter().map(std::fs::Metadata::len).sum::<u64>()
    );
    let manifest = std::fs::read(dir.path().join("docs/MANIFEST")).unwrap();
    assert_eq!(
        info.format_version,
        u32::from(u16::from_le_bytes([manifest[8], manifest[9]]))
    );
    assert!(matches!(db.storage_info("nope"), Err(Error::IndexNotFound)));
    // On an object store: the objects under the index's prefix, as the store lists them.
    let objects = std::sync::Arc::new(ciphervec::MemoryStore::new());
    let store = Database::with_store(objects.clone());
    store
        .create_index("docs", &key, IndexConfig::ivf_flat(4))
        .unwrap()
        .upsert([Item::new("a", vec![1.0; 4])])
        .unwrap();
    let info = store.storage_info("docs").unwrap();
    let names = ciphervec::Store::list(&objects, "docs/").unwrap();
    let sizes: u64 = names
        .iter()
        .map(|n| ciphervec::Store::get(&objects, n).unwrap().len() as u64)
        .sum();
    assert_eq!((info.files, info.bytes), (names.len(), sizes));
    assert_eq!(
        info.format_version,
        u32::from(u16::from_le_bytes([manifest[8], manifest[9]]))
    );
}
