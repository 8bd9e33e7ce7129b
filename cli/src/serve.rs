//! `ciphervec serve`: CyborgDB's REST API v1 over a database location, through the
//! `ciphervec-server` crate. The service API key comes from `--api-key-file` or
//! `CIPHERVEC_API_KEY`, never from a command-line value; without one the server refuses to
//! start unless `--insecure-no-auth` is given, and then only on a loopback address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ciphervec::Database;
use ciphervec_server::envelopes::KmsConfig;
use ciphervec_server::{ServeOptions, ServiceKey, StartError};
use zeroize::Zeroizing;

use crate::error::CliError;

/// The environment variable holding the service API key when `--api-key-file` is absent.
pub(crate) const API_KEY_VAR: &str = "CIPHERVEC_API_KEY";

/// The options of `serve` (see `Command::Serve` for their help).
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The database: a directory, file:///path, memory:// or s3://bucket/prefix (anything
    /// `Database::open_url` takes).
    location: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A file holding the service API key (at least 16 characters; refused when group or
    /// others can read it). Without it, `CIPHERVEC_API_KEY` is used.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Serve without an API key (only on a loopback address).
    #[arg(long)]
    insecure_no_auth: bool,
    /// The largest request body accepted, in bytes (default 64 MiB).
    #[arg(long, default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Requests handled at once; more wait.
    #[arg(long, default_value_t = 64)]
    max_concurrency: usize,
    /// Seconds an unused index handle (and the key it holds) is kept open.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Seconds between refreshes of an index this replica serves read-only.
    #[arg(long, default_value_t = 1.0)]
    refresh_interval: f64,
    /// Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Let logs name indexes (off by default: names appear only in answers).
    #[arg(long)]
    log_index_names: bool,
    /// Logs as JSON lines on stderr (default: text).
    #[arg(long)]
    log_json: bool,
    /// A KMS registry (JSON: names to key-service settings, see docs/KEY_MANAGEMENT.md):
    /// enables `kms_name` at index creation. Indexes created with it keep an envelope (the
    /// wrapped key, no secret) in the database location.
    #[arg(long, value_name = "FILE")]
    kms_registry: Option<PathBuf>,
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let api_key = api_key(args.api_key_file.as_deref())?;
    if api_key.is_none() && !args.insecure_no_auth {
        return Err(CliError::Usage(format!(
            "serve needs an API key: --api-key-file FILE or {API_KEY_VAR} (or \
             --insecure-no-auth, loopback only)"
        )));
    }
    if !args.refresh_interval.is_finite() || args.refresh_interval < 0.0 {
        return Err(CliError::Usage("--refresh-interval must be >= 0".into()));
    }
    let mut options = ServeOptions::new(args.listen);
    options.api_key = api_key;
    options.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    options.max_body_bytes = args.max_body_bytes;
    options.max_concurrency = args.max_concurrency;
    options.idle_timeout = Duration::from_secs(args.idle_timeout);
    options.refresh_interval = Duration::from_secs_f64(args.refresh_interval);
    options.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    options.log_index_names = args.log_index_names;
    init_logs(args.log_json);
    let db = Database::open_url(&args.location)?;
    if let Some(path) = &args.kms_registry {
        let registry = KmsConfig::read_registry(path).map_err(CliError::Usage)?;
        let store = KmsConfig::sidecar_for(&args.location).map_err(CliError::Usage)?;
        options.kms = Some(KmsConfig::new(registry, store)?);
    }
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    ciphervec_server::serve_until_signal(db, options, |addr| {
        eprintln!("ciphervec serve: listening on {scheme}://{addr}");
    })
    .map_err(|e| match e {
        StartError::Insecure(_) => CliError::Usage(e.to_string()),
        StartError::Io(_) => CliError::Other(e.to_string()),
    })
}

/// The service key from `file`, else from `CIPHERVEC_API_KEY`; `None` when neither is set.
fn api_key(file: Option<&Path>) -> Result<Option<ServiceKey>, CliError> {
    let text = match file {
        Some(path) => {
            refuse_shared_file(path)?;
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CliError::Other(format!(
                    "cannot read --api-key-file {}: {e}",
                    path.display()
                ))
            })?)
        }
        None => match std::env::var(API_KEY_VAR) {
            Ok(text) => Zeroizing::new(text),
            Err(_) => return Ok(None),
        },
    };
    ServiceKey::new(&text).map(Some).map_err(CliError::Usage)
}

/// A key file that group or others can read is refused (as index key files are).
#[cfg(unix)]
fn refuse_shared_file(path: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::Other(format!(
            "cannot read --api-key-file {}: {e}",
            path.display()
        ))
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CliError::Usage(format!(
            "--api-key-file {} is readable by group or others: chmod 600 it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared_file(_path: &Path) -> Result<(), CliError> {
    Ok(())
}

/// Structured logs on stderr through `tracing`: one line per request (route template,
/// status, latency, request id) and the server's own events. `RUST_LOG`-style levels are
/// not parsed: `CIPHERVEC_LOG=debug|info|warn|error` sets the level (default info).
fn init_logs(json: bool) {
    let level = match std::env::var("CIPHERVEC_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
