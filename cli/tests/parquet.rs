//! `import` of a Parquet file (feature `parquet`): string and integer ids, list and
//! fixed-size-list vectors, optional contents and metadata, each row as the library reads it
//! back.
#![cfg(feature = "parquet")]

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use assert_cmd::Command;
use ciphervec::{Database, Include, IndexKey};
use parquet::arrow::ArrowWriter;

fn write(path: &std::path::Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_rows_import_as_items() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let cmd = || {
        let mut c = Command::cargo_bin("ciphervec").unwrap();
        c.env_remove("CIPHERVEC_KEY")
            .arg("--key-file")
            .arg(&key_file);
        c
    };
    Command::cargo_bin("ciphervec")
        .unwrap()
        .args(["keygen", "-o"])
        .arg(&key_file)
        .assert()
        .success();
    let rows: Vec<Vec<f32>> = (0..500)
        .map(|i| (0..4).map(|j| (i * 4 + j) as f32 / 1000.0).collect())
        .collect();
    // Strings ids, list vectors, contents and metadata.
    let mut lists = ListBuilder::new(Float32Builder::new());
    for r in &rows {
        lists.values().append_slice(r);
        lists.append(true);
    }
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("doc-{i}")).collect();
    let contents: Vec<String> = (0..rows.len()).map(|i| format!("text {i}")).collect();
    let metadata: Vec<String> = (0..rows.len()).map(|i| format!("{{\"i\": {i}}}")).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("vector", Arc::new(lists.finish()) as ArrayRef),
        (
            "contents",
            Arc::new(StringArray::from(contents)) as ArrayRef,
        ),
        (
            "metadata",
            Arc::new(StringArray::from(metadata)) as ArrayRef,
        ),
    ])
    .unwrap();
    let strings = dir.path().join("strings.parquet");
    write(&strings, &batch);
    // Integer ids, fixed-size-list vectors.
    let mut fixed = FixedSizeListBuilder::new(Float32Builder::new(), 4);
    for r in &rows {
        fixed.values().append_slice(r);
        fixed.append(true);
    }
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)) as ArrayRef,
        ),
        ("vector", Arc::new(fixed.finish()) as ArrayRef),
    ])
    .unwrap();
    let numbers = dir.path().join("numbers.parquet");
    write(&numbers, &batch);
    for (name, file) in [("s", &strings), ("n", &numbers)] {
        cmd()
            .args(["create", db, name, "--dim", "4"])
            .assert()
            .success();
        cmd()
            .args(["import", db, name])
            .arg(file)
            .args(["--batch", "128"])
            .assert()
            .success();
    }
    let key = IndexKey::from_base64_file(&key_file).unwrap();
    let database = Database::open(db).unwrap();
    let s = database.open_index_read_only("s", &key).unwrap();
    assert_eq!(s.len(), 500);
    let got = s.get(&["doc-42"], Include::ALL).unwrap();
    assert_eq!(got[0].vector.as_deref(), Some(&rows[42][..]));
    assert_eq!(got[0].contents.as_deref(), Some(&b"text 42"[..]));
    assert_eq!(got[0].metadata, Some(serde_json::json!({"i": 42})));
    let n = database.open_index_read_only("n", &key).unwrap();
    assert_eq!(n.len(), 500);
    assert_eq!(
        n.get(&["499"], Include::VECTOR).unwrap()[0]
            .vector
            .as_deref(),
        Some(&rows[499][..])
    );
}
