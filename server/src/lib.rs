//! `ciphervec serve`: CyborgDB's REST API v1 over a ciphervec [`Database`], so that
//! CyborgDB's own SDKs (Python `cyborgdb` 0.18, JavaScript `cyborgdb` 0.14) and its
//! documented cURL calls work against an open-source, local-first engine. The wire format,
//! endpoint by endpoint, is `server/WIRE.md`; operations are in `docs/SERVER.md`.
//!
//! One module per resource (`indexes`, `vectors`, `users`, `health`); handlers parse,
//! authorize ([`auth`]), run the core off the async threads ([`state::blocking`]) and
//! serialize; [`error::ApiError`] is the one mapping from core errors to status codes.
//!
//! ```no_run
//! use ciphervec::Database;
//! use ciphervec_server::{ServeOptions, Server, ServiceKey};
//! let db = Database::open("./db").unwrap();
//! let mut options = ServeOptions::new("127.0.0.1:8000".parse().unwrap());
//! options.api_key = Some(ServiceKey::new("a-long-random-service-api-key").unwrap());
//! let server = Server::start(db, options).unwrap();
//! println!("listening on {}", server.addr());
//! server.shutdown();
//! ```

pub mod auth;
pub mod body;
pub mod convert;
pub mod envelopes;
pub mod error;
pub mod features;
pub mod handles;
mod health;
mod indexes;
pub mod keys;
pub mod metrics;
pub mod pending;
pub mod sidecar;
pub mod state;
pub mod target;
mod users;
mod vectors;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use ciphervec::Database;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use auth::ServiceKey;
pub use error::ApiError;
pub use state::{AppState, ServeOptions};

use handles::Handles;
use metrics::Metrics;

/// The header carrying each request's id (the Python SDK reads it into `request_id`).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router of every endpoint over `state`.
pub fn router(state: AppState, options: &ServeOptions) -> Router {
    let api = Router::new()
        .route("/v1/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/v1/indexes/list", get(indexes::list))
        .route("/v1/indexes/create", post(indexes::create))
        .route("/v1/indexes/describe", post(indexes::describe))
        .route("/v1/indexes/delete", post(indexes::delete))
        .route("/v1/indexes/train", post(indexes::train))
        .route("/v1/indexes/training-status", get(indexes::training_status))
        .route(
            "/v1/indexes/{index_name}/users",
            post(users::create).get(users::list),
        )
        .route(
            "/v1/indexes/{index_name}/users/{user_id}",
            delete(users::delete),
        )
        .route("/v1/vectors/upsert", post(vectors::upsert))
        .route("/v1/vectors/upsert_binary", post(vectors::upsert_binary))
        .route("/v1/vectors/query", post(vectors::query))
        .route("/v1/vectors/query_binary", post(vectors::query_binary))
        .route("/v1/vectors/query_metadata", post(vectors::query_metadata))
        .route("/v1/vectors/get", post(vectors::get))
        .route("/v1/vectors/delete", post(vectors::delete))
        .route("/v1/vectors/list_ids", post(vectors::list_ids))
        .route("/v1/vectors/num_vectors", post(vectors::num_vectors))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            options.max_concurrency.max(1),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    api.with_state(state)
}

/// Counts and logs each request by its route template: never its path (which may hold an
/// index name), body or headers.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let start = Instant::now();
    let in_flight = state.metrics.start();
    let response = next.run(req).await;
    drop(in_flight);
    let latency = start.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&endpoint, status, latency);
    tracing::info!(
        %method,
        endpoint,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id,
        "request"
    );
    response
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// No API key and a listen address that is not loopback.
    Insecure(SocketAddr),
    /// Binding, TLS files, or the runtime.
    Io(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Insecure(addr) => write!(
                f,
                "refusing to serve without an API key on {addr}: without authentication only \
                 a loopback address is allowed"
            ),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Serves `db` until `shutdown` completes, then stops accepting and gives in-flight
/// requests [`ServeOptions::shutdown_grace`] to finish. Calls `bound` with the address
/// once listening.
///
/// # Errors
/// [`StartError::Insecure`] without an API key off loopback; binding or TLS failures.
pub async fn run(
    db: Database,
    mut options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(SocketAddr) + Send,
) -> Result<(), StartError> {
    if options.api_key.is_none() && !options.listen.ip().is_loopback() {
        return Err(StartError::Insecure(options.listen));
    }
    // One crypto provider for rustls in this process (already installed is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match &options.tls {
        Some((cert, key)) => {
            Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?)
        }
        None => None,
    };
    let listener = std::net::TcpListener::bind(options.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    let handles = Arc::new(Handles::new(
        db,
        options.idle_timeout,
        options.refresh_interval,
    ));
    let state = AppState {
        handles: handles.clone(),
        service_key: options.api_key.map(Arc::new),
        options: Arc::new(state::Limits {
            max_body_bytes: options.max_body_bytes,
            log_index_names: options.log_index_names,
        }),
        training: Arc::default(),
        materialize: Arc::new(Mutex::new(())),
        metrics: Arc::new(Metrics::default()),
        kms: options
            .kms
            .take()
            .map(|config| Arc::new(envelopes::Envelopes::new(config, options.idle_timeout))),
    };
    let options = ServeOptions {
        api_key: None,
        ..options
    };
    let app = router(state, &options);

    let handle = axum_server::Handle::new();
    let grace = options.shutdown_grace;
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.graceful_shutdown(Some(grace));
        });
    }
    let evictor = {
        let every =
            (options.idle_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let handles = handles.clone();
                let _ = tokio::task::spawn_blocking(move || handles.evict_idle()).await;
            }
        })
    };
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    bound(addr);
    let served = match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    };
    evictor.abort();
    Ok(served?)
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Serves `db` in the calling thread until SIGINT or SIGTERM, then lets in-flight requests
/// finish (`ciphervec serve`). Calls `bound` with the address once listening.
///
/// # Errors
/// As [`run`].
pub fn serve_until_signal(
    db: Database,
    options: ServeOptions,
    bound: impl FnOnce(SocketAddr) + Send,
) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ciphervec-serve-worker")
        .build()?;
    runtime.block_on(run(db, options, shutdown_signal(), bound))
}

/// A server running on its own threads (for the command line and tests).
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), StartError>>>,
}

impl Server {
    /// Starts serving `db` with `options` on a runtime of its own; returns once listening.
    ///
    /// # Errors
    /// As [`run`].
    pub fn start(db: Database, options: ServeOptions) -> Result<Server, StartError> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ciphervec-serve".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("ciphervec-serve-worker")
                    .build()?;
                runtime.block_on(run(
                    db,
                    options,
                    async move {
                        let _ = stop_rx.await;
                    },
                    move |addr| {
                        let _ = addr_tx.send(addr);
                    },
                ))
            })?;
        match addr_rx.recv() {
            Ok(addr) => Ok(Server {
                addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(StartError::Io(io::Error::other(
                    "the server thread stopped",
                ))),
            },
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Waits until the server ends by itself (an error, or a shutdown signal it handles).
    ///
    /// # Errors
    /// As [`run`].
    pub fn wait(mut self) -> Result<(), StartError> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StartError::Io(io::Error::other(
                "the server thread panicked",
            ))),
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
