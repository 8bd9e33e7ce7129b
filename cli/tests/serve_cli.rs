//! `ciphervec serve` as a command: it refuses to start without an API key (unless
//! `--insecure-no-auth`, and then only on loopback) or with a key file others can read;
//! with a key it answers `/v1/health` and requires the key elsewhere, and SIGTERM stops it
//! with exit 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ciphervec");

fn serve(args: &[&str], api_key_env: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(args).env_remove("CIPHERVEC_API_KEY");
    if let Some(key) = api_key_env {
        cmd.env("CIPHERVEC_API_KEY", key);
    }
    cmd
}

#[test]
fn serve_refuses_to_start_without_a_key_or_with_a_shared_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = serve(&[db, "--listen", "127.0.0.1:0"], None)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API key"));

    let out = serve(&[db, "--listen", "0.0.0.0:0", "--insecure-no-auth"], None)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let out = serve(&[db, "--listen", "127.0.0.1:0"], Some("short"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("api-key.txt");
        std::fs::write(&file, "a-service-key-of-some-length\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = serve(
            &[
                db,
                "--listen",
                "127.0.0.1:0",
                "--api-key-file",
                file.to_str().unwrap(),
            ],
            None,
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let key_header = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{key_header}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[cfg(unix)]
#[test]
fn serve_answers_with_a_key_file_and_stops_on_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-key.txt");
    let key = "cli-test-service-key-0123456789";
    std::fs::write(&file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = serve(
        &[
            dir.path().join("db").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--api-key-file",
            file.to_str().unwrap(),
        ],
        None,
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited before listening"
        );
        if let Some(rest) = line
            .trim()
            .strip_prefix("ciphervec serve: listening on http://")
        {
            break rest.to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let (status, body) = get(&addr, "/v1/health", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("healthy"));
    assert_eq!(get(&addr, "/v1/indexes/list", None).0, 401);
    let (status, body) = get(&addr, "/v1/indexes/list", Some(key));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"indexes":[]}"#);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = drain.join().unwrap();
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(key), "the log holds the API key");
}
