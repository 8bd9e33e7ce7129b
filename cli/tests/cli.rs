//! The built `ciphervec` binary: every subcommand, every exit code, `--json` output parsed
//! and checked against the library, no way to give a key on the command line, `keygen` files
//! 0600, imports of JSONL, `.fvecs` and `.npy` (an item the index refuses named by its
//! position), and an import killed at random points that `--resume` completes with no item
//! lost or duplicated.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use ciphervec::{Database, EncryptedIndex, IndexKey, Query};
use serde_json::Value;

/// A database folder and a key file in a temporary directory.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        setup
            .cmd()
            .args(["keygen", "-o"])
            .arg(setup.key())
            .assert()
            .success();
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key(&self) -> PathBuf {
        self.path("key.txt")
    }

    fn db(&self) -> String {
        self.path("db").to_str().unwrap().to_owned()
    }

    fn index_key(&self) -> IndexKey {
        IndexKey::from_base64_file(self.key()).unwrap()
    }

    /// The index `name` of the database, opened read-only by the library.
    fn reader(&self, name: &str) -> EncryptedIndex {
        Database::open(self.db())
            .unwrap()
            .open_index_read_only(name, &self.index_key())
            .unwrap()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("ciphervec").unwrap();
        c.env_remove("CIPHERVEC_KEY");
        c
    }

    /// `ciphervec --key-file KEY ARGS...`
    fn run(&self, args: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("--key-file").arg(self.key()).args(args);
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self
            .run(args)
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut bytes = Vec::new();
    for r in rows {
        bytes.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        rows[0].len()
    );
    let mut padded = header.into_bytes();
    while (10 + padded.len() + 1) % 64 != 0 {
        padded.push(b' ');
    }
    padded.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&padded);
    for r in rows {
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic vectors.
fn vectors(n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect()
}

#[test]
fn keygen_writes_a_private_file_and_never_overwrites() {
    let s = Setup::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(s.key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(s.key()).unwrap();
    s.cmd().args(["keygen", "-o"]).arg(s.key()).assert().code(1);
    assert_eq!(std::fs::read(s.key()).unwrap(), before);
    // To stdout: a key the library reads.
    let out = s
        .cmd()
        .arg("keygen")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(IndexKey::from_base64(std::str::from_utf8(&out).unwrap()).is_ok());
}

#[test]
fn a_key_cannot_be_given_on_the_command_line() {
    let s = Setup::new();
    for flag in ["--key", "--index-key", "--key-hex"] {
        s.cmd()
            .args(["info", &s.db(), "x", flag, "00"])
            .assert()
            .code(2);
    }
    // Without --key-file, CIPHERVEC_KEY (base64 or hex) works, and nothing else.
    s.run(&["create", &s.db(), "docs", "--dim", "2"])
        .assert()
        .success();
    let b64 = std::fs::read_to_string(s.key()).unwrap();
    s.cmd()
        .env("CIPHERVEC_KEY", b64.trim())
        .args(["list-ids", &s.db(), "docs"])
        .assert()
        .success();
    s.cmd().args(["list-ids", &s.db(), "docs"]).assert().code(2);
    // A key file others may read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let shared = s.path("shared.txt");
        std::fs::write(&shared, b64).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        s.cmd()
            .arg("--key-file")
            .arg(&shared)
            .args(["list-ids", &s.db(), "docs"])
            .assert()
            .code(1);
    }
}

#[test]
fn every_subcommand_with_json_output_checked_against_the_library() {
    let s = Setup::new();
    let db = s.db();
    s.run(&[
        "create",
        &db,
        "docs",
        "--dim",
        "3",
        "--type",
        "ivf_flat",
        "--metric",
        "euclidean",
    ])
    .assert()
    .success();
    let items = s.path("items.jsonl");
    std::fs::write(
        &items,
        concat!(
            r#"{"id": "a", "vector": [1, 0, 0], "contents": "alpha", "metadata": {"lang": "en"}}"#,
            "\n",
            r#"{"id": "b", "vector": [0, 1, 0], "metadata": {"lang": "fr", "n": {"x": 2}}}"#,
            "\n",
            r#"{"id": "c", "vector": [0, 0, 1]}"#,
            "\n"
        ),
    )
    .unwrap();
    let imported = s.json(&["import", &db, "docs", items.to_str().unwrap(), "--train"]);
    assert_eq!(imported["imported"], 3);
    assert_eq!(imported["trained"], true);
    // query --json: one array of hits, as the library answers.
    let hits = s.json(&[
        "query",
        &db,
        "docs",
        "--vector",
        "[0.9, 0.1, 0]",
        "-k",
        "2",
        "--include",
        "metadata,contents",
    ]);
    let lib = {
        let index = s.reader("docs");
        index
            .query(&Query::new(vec![0.9, 0.1, 0.0]).top_k(2))
            .unwrap()
    };
    assert_eq!(hits.as_array().unwrap().len(), 2);
    for (h, l) in hits.as_array().unwrap().iter().zip(&lib) {
        assert_eq!(h["id"], l.id.as_str());
        assert!((h["distance"].as_f64().unwrap() - f64::from(l.distance)).abs() < 1e-6);
    }
    assert_eq!(hits[0]["contents"], "alpha");
    assert_eq!(hits[0]["metadata"]["lang"], "en");
    // Filters with dotted paths; several queries from a file give an array of arrays.
    let filtered = s.json(&[
        "query",
        &db,
        "docs",
        "--vector",
        "[1,0,0]",
        "--filter",
        r#"{"n.x": 2}"#,
    ]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["id"], "b");
    let queries = s.path("queries.txt");
    std::fs::write(&queries, "[1,0,0]\n[0,0,1]\n").unwrap();
    let many = s.json(&[
        "query",
        &db,
        "docs",
        "--file",
        queries.to_str().unwrap(),
        "-k",
        "1",
    ]);
    assert_eq!(many[0][0]["id"], "a");
    assert_eq!(many[1][0]["id"], "c");
    // get, list-ids, delete, info, verify, compact, rotations, backup, export.
    let got = s.json(&["get", &db, "docs", "b", "zz", "a"]);
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["id"], "b");
    assert_eq!(
        s.json(&["list-ids", &db, "docs"]),
        serde_json::json!(["a", "b", "c"])
    );
    let info = s.json(&["info", &db, "docs"]);
    assert_eq!(info["items"], 3);
    assert_eq!(info["dimension"], 3);
    assert_eq!(info["trained"], true);
    let anchor = info["anchor"].as_str().unwrap().to_owned();
    let keyless = serde_json::from_slice::<Value>(
        &s.cmd()
            .args(["info", &db, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(keyless[0]["name"], "docs");
    assert_eq!(keyless[0]["format_version"], 8);
    assert!(keyless[0]["files"].as_u64().unwrap() >= 2);
    // The same database as a `file:` URL with escapes (as Python's `Path.as_uri()` writes
    // one) is read as the library reads it.
    let escaped: String = db
        .bytes()
        .map(|b| match b {
            b'/' | b'a'..=b'z' | b'A'..=b'Z' => char::from(b).to_string(),
            _ => format!("%{b:02x}"),
        })
        .collect();
    let by_url = s
        .cmd()
        .args(["info", &format!("file://{escaped}"), "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(serde_json::from_slice::<Value>(&by_url).unwrap(), keyless);
    let verified = s.json(&["verify", &db, "docs", "--anchor", &anchor]);
    assert_eq!(verified["ok"], true);
    assert_eq!(s.json(&["delete", &db, "docs", "c", "nope"])["deleted"], 1);
    s.json(&["compact", &db, "docs"]);
    s.json(&["rotate-data-key", &db, "docs"]);
    s.json(&["train", &db, "docs"]);
    let backup = s.path("backup");
    s.json(&["backup", &db, "docs", backup.to_str().unwrap()]);
    let copy = Database::open(&backup)
        .unwrap()
        .open_index("docs", &s.index_key())
        .unwrap();
    assert_eq!(copy.list_ids().unwrap(), vec!["a", "b"]);
    // export then import reproduces get of every item.
    let out = s.path("export.jsonl");
    s.json(&["export", &db, "docs", "--out", out.to_str().unwrap()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    s.run(&["create", &db, "again", "--dim", "3"])
        .assert()
        .success();
    s.json(&["import", &db, "again", out.to_str().unwrap()]);
    let all = Include::ALL;
    let src = s.reader("docs").get(&["a", "b"], all).unwrap();
    let dst = s.reader("again").get(&["a", "b"], all).unwrap();
    assert_eq!(src, dst);
    // export --to: re-encrypted under a new key; rotate-key with and without --data-key.
    let new_key = s.path("new.txt");
    s.cmd()
        .args(["keygen", "-o"])
        .arg(&new_key)
        .assert()
        .success();
    s.run(&[
        "export",
        &db,
        "docs",
        "--to",
        &db,
        "moved",
        "--new-key-file",
        new_key.to_str().unwrap(),
    ])
    .arg("--json")
    .assert()
    .success();
    let new = IndexKey::from_base64_file(&new_key).unwrap();
    let moved = Database::open(&db)
        .unwrap()
        .open_index("moved", &new)
        .unwrap();
    assert_eq!(moved.get(&["a", "b"], all).unwrap(), src);
    drop(moved);
    s.run(&[
        "rotate-key",
        &db,
        "again",
        "--new-key-file",
        new_key.to_str().unwrap(),
    ])
    .assert()
    .success();
    s.run(&["list-ids", &db, "again"]).assert().code(3);
    s.run(&[
        "rotate-key",
        &db,
        "docs",
        "--new-key-file",
        new_key.to_str().unwrap(),
        "--data-key",
    ])
    .assert()
    .success();
    assert!(
        Database::open(&db)
            .unwrap()
            .open_index("docs", &new)
            .is_ok()
    );
}

use ciphervec::Include;

#[test]
fn exit_codes() {
    let s = Setup::new();
    let db = s.db();
    s.run(&["create", &db, "e", "--dim", "2"])
        .assert()
        .success();
    let items = s.path("e.jsonl");
    std::fs::write(&items, "{\"id\": \"x\", \"vector\": [1, 2]}\n").unwrap();
    s.run(&["import", &db, "e", items.to_str().unwrap()])
        .assert()
        .success();
    // `--help` lists the codes this test checks.
    let help = s.run(&["--help"]).assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    for code in ["1 other error", "2 usage", "3 wrong key", "4 corrupted"] {
        assert!(help.contains(code), "{code}: {help}");
    }
    // 2: usage.
    s.run(&["query", &db, "e"]).assert().code(2);
    s.run(&["create", &db, "e2", "--dim", "2", "--type", "hnsw"])
        .assert()
        .code(2);
    // Options that would be ignored: subquantizers of an index without codes (refused by
    // the library, which checks them for every leaf: exit 1 naming them), a wrapped key
    // without a KMS (usage). Nothing is created.
    let out = s
        .run(&["create", &db, "e3", "--dim", "4", "--pq-m", "2"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("pq_m"), "{stderr}");
    s.run(&["--wrapped-key-file", "w.txt", "list-ids", &db, "e"])
        .assert()
        .code(2);
    assert!(
        !Database::open(&db)
            .unwrap()
            .list_indexes()
            .unwrap()
            .contains(&"e3".to_owned())
    );
    // 1: other (an index that does not exist, a name taken).
    s.run(&["list-ids", &db, "missing"]).assert().code(1);
    s.run(&["create", &db, "e", "--dim", "2"]).assert().code(1);
    // A database that does not exist (a mistyped path) is an error for every command but
    // `create`, and no folder is left behind.
    let typo = s.path("dbb");
    let typo = typo.to_str().unwrap();
    for args in [
        vec!["info", typo],
        vec!["info", typo, "e"],
        vec!["list-ids", typo, "e"],
        vec!["query", typo, "e", "--vector", "[1, 2]"],
        vec!["import", typo, "e", items.to_str().unwrap()],
        vec!["verify", typo, "e"],
    ] {
        let out = s.run(&args).assert().code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains("no database at"), "{args:?}: {stderr}");
    }
    assert!(!Path::new(typo).exists());
    // A key file that cannot be read is named.
    let out = s
        .cmd()
        .arg("--key-file")
        .arg(s.path("no-such.key"))
        .args(["list-ids", &db, "e"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("no-such.key"), "{stderr}");
    // 3: wrong key.
    let other = s.path("other.txt");
    s.cmd()
        .args(["keygen", "-o"])
        .arg(&other)
        .assert()
        .success();
    s.cmd()
        .arg("--key-file")
        .arg(&other)
        .args(["list-ids", &db, "e"])
        .assert()
        .code(3);
    // 5: locked by a writer in another process (this test holds it).
    {
        let _writer = Database::open(&db)
            .unwrap()
            .open_index("e", &s.index_key())
            .unwrap();
        s.run(&["delete", &db, "e", "x"]).assert().code(5);
    }
    // 6: older than its anchor (an anchor of a later epoch).
    let info = s.json(&["info", &db, "e"]);
    let anchor = info["anchor"].as_str().unwrap();
    // cvanchor2-<index id>-<epoch>-<commit id>
    let parts: Vec<&str> = anchor.split('-').collect();
    assert_eq!(parts.len(), 4, "{anchor}");
    let epoch = parts[2].parse::<u64>().unwrap();
    let later = format!("{}-{}-{}-{}", parts[0], parts[1], epoch + 5, parts[3]);
    let out = s
        .run(&["verify", &db, "e", "--anchor", &later])
        .assert()
        .code(6);
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stderr)
            .lines()
            .count(),
        1
    );
    // 4: a flipped byte in any file, at a sweep of positions: verify names the file.
    let folder = s.path("db").join("e");
    let files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "LOCK")
        .collect();
    assert!(files.len() >= 2);
    for file in files {
        let original = std::fs::read(&file).unwrap();
        for pos in (0..original.len()).step_by((original.len() / 13).max(1)) {
            let mut bad = original.clone();
            bad[pos] ^= 0x20;
            std::fs::write(&file, &bad).unwrap();
            let out = s.run(&["verify", &db, "e"]).assert().code(4);
            let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(
                stderr.contains(name) || name == "MANIFEST",
                "{name} byte {pos}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1);
        }
        std::fs::write(&file, original).unwrap();
    }
    s.run(&["verify", &db, "e"]).assert().success();
}

/// `create --type ivf_pq` without `--pq-m` picks subquantizers that divide the dimension
/// (`dimension / 4` when 4 divides it).
#[test]
fn ivf_pq_by_default_fits_any_dimension() {
    let s = Setup::new();
    let db = s.db();
    for (dim, want) in [(384, 96), (30, 6), (13, 1)] {
        let name = format!("pq{dim}");
        s.run(&[
            "create",
            &db,
            &name,
            "--dim",
            &dim.to_string(),
            "--type",
            "ivf_pq",
        ])
        .assert()
        .success();
        assert_eq!(
            s.reader(&name).config().index_type(),
            ciphervec::IndexType::IvfPq {
                n_subquantizers: want
            }
        );
    }
}

/// `create --refine-bits 8` makes an `ivf_pq` index with 8-bit refine codes, which `info`
/// reports; other widths, or the flag on another type, are refused and create nothing.
#[test]
fn refine_bits_reach_the_index_and_info() {
    let s = Setup::new();
    let db = s.db();
    for (args, code) in [
        (&["--type", "ivf_pq", "--refine-bits", "7"][..], 1),
        (&["--type", "ivf_flat", "--refine-bits", "8"][..], 1),
        (&["--type", "ivf_pq", "--refine-bits", "x"][..], 2),
    ] {
        let mut cmd = vec!["create", &db, "bad", "--dim", "8"];
        cmd.extend_from_slice(args);
        s.run(&cmd).assert().code(code);
    }
    for (name, bits) in [("six", None), ("eight", Some("8"))] {
        let mut cmd = vec!["create", &db, name, "--dim", "8", "--type", "ivf_pq"];
        cmd.extend(bits.iter().flat_map(|b| ["--refine-bits", b]));
        s.run(&cmd).assert().success();
        let want = bits.map_or(6, |b| b.parse().unwrap());
        assert_eq!(s.reader(name).config().refine_code_bits(), want);
        let info = s.json(&["info", &db, name]);
        assert_eq!(info["refine_bits"], want, "{info}");
    }
    let names: Vec<String> = Database::open(&db).unwrap().list_indexes().unwrap();
    assert_eq!(names, ["eight", "six"]);
}

#[test]
fn fvecs_and_npy_rows_get_decimal_row_ids() {
    let s = Setup::new();
    let db = s.db();
    let rows = vectors(300, 8);
    let fvecs = s.path("v.fvecs");
    let npy = s.path("v.npy");
    write_fvecs(&fvecs, &rows);
    write_npy(&npy, &rows);
    for (name, file) in [("f", &fvecs), ("n", &npy)] {
        s.run(&[
            "create", &db, name, "--dim", "8", "--type", "ivf_pq", "--pq-m", "4",
        ])
        .assert()
        .success();
        s.run(&[
            "import",
            &db,
            name,
            file.to_str().unwrap(),
            "--batch",
            "64",
            "--train",
        ])
        .assert()
        .success();
        let index = s.reader(name);
        let mut want: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        want.sort();
        assert_eq!(index.list_ids().unwrap(), want);
        let got = index.get(&["17"], Include::VECTOR).unwrap();
        assert_eq!(got[0].vector.as_deref(), Some(&rows[17][..]));
    }
    // --ids gives the names.
    let ids = s.path("ids.txt");
    std::fs::write(
        &ids,
        (0..300).map(|i| format!("doc-{i}\n")).collect::<String>(),
    )
    .unwrap();
    s.run(&["create", &db, "named", "--dim", "8"])
        .assert()
        .success();
    s.run(&[
        "import",
        &db,
        "named",
        fvecs.to_str().unwrap(),
        "--ids",
        ids.to_str().unwrap(),
    ])
    .assert()
    .success();
    let got = s.json(&["get", &db, "named", "doc-5"]);
    assert_eq!(got[0]["id"], "doc-5");
}

/// An item the index refuses stops the import with its position in the input: the batches
/// before it are imported, nothing of its own batch is, and the message names no value.
#[test]
fn a_refused_item_is_named_by_its_position() {
    let s = Setup::new();
    let db = s.db();
    let mut rows = vectors(40, 8);
    rows[26][3] = f32::NAN;
    let fvecs = s.path("nan.fvecs");
    write_fvecs(&fvecs, &rows);
    let jsonl = s.path("short.jsonl");
    let lines: String = (0..40)
        .map(|i| {
            let dim = if i == 33 { 7 } else { 8 };
            format!(
                "{{\"id\":\"secret-{i}\",\"vector\":{:?}}}\n",
                &rows[0][..dim]
            )
        })
        .collect();
    std::fs::write(&jsonl, lines).unwrap();
    for (name, file, position, error, ids_before) in [
        ("f", &fvecs, 27, "invalid vector", 20),
        ("j", &jsonl, 34, "dimension mismatch", 30),
    ] {
        s.run(&["create", &db, name, "--dim", "8"])
            .assert()
            .success();
        let out = s
            .run(&["import", &db, name, file.to_str().unwrap(), "--batch", "10"])
            .assert()
            .code(1)
            .get_output()
            .stderr
            .clone();
        let message = String::from_utf8(out).unwrap();
        assert!(
            message.contains(&format!("item {position} of the input")) && message.contains(error),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        assert_eq!(s.reader(name).len(), ids_before, "{name}");
    }
}

#[test]
fn an_import_killed_at_random_points_resumes_without_loss_or_duplicates() {
    let s = Setup::new();
    let db = s.db();
    let n = 200_000;
    let dim = 384;
    let rows = vectors(n, dim);
    let file = s.path("big.fvecs");
    write_fvecs(&file, &rows);
    // Both indexes stay exact (no automatic training), so that their answers are comparable:
    // the property here is the resumed import, not when each index trained itself.
    s.run(&["create", &db, "big", "--dim", "384", "--no-auto-train"])
        .assert()
        .success();
    let bin = assert_cmd::cargo::cargo_bin("ciphervec");
    let mut kills = 0;
    for round in 0..10u64 {
        let mut child = StdCommand::new(&bin)
            .arg("--key-file")
            .arg(s.key())
            .args([
                "import",
                &db,
                "big",
                file.to_str().unwrap(),
                "--batch",
                "500",
                "--resume",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill points spread over a whole import (several seconds at this size).
        std::thread::sleep(Duration::from_millis(250 + (round * 2_654_435_761) % 3000));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    s.run(&[
        "import",
        &db,
        "big",
        file.to_str().unwrap(),
        "--batch",
        "500",
        "--resume",
    ])
    .assert()
    .success();
    println!("killed {kills} of 10 runs");
    let index = s.reader("big");
    let mut want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(index.list_ids().unwrap(), want);
    assert_eq!(index.len(), n);
    // Queries match an index imported in one go.
    s.run(&["create", &db, "once", "--dim", "384", "--no-auto-train"])
        .assert()
        .success();
    s.run(&[
        "import",
        &db,
        "once",
        file.to_str().unwrap(),
        "--batch",
        "5000",
    ])
    .assert()
    .success();
    let once = s.reader("once");
    for q in rows.iter().step_by(20_000) {
        let query = Query::new(q.clone()).top_k(5);
        let ids = |i: &ciphervec::EncryptedIndex| -> Vec<String> {
            i.query(&query).unwrap().into_iter().map(|h| h.id).collect()
        };
        assert_eq!(ids(&index), ids(&once));
    }
}

#[test]
fn full_text_and_hybrid_queries_match_the_library() {
    let s = Setup::new();
    let db = s.db();
    s.json(&["create", &db, "t", "--dim", "2", "--full-text"]);
    let lines = [
        r#"{"id": "a", "vector": [1, 0], "contents": "invoice INV2291 overdue"}"#,
        r#"{"id": "b", "vector": [0, 1], "contents": "design notes"}"#,
        r#"{"id": "c", "vector": [1, 1], "contents": "overdue design review"}"#,
    ];
    std::fs::write(s.path("t.jsonl"), lines.join("\n")).unwrap();
    s.json(&["import", &db, "t", s.path("t.jsonl").to_str().unwrap()]);
    let text = s.json(&["query", &db, "t", "--text", "overdue design", "-k", "3"]);
    let want = s
        .reader("t")
        .query(&Query::text_only("overdue design").top_k(3))
        .unwrap();
    let ids: Vec<&str> = text
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want.iter().map(|h| h.id.as_str()).collect::<Vec<_>>());
    assert_eq!(ids[0], "c");
    assert!(text[0]["score"].as_f64().unwrap() > 0.0);
    let hybrid = s.json(&[
        "query", &db, "t", "--vector", "[0, 1]", "--text", "inv2291", "-k", "2",
    ]);
    let ids: Vec<&str> = hybrid
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"a") && ids.contains(&"b"));
    // An index without --full-text refuses text queries with a usage-class error (exit 1).
    s.json(&["create", &db, "plain", "--dim", "2"]);
    s.run(&["query", &db, "plain", "--text", "x"])
        .assert()
        .code(1);
}

/// The import's checkpoint never writes through or over a file of the user's: `<input>.tmp`
/// stays as it was, and a symbolic link planted at the checkpoint's temporary name is
/// replaced, not followed (its target unchanged).
#[cfg(unix)]
#[test]
fn an_import_checkpoint_touches_no_file_of_the_users() {
    let s = Setup::new();
    let db = s.db();
    let input = s.path("items.jsonl");
    let lines: String = (0..20)
        .map(|i| format!("{{\"id\": \"i{i}\", \"vector\": [{i}.0, 1.0]}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let users = s.path("items.jsonl.tmp");
    std::fs::write(&users, "the user's own file").unwrap();
    let victim = s.path("victim.txt");
    std::fs::write(&victim, "not to be written").unwrap();
    std::os::unix::fs::symlink(&victim, s.path("items.jsonl.ciphervec-import.tmp")).unwrap();
    s.run(&["create", &db, "c", "--dim", "2"])
        .assert()
        .success();
    s.run(&["import", &db, "c", input.to_str().unwrap(), "--batch", "5"])
        .assert()
        .success();
    assert_eq!(s.reader("c").len(), 20);
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        "the user's own file"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not to be written"
    );
}

/// The names of index types and metrics are the library's (`IndexType::ALL`, `Metric::ALL`,
/// which the Python package's tests walk too): `create` takes each, in any case, and `info`
/// reports it back; names the library does not read are usage errors.
#[test]
fn every_type_and_metric_name_of_the_library() {
    use ciphervec::{IndexType, Metric};
    let s = Setup::new();
    let db = s.db();
    for (i, index_type) in IndexType::ALL.into_iter().enumerate() {
        for (j, metric) in Metric::ALL.into_iter().enumerate() {
            let name = format!("n{i}{j}");
            // Every other one upper-cased: the names are read in any case.
            let (t, m) = if (i + j) % 2 == 0 {
                (index_type.to_string(), metric.to_string())
            } else {
                (
                    index_type.to_string().to_uppercase(),
                    metric.to_string().to_uppercase(),
                )
            };
            s.run(&[
                "create", &db, &name, "--dim", "8", "--type", &t, "--metric", &m,
            ])
            .assert()
            .success();
            let info = s.json(&["info", &db, &name]);
            assert_eq!(info["type"], index_type.to_string(), "{info}");
            assert_eq!(info["metric"], metric.to_string(), "{info}");
            let config = s.reader(&name).config().clone();
            assert_eq!(config.index_type().to_string(), index_type.to_string());
            assert_eq!(config.distance_metric(), metric);
        }
    }
    for bad in ["l2", "ip", "ivf-flat", "ivf_hnsw", "cosine ", ""] {
        for flag in ["--type", "--metric"] {
            s.run(&["create", &db, "bad", "--dim", "8", flag, bad])
                .assert()
                .code(2);
        }
    }
}

/// A JSONL item with a key the library does not read (a misspelt `"content"`) stops the
/// import naming the key and the line, instead of dropping what the key holds; the batches
/// before it are imported.
#[test]
fn a_misspelt_jsonl_key_is_refused_naming_it() {
    let s = Setup::new();
    let db = s.db();
    s.run(&["create", &db, "docs", "--dim", "2"])
        .assert()
        .success();
    let jsonl = s.path("items.jsonl");
    let lines: String = (0..30)
        .map(|i| {
            let key = if i == 24 { "content" } else { "contents" };
            format!("{{\"id\":\"secret-{i}\",\"vector\":[{i},1],\"{key}\":\"text {i}\"}}\n")
        })
        .collect();
    std::fs::write(&jsonl, lines).unwrap();
    let out = s
        .run(&[
            "import",
            &db,
            "docs",
            jsonl.to_str().unwrap(),
            "--batch",
            "10",
        ])
        .assert()
        .code(1);
    let message = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        message.contains("line 25") && message.contains("\"content\""),
        "{message}"
    );
    assert!(
        !message.contains("secret") && !message.contains("text"),
        "{message}"
    );
    assert_eq!(s.reader("docs").len(), 20);
}

/// The README's shell snippet (section "From the shell") runs as written with the built
/// command, in an empty folder, and its last command prints the hit the items say.
#[test]
fn the_readme_shell_snippet_runs() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = &readme[readme.find("## From the shell").expect("a shell section")..];
    let start = section.find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let script = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("ciphervec");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = StdCommand::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("CIPHERVEC_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stderr}");
    // The last line of output is the query's JSON: the nearest item to [0.9, 0.1, 0, 0].
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hits: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(hits[0]["id"], "a", "{stdout}");
}

#[test]
fn query_metadata_schema_text_fields_and_precision_match_the_library() {
    let s = Setup::new();
    let db = s.db();
    s.json(&[
        "create",
        &db,
        "m",
        "--dim",
        "2",
        "--text-field",
        "body",
        "--precision",
        "float16",
        "--schema",
        r#"{"title": {"pattern": true}}"#,
    ]);
    let lines = [
        r#"{"id": "a", "vector": [1, 0.1], "metadata": {"title": "INV-2001", "date": 3, "body": "refund overdue"}}"#,
        r#"{"id": "b", "vector": [0, 1], "metadata": {"title": "INV-2002", "date": 5, "body": "overdue"}}"#,
        r#"{"id": "c", "vector": [1, 1], "metadata": {"title": "memo", "date": 4, "body": "refund"}}"#,
    ];
    std::fs::write(s.path("m.jsonl"), lines.join("\n")).unwrap();
    s.json(&["import", &db, "m", s.path("m.jsonl").to_str().unwrap()]);
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = s.json(&[
        "query-metadata",
        &db,
        "m",
        "--filter",
        r#"{"title": {"$regex": "^INV-2\\d{3}$"}}"#,
        "--order-by",
        "date",
        "--desc",
    ]);
    assert_eq!(ids(&listed), ["b", "a"]);
    assert!(listed[0].get("score").is_none());
    let library = s
        .reader("m")
        .query_metadata(
            &ciphervec::MetadataQuery::new()
                .text("refund overdue")
                .top_k(2),
        )
        .unwrap();
    let text = s.json(&[
        "query-metadata",
        &db,
        "m",
        "--text",
        "refund overdue",
        "-k",
        "2",
    ]);
    assert_eq!(
        ids(&text),
        library.iter().map(|h| h.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(ids(&text)[0], "a");
    assert!(text[0]["score"].as_f64().unwrap() > 0.0);
    // Plain output: one id per line.
    let out = s
        .run(&["query-metadata", &db, "m", "--order-by", "date"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8(out).unwrap(), "a\nc\nb\n");
    // The schema is enforced: $regex on a field without a pattern dictionary.
    s.run(&[
        "query-metadata",
        &db,
        "m",
        "--filter",
        r#"{"body": {"$regex": "x"}}"#,
    ])
    .assert()
    .code(1);
    let info = s.json(&["info", &db, "m"]);
    assert_eq!(info["precision"], "float16");
    assert_eq!(info["schema"]["body"]["full_text"], true);
    assert_eq!(
        s.reader("m").config().precision(),
        ciphervec::StoragePrecision::Float16
    );
    // Bad settings are usage or argument errors, and create nothing.
    s.run(&["create", &db, "x", "--dim", "2", "--precision", "float8"])
        .assert()
        .code(2);
    s.run(&["create", &db, "y", "--dim", "2", "--schema", "{"])
        .assert()
        .code(2);
    s.run(&[
        "create",
        &db,
        "z",
        "--dim",
        "2",
        "--schema",
        r#"{"a": {"pattern": true, "filterable": false}}"#,
    ])
    .assert()
    .code(1);
    assert_eq!(Database::open(&db).unwrap().list_indexes().unwrap(), ["m"]);
}
