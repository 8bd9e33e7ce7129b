//! Entry points for the fuzz targets in `fuzz/` (each target is one line calling one of
//! these) and for replaying their findings in ordinary tests. Hidden: not part of the API.
//! Every function must return normally for every input; a panic is a bug.

use serde_json::{Value, json};

use crate::format::vectors::VectorCoding;
use crate::format::{manifest, segment};
use crate::ivf::Codec;
use crate::{Database, IndexConfig, IndexKey, Item, Query};

/// The manifest decoder on arbitrary bytes.
pub fn manifest_decode(data: &[u8]) {
    let _ = manifest::decode(data);
}

/// The segment directory parser and every record plaintext decoder on arbitrary bytes (the
/// plaintext decoders sit behind authentication in real use; here they are reached directly).
pub fn segment_decode(data: &[u8]) {
    // The clear-byte checks, the footer decoder (its plaintext is behind authentication in
    // real use: here the input's last bytes stand in for it) and the directory placement.
    let _ = segment::sealed_footer(data);
    // Both layouts this version reads (the first byte picks one), the history record too.
    let layout = if data.first().is_some_and(|b| b & 1 == 1) {
        segment::Layout::V7
    } else {
        segment::Layout::CURRENT
    };
    let tail = data
        .get(data.len().saturating_sub(layout.footer_plain_len)..)
        .unwrap_or_default();
    let offset = match segment::Footer::decode(tail, layout) {
        Ok(footer) => {
            let _ = segment::sealed_directory(data, &footer, layout);
            footer.directory_offset
        }
        Err(_) => data.len() as u64,
    };
    let listed = segment::decode_directory(data.get(1..).unwrap_or_default(), offset, layout);
    if let Ok(records) = listed {
        for r in records {
            let _ = segment::record_bytes(data, r.offset, r.len);
        }
    }
    let _ = segment::decode_history(data.get(1..).unwrap_or_default());
    let dim = data.first().map_or(1, |&d| usize::from(d % 16) + 1);
    let body = data.get(1..).unwrap_or_default();
    let _ = segment::decode_block(body, dim);
    let _ = segment::decode_fields(body);
    let _ = segment::decode_tombstones(body);
    for coding in [VectorCoding::F32, VectorCoding::F16, VectorCoding::I8] {
        let _ = coding.decode_into(body, &mut vec![0.0; dim]);
        let _ = coding.decode_rows(body, body.len() / coding.vector_len(dim), dim);
    }
    let mut floats = vec![0f32; body.len().div_ceil(4)];
    bytemuck::cast_slice_mut(&mut floats)[..body.len()].copy_from_slice(body);
    let _ = segment::decode_block_vectors(floats, body.len(), body.len() / (4 * dim), dim);
    let _ = segment::decode_centroids(body, dim);
    let _ = Codec::from_bytes(body, dim);
}

/// Key parsing from text.
pub fn key_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = IndexKey::from_base64(&text);
    let _ = IndexKey::from_hex(&text);
    let _ = IndexKey::from_bytes(data);
}

/// Filter parsing, and evaluation of whatever parses against a few documents.
pub fn filter(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(f) = crate::filter::Filter::parse(&doc) else {
        return;
    };
    let samples = [
        json!({}),
        json!({"a": 1, "b": "x", "c": [1, 2, {"d": 3}], "e": {"f": [true, null]}}),
        json!({"a": [1.5, "1"], "b": {"b": {"b": 2}}}),
        doc.clone(),
    ];
    for s in &samples {
        let _ = f.matches(Some(s));
    }
    let _ = f.matches(None);
}

/// Opens a directory made of arbitrary files (the input is split into named files), with
/// authentication on: it must end in an error or a working index, never a panic.
pub fn open_directory(data: &[u8]) {
    let Ok(dir) = tempfile_dir() else { return };
    let index_dir = dir.join("f");
    if std::fs::create_dir_all(&index_dir).is_err() {
        return;
    }
    // Files: records of `name selector u8 | length u16 LE | bytes`.
    let names = [
        "MANIFEST",
        "seg-0000000000000002.cvs",
        "seg-0000000000000003.cvs",
        "seg-0000000000000004.cvs",
        "seg-0000000000000005.cvs",
        "MANIFEST.tmp",
    ];
    let mut rest = data;
    while let [which, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, next) = tail.split_at(len);
        let _ = std::fs::write(
            index_dir.join(names[usize::from(*which) % names.len()]),
            body,
        );
        rest = next;
    }
    let key = IndexKey::from_bytes(&[7; 32]).expect("32 bytes");
    if let Ok(db) = Database::open(&dir)
        && let Ok(index) = db.open_index("f", &key)
    {
        let _ = index.query(&Query::new(vec![
            0.5;
            index.config().dimension().clamp(1, 64)
        ]));
        let _ = index.list_ids();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ciphervec-fuzz-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Arbitrary sequences of upsert/delete/train/compact/query/get/reopen on an in-memory
/// database, checked against a brute-force model: contents and exact (full-probe) results
/// must match the model after every step.
pub fn operations(data: &[u8]) {
    const DIM: usize = 3;
    let db = Database::in_memory();
    let key = IndexKey::from_bytes(&[9; 32]).expect("32 bytes");
    let Ok(mut index) = db.create_index("ops", &key, IndexConfig::ivf_flat(DIM)) else {
        return;
    };
    let mut model: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    let value = |b: u8| (f32::from(b) - 128.0) / 16.0;
    for op in data.chunks(5).take(64) {
        let [kind, id, rest @ ..] = op else { break };
        let id = format!("id{}", id % 16);
        match kind % 7 {
            0 | 1 => {
                let mut v: Vec<f32> = rest.iter().copied().map(value).collect();
                v.resize(DIM, 0.0);
                let result = index.upsert([Item::new(id.clone(), v.clone())]);
                assert!(result.is_ok(), "upsert failed: {result:?}");
                model.insert(id, v);
            }
            2 => {
                let n = index.delete(&[&id]).expect("delete");
                assert_eq!(n, usize::from(model.remove(&id).is_some()));
            }
            3 => match index.train() {
                Ok(()) => assert!(!model.is_empty()),
                Err(crate::Error::InvalidArgument { .. }) => assert!(model.is_empty()),
                Err(e) => panic!("train: {e:?}"),
            },
            4 => index.compact().expect("compact"),
            5 => {
                drop(index);
                index = db.open_index("ops", &key).expect("reopen");
            }
            _ => {}
        }
        check(&index, &model, DIM);
    }
}

fn check(
    index: &crate::EncryptedIndex,
    model: &std::collections::BTreeMap<String, Vec<f32>>,
    dim: usize,
) {
    assert_eq!(index.len(), model.len());
    let ids: Vec<String> = model.keys().cloned().collect();
    assert_eq!(index.list_ids().expect("list_ids"), ids);
    let Some((first, vector)) = model.iter().next() else {
        return;
    };
    let got = index
        .get(&[first.as_str(), "never-inserted"], crate::Include::VECTOR)
        .expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vector.as_deref(), Some(&vector[..]));
    let q = vec![0.25; dim];
    let hits = index
        .query(&Query::new(q.clone()).top_k(3).n_probes(usize::MAX))
        .expect("query");
    let mut want: Vec<f32> = model
        .values()
        .map(|v| {
            v.iter()
                .zip(&q)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt()
        })
        .collect();
    want.sort_by(f32::total_cmp);
    for (h, w) in hits.iter().zip(&want) {
        assert!(
            (h.distance - w).abs() <= 1e-4 * w.max(1.0),
            "query differs from the model"
        );
    }
    assert_eq!(hits.len(), want.len().min(3));
}
