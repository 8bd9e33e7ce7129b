//! Nothing the caller stored, nor the key, appears in any file on disk.

use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};
use serde_json::json;

use super::common::*;

fn all_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        out.push((entry.display().to_string(), std::fs::read(&entry).unwrap()));
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn files_hold_no_plaintext() {
    for config in [
        IndexConfig::ivf_flat(8),
        IndexConfig::ivf_sq8(8),
        IndexConfig::ivf_pq(8, 2),
    ] {
        files_of_hold_no_plaintext(config);
    }
}

fn files_of_hold_no_plaintext(config: IndexConfig) {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let mut rng = Rng::new(3);
    let data = clustered(&mut rng, 600, 8, 6);
    let secrets: Vec<String> = (0..600).map(|i| format!("secret-id-{i:04}")).collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let index = db.create_index("p", &key, config).unwrap();
        let batch: Vec<Item> = data
            .iter()
            .zip(&secrets)
            .enumerate()
            .map(|(i, (v, id))| {
                Item::new(id.clone(), v.clone())
                    .with_contents(format!("confidential-contents-{i}"))
                    .with_metadata(json!({"owner": format!("metadata-owner-{i}")}))
            })
            .collect();
        index.upsert(batch[..300].to_vec()).unwrap();
        index.train().unwrap();
        index.upsert(batch[300..].to_vec()).unwrap();
        index.delete(&[&secrets[1], &secrets[400]]).unwrap();
        assert_eq!(
            index.query(&Query::new(data[0].clone())).unwrap()[0].id,
            secrets[0]
        );
    }
    // Reopen (which also cleans up), then scan.
    let db = Database::open(dir.path()).unwrap();
    let index = db.open_index("p", &key).unwrap();
    assert_eq!(index.len(), 598);
    drop(index);
    let files = all_files(dir.path());
    assert!(files.len() >= 2);
    let key_bytes = key.to_base64();
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, key_bytes.as_bytes()),
            "{name}: key (base64)"
        );
        for (i, id) in secrets.iter().enumerate() {
            assert!(!contains(bytes, id.as_bytes()), "{name}: id");
            assert!(!contains(
                bytes,
                format!("confidential-contents-{i}").as_bytes()
            ));
            assert!(!contains(bytes, format!("metadata-owner-{i}").as_bytes()));
            assert!(!contains(bytes, b"owner"), "{name}: metadata key");
            let raw: Vec<u8> = data[i].iter().flat_map(|f| f.to_le_bytes()).collect();
            for window in raw.chunks(16).filter(|w| w.len() == 16) {
                assert!(!contains(bytes, window), "{name}: vector bytes of item {i}");
            }
        }
    }
}
