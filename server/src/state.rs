//! What every handler shares: the database (through the handle cache), the service key,
//! the options, the indexes being trained here, and the metrics.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::ServiceKey;
use crate::envelopes::{Envelopes, KmsConfig};
use crate::error::ApiError;
use crate::handles::Handles;
use crate::metrics::Metrics;

/// How `serve` runs. [`ServeOptions::new`] gives the documented defaults.
#[derive(Debug)]
pub struct ServeOptions {
    /// The address to listen on (default `127.0.0.1:8000`).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key for HTTPS; plain HTTP when `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The service API key; `None` runs without authentication (loopback only).
    pub api_key: Option<ServiceKey>,
    /// The largest request body accepted (default 64 MiB; a binary upsert of 40,000
    /// 384-dimensional vectors is about 20 MiB of base64).
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait (default 64).
    pub max_concurrency: usize,
    /// A kept index handle (and the key it holds) unused this long is dropped (default
    /// 300 s).
    pub idle_timeout: Duration,
    /// A read-only handle (a reader replica) refreshes from storage at most this often
    /// (default 1 s).
    pub refresh_interval: Duration,
    /// On shutdown, in-flight requests get this long to finish (default 30 s).
    pub shutdown_grace: Duration,
    /// Whether logs may name indexes (default false: index names appear only in answers
    /// that must carry them, the index list and the training status).
    pub log_index_names: bool,
    /// The KMS registry for `kms_name` at create (`--kms-registry FILE`) and the store of
    /// the envelopes; `None` refuses `kms_name` with 400.
    pub kms: Option<KmsConfig>,
}

impl ServeOptions {
    /// The defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            listen,
            tls: None,
            api_key: None,
            max_body_bytes: 64 << 20,
            max_concurrency: 64,
            idle_timeout: Duration::from_secs(300),
            refresh_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            log_index_names: false,
            kms: None,
        }
    }
}

/// The state handlers share (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// Open handles, and the database behind them.
    pub handles: Arc<Handles>,
    /// The service API key, if authentication is on.
    pub service_key: Option<Arc<ServiceKey>>,
    /// Limits and switches.
    pub options: Arc<Limits>,
    /// Names of indexes an explicit train request is training in this process.
    pub training: Arc<Mutex<HashSet<String>>>,
    /// Held while an index created without a dimension becomes a real one.
    pub materialize: Arc<Mutex<()>>,
    /// Request counters.
    pub metrics: Arc<Metrics>,
    /// The KMS registry and envelopes, when `serve` has one.
    pub kms: Option<Arc<Envelopes>>,
}

/// The options handlers read.
#[derive(Debug)]
pub struct Limits {
    /// See [`ServeOptions::max_body_bytes`].
    pub max_body_bytes: usize,
    /// See [`ServeOptions::log_index_names`].
    pub log_index_names: bool,
}

/// Runs an engine call on tokio's blocking pool, off the async threads.
///
/// # Errors
/// The call's own error, or 500 if it panicked.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ApiError::internal("an engine call panicked")),
        Err(_) => Err(ApiError::internal("an engine call was cancelled")),
    }
}
