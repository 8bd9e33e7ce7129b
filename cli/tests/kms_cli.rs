//! `--kms aws|gcp|azure|vault` against the local servers of `scripts/kms_servers.sh` (run by
//! `scripts/test_kms.sh` and `.ci/run`): `create` writes the wrapped key, later commands
//! unwrap it through the KMS, and the wrapped key of one index does not open another (the
//! KMS binds it to the index name). The service's key and credentials come from the
//! environment variables the CLI documents. The server tests are `#[ignore]`d in a plain
//! `cargo test` (reported as ignored, never as passed) and fail when run without servers.

use std::collections::HashMap;

use assert_cmd::Command;

/// The servers' settings; panics when they were not started.
#[allow(dead_code)]
fn servers() -> HashMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kms-servers.env");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(e) => panic!(
            "no local KMS servers ({}: {e}): run scripts/test_kms.sh",
            path.display()
        ),
    }
}

/// The `ciphervec` command with no key or cloud credentials inherited from the caller.
fn ciphervec() -> Command {
    let mut command = Command::cargo_bin("ciphervec").unwrap();
    for var in [
        "CIPHERVEC_KEY",
        "CIPHERVEC_KMS_KEY_ID",
        "CIPHERVEC_GCP_KMS_KEY",
        "CIPHERVEC_GCP_KMS_ENDPOINT",
        "CIPHERVEC_GCP_ACCESS_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CIPHERVEC_AZURE_KEY_ID",
        "CIPHERVEC_AZURE_ACCESS_TOKEN",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_AUTHORITY_HOST",
        "VAULT_ADDR",
        "VAULT_TOKEN",
    ] {
        command.env_remove(var);
    }
    command
}

/// Creates an index through `--kms kms` with `env`, imports into it, lists it, and checks
/// that its wrapped key does not create (open) another index.
#[allow(dead_code)]
fn round_trip(kms: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let wrapped = dir.path().join(format!("{kms}.wrapped"));
    let cmd = || {
        let mut c = ciphervec();
        c.envs(env.iter().copied())
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
    let refused = cmd()
        .args(["create", db, &format!("other-{kms}"), "--dim", "2"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(!stderr.is_empty());
}

#[cfg(feature = "vault")]
#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn vault_envelopes_from_the_command_line() {
    let s = servers();
    round_trip(
        "vault",
        &[
            ("VAULT_ADDR", &s["CIPHERVEC_TEST_VAULT_ADDR"]),
            ("VAULT_TOKEN", &s["CIPHERVEC_TEST_VAULT_TOKEN"]),
            ("CIPHERVEC_VAULT_KEY", &s["CIPHERVEC_TEST_VAULT_KEY"]),
        ],
    );
}

#[cfg(feature = "aws-kms")]
#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn aws_envelopes_from_the_command_line() {
    let s = servers();
    round_trip(
        "aws",
        &[
            ("CIPHERVEC_KMS_KEY_ID", &s["CIPHERVEC_TEST_AWS_KEY_ID"]),
            ("AWS_ENDPOINT_URL", &s["CIPHERVEC_TEST_AWS_ENDPOINT"]),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
}

#[cfg(feature = "gcp-kms")]
#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn gcp_envelopes_from_the_command_line() {
    let s = servers();
    // Application Default Credentials: the service-account file, exchanged by signed JWT.
    round_trip(
        "gcp",
        &[
            ("CIPHERVEC_GCP_KMS_KEY", &s["CIPHERVEC_TEST_GCP_KEY"]),
            (
                "CIPHERVEC_GCP_KMS_ENDPOINT",
                &s["CIPHERVEC_TEST_GCP_ENDPOINT"],
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                &s["CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT"],
            ),
        ],
    );
    // A fixed access token.
    round_trip(
        "gcp",
        &[
            ("CIPHERVEC_GCP_KMS_KEY", &s["CIPHERVEC_TEST_GCP_KEY"]),
            (
                "CIPHERVEC_GCP_KMS_ENDPOINT",
                &s["CIPHERVEC_TEST_GCP_ENDPOINT"],
            ),
            ("CIPHERVEC_GCP_ACCESS_TOKEN", &s["CIPHERVEC_TEST_GCP_TOKEN"]),
        ],
    );
}

#[cfg(feature = "azure-kv")]
#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn azure_envelopes_from_the_command_line() {
    let s = servers();
    // An Entra app's client secret, as azure_identity's environment credential reads it.
    round_trip(
        "azure",
        &[
            ("CIPHERVEC_AZURE_KEY_ID", &s["CIPHERVEC_TEST_AZURE_KEY_ID"]),
            ("AZURE_TENANT_ID", &s["CIPHERVEC_TEST_AZURE_TENANT"]),
            ("AZURE_CLIENT_ID", &s["CIPHERVEC_TEST_AZURE_CLIENT_ID"]),
            (
                "AZURE_CLIENT_SECRET",
                &s["CIPHERVEC_TEST_AZURE_CLIENT_SECRET"],
            ),
            ("AZURE_AUTHORITY_HOST", &s["CIPHERVEC_TEST_AZURE_VAULT"]),
        ],
    );
    // A fixed access token.
    round_trip(
        "azure",
        &[
            ("CIPHERVEC_AZURE_KEY_ID", &s["CIPHERVEC_TEST_AZURE_KEY_ID"]),
            (
                "CIPHERVEC_AZURE_ACCESS_TOKEN",
                &s["CIPHERVEC_TEST_AZURE_TOKEN"],
            ),
        ],
    );
}

/// Without the service's key variable (or without the service in this build), `--kms` is a
/// usage error (exit 2) that names what is missing; nothing is created.
#[test]
fn a_kms_without_its_settings_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for (kms, variable, feature) in [
        ("aws", "CIPHERVEC_KMS_KEY_ID", "aws-kms"),
        ("gcp", "CIPHERVEC_GCP_KMS_KEY", "gcp-kms"),
        ("azure", "CIPHERVEC_AZURE_KEY_ID", "azure-kv"),
        ("vault", "VAULT_ADDR", "vault"),
    ] {
        let wrapped = dir.path().join(format!("{kms}.wrapped"));
        let out = ciphervec()
            .args(["--kms", kms, "--wrapped-key-file"])
            .arg(&wrapped)
            .arg("create")
            .arg(&db)
            .args(["docs", "--dim", "2"])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(
            stderr.contains(variable) || stderr.contains(feature),
            "{kms}: {stderr}"
        );
        assert!(!wrapped.exists(), "{kms}: a wrapped key was written");
    }
}
