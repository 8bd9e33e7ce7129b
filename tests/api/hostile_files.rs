//! A hostile index folder cannot redirect writes, hang the process or exhaust its memory:
//! a symbolic link at `MANIFEST.tmp` leaves its target unchanged; a FIFO at `MANIFEST` or
//! `LOCK` gives an error at once; a 4 GiB sparse `MANIFEST` is `Corrupted` without being
//! read into memory (a child process's peak RSS stays under 64 MiB); files are created 0600
//! and folders 0700.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ciphervec::{Database, Error, IndexConfig, IndexKey, Item};

fn index_with_one_item(dir: &Path, key: &IndexKey) {
    Database::open(dir)
        .unwrap()
        .create_index("h", key, IndexConfig::ivf_flat(2))
        .unwrap()
        .upsert([Item::new("a", vec![1.0, 0.0])])
        .unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Runs `f` on a thread and fails the test if it has not returned within a second.
fn within_a_second<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(1))
        .expect("blocked on a hostile file")
}

#[test]
fn a_symlink_at_the_temporary_manifest_does_not_redirect_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    index_with_one_item(dir.path(), &key);
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, b"do not touch").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("h/MANIFEST.tmp")).unwrap();
    let index = Database::open(dir.path())
        .unwrap()
        .open_index("h", &key)
        .unwrap();
    index.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    index.delete(&["a"]).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"do not touch");
    assert_eq!(index.list_ids().unwrap(), vec!["b"]);
}

#[test]
fn fifos_at_manifest_or_lock_give_an_error_at_once() {
    for name in ["MANIFEST", "LOCK"] {
        let dir = tempfile::tempdir().unwrap();
        let key = IndexKey::generate();
        index_with_one_item(dir.path(), &key);
        let path = dir.path().join("h").join(name);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let root = dir.path().to_path_buf();
        let started = Instant::now();
        let (writer, reader) = within_a_second(move || {
            let db = Database::open(&root).unwrap();
            let writer = db.open_index("h", &key).map(|_| ());
            let reader = db.open_index_read_only("h", &key).map(|_| ());
            (writer, reader)
        });
        assert!(writer.is_err(), "{name}");
        if name == "MANIFEST" {
            assert!(matches!(writer, Err(Error::Corrupted { .. })), "{writer:?}");
            assert!(matches!(reader, Err(Error::Corrupted { .. })), "{reader:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// Peak resident memory of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The child of the sparse-manifest test: opens the index in `CIPHERVEC_SPARSE_DIR` and
/// prints the error and its peak RSS. Run only by that test.
#[test]
#[ignore = "child process of the sparse-manifest test"]
fn sparse_manifest_child() {
    let Ok(dir) = std::env::var("CIPHERVEC_SPARSE_DIR") else {
        return;
    };
    let key = IndexKey::from_hex(&std::env::var("CIPHERVEC_SPARSE_KEY").unwrap()).unwrap();
    let db = Database::open(&dir).unwrap();
    let writer = db.open_index("h", &key).map(|_| ());
    let reader = db.open_index_read_only("h", &key).map(|_| ());
    println!(
        "CV:RESULT corrupted={} peak_kib={}",
        matches!(writer, Err(Error::Corrupted { .. }))
            && matches!(reader, Err(Error::Corrupted { .. })),
        peak_rss_kib()
    );
}

#[test]
fn a_4_gib_sparse_manifest_is_corrupted_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    index_with_one_item(dir.path(), &key);
    let manifest = dir.path().join("h/MANIFEST");
    let bytes = std::fs::read(&manifest).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&manifest)
        .unwrap();
    f.set_len(4 << 30).unwrap();
    drop(f);
    assert!(bytes.len() < 1 << 20);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "api::hostile_files::sparse_manifest_child",
            "--nocapture",
        ])
        .env("CIPHERVEC_SPARSE_DIR", dir.path())
        .env("CIPHERVEC_SPARSE_KEY", key_hex(&key))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CV:RESULT"))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"));
    assert!(line.contains("corrupted=true"), "{line}");
    let peak: u64 = line.rsplit('=').next().unwrap().parse().unwrap();
    println!("peak RSS of the child: {} MiB", peak / 1024);
    assert!(peak < 64 * 1024, "{line}");
}

/// The key as 64 hex digits (from its base64 form).
fn key_hex(key: &IndexKey) -> String {
    let b64 = key.to_base64();
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for c in b64.bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | table.iter().position(|&t| t == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push_str(&format!("{:02x}", (bits >> n) & 0xFF));
        }
    }
    out
}

#[test]
fn files_are_created_0600_and_folders_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let key = IndexKey::generate();
    index_with_one_item(&root, &key);
    let index = Database::open(&root)
        .unwrap()
        .open_index("h", &key)
        .unwrap();
    index.train().unwrap();
    index.upsert([Item::new("b", vec![0.0, 1.0])]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("h")), 0o700);
    let mut n = 0;
    for e in std::fs::read_dir(root.join("h")).unwrap() {
        let path = e.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        n += 1;
    }
    assert!(n >= 3);
}
