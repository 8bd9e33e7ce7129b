//! `--kms vault|aws` against the local servers of `scripts/kms_servers.sh` (run by
//! `scripts/test_kms.sh` and `.ci/run`): `create` writes the wrapped key, later commands
//! unwrap it through the KMS, and the wrapped key of one index does not open another (the
//! KMS binds it to the index name). Skipped with a printed reason without the servers,
//! unless `CIPHERVEC_REQUIRE_KMS=1`.
#![cfg(all(feature = "vault", feature = "aws-kms"))]

use std::collections::HashMap;

use assert_cmd::Command;

fn servers() -> Option<HashMap<String, String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kms-servers.env");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        Err(_) if std::env::var("CIPHERVEC_REQUIRE_KMS").as_deref() == Ok("1") => {
            panic!("CIPHERVEC_REQUIRE_KMS=1 but {} is missing", path.display())
        }
        Err(_) => {
            eprintln!("skipped: no local KMS servers (run scripts/kms_servers.sh start)");
            None
        }
    }
}

#[test]
fn kms_envelopes_from_the_command_line() {
    let Some(s) = servers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    for kms in ["vault", "aws"] {
        let wrapped = dir.path().join(format!("{kms}.wrapped"));
        let cmd = || {
            let mut c = Command::cargo_bin("ciphervec").unwrap();
            c.env_remove("CIPHERVEC_KEY")
                .env("VAULT_ADDR", &s["CIPHERVEC_TEST_VAULT_ADDR"])
                .env("VAULT_TOKEN", &s["CIPHERVEC_TEST_VAULT_TOKEN"])
                .env("CIPHERVEC_VAULT_KEY", &s["CIPHERVEC_TEST_VAULT_KEY"])
                .env("CIPHERVEC_KMS_KEY_ID", &s["CIPHERVEC_TEST_AWS_KEY_ID"])
                .env("AWS_ENDPOINT_URL", &s["CIPHERVEC_TEST_AWS_ENDPOINT"])
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .args(["--kms", kms, "--wrapped-key-file"])
                .arg(&wrapped);
            c
        };
        let name = format!("idx-{kms}");
        cmd()
            .args(["create", db, &name, "--dim", "2"])
            .assert()
            .success();
        assert!(std::fs::read_to_string(&wrapped).unwrap().trim().len() > 20);
        let items = dir.path().join("items.jsonl");
        std::fs::write(&items, "{\"id\": \"x\", \"vector\": [1, 0]}\n").unwrap();
        cmd()
            .args(["import", db, &name, items.to_str().unwrap()])
            .assert()
            .success();
        let out = cmd().args(["list-ids", db, &name]).assert().success();
        assert_eq!(
            String::from_utf8_lossy(&out.get_output().stdout).trim(),
            "x"
        );
        // Bound to the index name: this wrapped key does not give a key for another index.
        cmd()
            .args(["create", db, &format!("other-{kms}"), "--dim", "2"])
            .assert()
            .code(1);
    }
}
