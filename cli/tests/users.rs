//! `ciphervec user add|list|revoke` and `--user`: grants made through the binary open in
//! the library with the scopes given, a read grant's writes exit 9 with nothing changed, a
//! write grant's writes reach the owner, and a revoked user's opens exit 3.

use std::path::PathBuf;

use assert_cmd::Command;
use ciphervec::{Access, Database, IndexKey, Query};
use serde_json::Value;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        for k in ["owner.key", "analyst.key", "ingest.key"] {
            s.cmd()
                .args(["keygen", "-o"])
                .arg(s.path(k))
                .assert()
                .success();
        }
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> String {
        self.path("db").to_str().unwrap().to_owned()
    }

    fn key(&self, name: &str) -> IndexKey {
        IndexKey::from_base64_file(self.path(name)).unwrap()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("ciphervec").unwrap();
        c.env_remove("CIPHERVEC_KEY");
        c
    }

    /// `ciphervec --key-file KEYFILE [--user USER] ARGS...`
    fn run(&self, key: &str, user: Option<&str>, args: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("--key-file").arg(self.path(key));
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        c.args(args);
        c
    }

    fn json(&self, key: &str, user: Option<&str>, args: &[&str]) -> Value {
        let out = self
            .run(key, user, args)
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }
}

#[test]
fn grants_through_the_cli_open_in_the_library_with_their_scopes() {
    let s = Setup::new();
    let db = s.db();
    s.run("owner.key", None, &["create", &db, "docs", "--dim", "2"])
        .assert()
        .success();
    let items = s.path("items.jsonl");
    std::fs::write(
        &items,
        "{\"id\": \"a\", \"vector\": [1, 0]}\n{\"id\": \"b\", \"vector\": [0, 1]}\n",
    )
    .unwrap();
    s.run(
        "owner.key",
        None,
        &["import", &db, "docs", items.to_str().unwrap()],
    )
    .assert()
    .success();
    let analyst = s.path("analyst.key");
    let ingest = s.path("ingest.key");
    s.run(
        "owner.key",
        None,
        &[
            "user",
            "add",
            &db,
            "docs",
            "analyst",
            "--user-key-file",
            analyst.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    s.run(
        "owner.key",
        None,
        &[
            "user",
            "add",
            &db,
            "docs",
            "ingest",
            "--user-key-file",
            ingest.to_str().unwrap(),
            "--access",
            "write",
        ],
    )
    .assert()
    .success();
    // An unknown scope is a usage error naming the scopes.
    let out = s
        .run(
            "owner.key",
            None,
            &[
                "user",
                "add",
                &db,
                "docs",
                "x",
                "--user-key-file",
                ingest.to_str().unwrap(),
                "--access",
                "owner",
            ],
        )
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("read") && stderr.contains("admin"),
        "{stderr}"
    );

    let listed = s.json("owner.key", None, &["user", "list", &db, "docs"]);
    assert_eq!(
        listed,
        serde_json::json!([{"user": "analyst", "access": "read"},
                           {"user": "ingest", "access": "write"}])
    );
    // The library sees the same grants.
    {
        let database = Database::open(&db).unwrap();
        let owner = database.open_index("docs", &s.key("owner.key")).unwrap();
        assert_eq!(
            owner.users().unwrap(),
            vec![
                ("analyst".to_owned(), Access::Read),
                ("ingest".to_owned(), Access::ReadWrite)
            ]
        );
    }

    // The read grant queries and gets; its writes exit 9 and change nothing.
    let hits = s.json(
        "analyst.key",
        Some("analyst"),
        &["query", &db, "docs", "--vector", "[1, 0]", "-k", "1"],
    );
    assert_eq!(hits[0]["id"], "a");
    let got = s.json("analyst.key", Some("analyst"), &["get", &db, "docs", "b"]);
    assert_eq!(got[0]["id"], "b");
    for args in [
        vec!["delete", &db, "docs", "a"],
        vec!["import", &db, "docs", items.to_str().unwrap()],
        vec!["compact", &db, "docs"],
        vec!["user", "list", &db, "docs"],
    ] {
        s.run("analyst.key", Some("analyst"), &args)
            .assert()
            .code(9);
    }
    // --user with the index key, or a user never granted: wrong key (3).
    s.run("owner.key", Some("analyst"), &["list-ids", &db, "docs"])
        .assert()
        .code(3);
    // The write grant writes; the owner's library handle sees it.
    s.run("ingest.key", Some("ingest"), &["delete", &db, "docs", "a"])
        .assert()
        .success();
    // --user cannot create or rotate: they need the index key.
    s.run(
        "ingest.key",
        Some("ingest"),
        &["create", &db, "x", "--dim", "2"],
    )
    .assert()
    .code(2);
    {
        let database = Database::open(&db).unwrap();
        let owner = database.open_index("docs", &s.key("owner.key")).unwrap();
        assert_eq!(owner.list_ids().unwrap(), vec!["b".to_owned()]);
        let hits = owner.query(&Query::new(vec![0.0, 1.0]).top_k(1)).unwrap();
        assert_eq!(hits[0].id, "b");
    }
    // Revocation: the analyst's opens then fail as a wrong key (3).
    s.run(
        "owner.key",
        None,
        &["user", "revoke", &db, "docs", "analyst"],
    )
    .assert()
    .success();
    s.run("analyst.key", Some("analyst"), &["list-ids", &db, "docs"])
        .assert()
        .code(3);
    let listed = s.json("owner.key", None, &["user", "list", &db, "docs"]);
    assert_eq!(
        listed,
        serde_json::json!([{"user": "ingest", "access": "write"}])
    );
    s.run("ingest.key", Some("ingest"), &["list-ids", &db, "docs"])
        .assert()
        .success();
}
