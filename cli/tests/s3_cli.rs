//! The `ciphervec` command on `s3://` locations (feature `s3`), run by `scripts/test_s3.sh`
//! against moto: create, import and query round-trip through the bucket, and an unreachable
//! store exits with code 7. Compiled only with the `s3` feature; without the server the
//! round trip fails (never passes unseen).
#![cfg(feature = "s3")]

use assert_cmd::Command;
use serde_json::Value;

fn cmd(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("ciphervec").unwrap();
    c.env_remove("CIPHERVEC_KEY").current_dir(dir);
    c
}

#[test]
fn create_import_and_query_in_a_bucket() {
    let url = format!(
        "{}/cli",
        std::env::var("CIPHERVEC_TEST_S3_URL")
            .expect("CIPHERVEC_TEST_S3_URL is not set: run scripts/test_s3.sh")
    );
    let dir = tempfile::tempdir().unwrap();
    cmd(dir.path())
        .args(["keygen", "-o", "key.txt"])
        .assert()
        .success();
    let lines: String = (0..50)
        .map(|i| {
            format!("{{\"id\": \"d{i}\", \"vector\": [{i}, 1, 0], \"contents\": \"text {i}\"}}\n")
        })
        .collect();
    std::fs::write(dir.path().join("items.jsonl"), lines).unwrap();
    let k = ["--key-file", "key.txt"];
    cmd(dir.path())
        .args(["create", &url, "docs", "--dim", "3"])
        .args(k)
        .assert()
        .success();
    cmd(dir.path())
        .args(["import", &url, "docs", "items.jsonl"])
        .args(k)
        .assert()
        .success();
    let out = cmd(dir.path())
        .args([
            "query",
            &url,
            "docs",
            "--vector",
            "[7, 1, 0]",
            "-k",
            "2",
            "--json",
        ])
        .args(k)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let hits: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(hits[0]["id"], "d7");
    assert_eq!(hits.as_array().unwrap().len(), 2);
}

#[test]
fn an_unreachable_store_exits_with_7() {
    let dir = tempfile::tempdir().unwrap();
    cmd(dir.path())
        .args(["keygen", "-o", "key.txt"])
        .assert()
        .success();
    cmd(dir.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .args([
            "list-ids",
            "s3://nobody/here",
            "docs",
            "--key-file",
            "key.txt",
        ])
        .assert()
        .code(7);
}
