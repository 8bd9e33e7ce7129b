//! Index keys: every accepted form parses, every malformed one is `InvalidKey`, and random
//! wrong keys are always `WrongKey`.

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item};

/// Writes `body` to `path` readable by its owner only (as a key file must be).
fn write_private(path: &std::path::Path, body: &[u8]) {
    std::fs::write(path, body).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn key_forms_round_trip() {
    let key = IndexKey::generate();
    let b64 = key.to_base64();
    assert_eq!(b64.len(), 44);
    assert_eq!(
        IndexKey::from_base64(&format!("  {}\n", b64.as_str())).unwrap(),
        key
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_key.txt");
    write_private(&path, format!("{}\n", b64.as_str()).as_bytes());
    assert_eq!(IndexKey::from_base64_file(&path).unwrap(), key);
    let raw: Vec<u8> = (0..32).collect();
    let k = IndexKey::from_bytes(&raw).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(IndexKey::from_hex(&hex).unwrap(), k);
    assert_eq!(IndexKey::from_hex(&hex.to_uppercase()).unwrap(), k);
    assert_eq!(format!("{k:?}"), "IndexKey(REDACTED)");
}

#[test]
fn malformed_keys_are_invalid_key() {
    let invalid = |r: Result<IndexKey, Error>| matches!(r, Err(Error::InvalidKey));
    assert!(invalid(IndexKey::from_bytes(&[0; 31])));
    assert!(invalid(IndexKey::from_bytes(&[0; 33])));
    assert!(invalid(IndexKey::from_bytes(&[])));
    assert!(invalid(IndexKey::from_base64("not base64 at all!!")));
    assert!(invalid(IndexKey::from_base64("")));
    // 31 and 33 bytes in base64.
    assert!(invalid(IndexKey::from_base64(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
    )));
    assert!(invalid(IndexKey::from_base64(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
    )));
    assert!(invalid(IndexKey::from_hex(&"0".repeat(63))));
    assert!(invalid(IndexKey::from_hex(&"0".repeat(65))));
    assert!(invalid(IndexKey::from_hex(&format!("{}g", "0".repeat(63)))));
    assert!(invalid(IndexKey::from_hex("")));
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("empty", &b""[..]),
        ("short", b"AAAA\n"),
        ("binary", &[0xff, 0xfe][..]),
    ] {
        let p = dir.path().join(name);
        write_private(&p, body);
        assert!(invalid(IndexKey::from_base64_file(&p)), "{name}");
    }
    assert!(matches!(
        IndexKey::from_base64_file(dir.path().join("missing")),
        Err(Error::Io(_))
    ));
}

#[test]
fn ten_thousand_wrong_keys_are_refused() {
    let db = Database::in_memory();
    let key = IndexKey::generate();
    let index = db
        .create_index("k", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    index.upsert([Item::new("a", vec![1.0, 2.0])]).unwrap();
    drop(index);
    for _ in 0..10_000 {
        let wrong = IndexKey::generate();
        assert!(matches!(db.open_index("k", &wrong), Err(Error::WrongKey)));
    }
    assert_eq!(db.open_index("k", &key).unwrap().len(), 1);
}

#[test]
fn error_messages_hold_no_key_material() {
    let key = IndexKey::generate();
    let b64 = key.to_base64();
    let err = IndexKey::from_base64(&b64[..40]).unwrap_err();
    assert!(!err.to_string().contains(&b64[..10]));
    let db = Database::in_memory();
    db.create_index("m", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    let msg = db
        .open_index("m", &IndexKey::generate())
        .unwrap_err()
        .to_string();
    assert!(!msg.contains(&b64[..10]));
}

/// `from_base64_file` keeps the README's promise: a key file that group or others can read,
/// or a symbolic link, is refused as `KeyFile` refuses it (the key is never read).
#[cfg(unix)]
#[test]
fn a_base64_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let key = IndexKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_key.txt");
    write_private(&path, key.to_base64().as_bytes());
    assert_eq!(IndexKey::from_base64_file(&path).unwrap(), key);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match IndexKey::from_base64_file(&path) {
            Err(Error::InvalidArgument { reason }) => {
                assert!(reason.contains("group or others"), "{mode:o}: {reason}");
                assert!(!reason.contains(key.to_base64().as_str()));
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
        let via_provider = ciphervec::KeyProvider::index_key(&ciphervec::KeyFile::new(&path));
        assert!(matches!(via_provider, Err(Error::InvalidArgument { .. })));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(
        IndexKey::from_base64_file(&link),
        Err(Error::InvalidArgument { .. })
    ));
}
