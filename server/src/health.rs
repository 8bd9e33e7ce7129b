//! `GET /v1/health` (no key) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /v1/health`: every value a string, as the Python SDK's `Dict[str, str]` reads it.
pub async fn health() -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "api_version": "v1",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /metrics`: requests, errors and latency per endpoint; open handles.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.handles.len()),
    )
}
