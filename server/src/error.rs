//! The one mapping from failures to HTTP answers: every handler returns `Result<_, ApiError>`
//! and this file alone decides the status code and the body the SDKs parse.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ciphervec::Error;
use serde_json::{Value, json};

/// A failed request: the status, what the client is told, and (for server faults) what only
/// the log is told.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: Detail,
}

#[derive(Debug)]
enum Detail {
    /// A message for the client (`{"status_code", "detail"}`).
    Text(String),
    /// Schema errors in FastAPI's shape (`{"detail": [{"type", "loc", "msg"}]}`).
    Schema(Vec<Value>),
}

impl ApiError {
    /// 400: a value the server understood and refuses, with the reason.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no API key, an unknown one, or a key that does not open the index.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: an authenticated key without the scope the request needs.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404 for routes and resources other than indexes.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the state of the index (training, locked, a reader
    /// replica).
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// 413: the body is over the configured limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over the limit of {limit} bytes (ciphervec serve --max-body-bytes)"
            ),
        )
    }

    /// 422: the body does not match the endpoint's schema. `loc` names fields and indexes
    /// only; the offending value is never echoed.
    pub fn schema(kind: &str, loc: Vec<Value>, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Detail::Schema(vec![json!({"type": kind, "loc": loc, "msg": msg.into()})]),
        }
    }

    /// 500 for a fault of the server itself (a panicked or cancelled engine call); the
    /// reason goes to the log only.
    pub fn internal(log_reason: &str) -> ApiError {
        tracing::error!(reason = log_reason, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL)
    }

    /// Any status with a message for the client (the key-service and envelope errors of
    /// `envelopes`). The detail must hold no secret.
    pub fn with_status(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError::new(status, detail)
    }

    fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: Detail::Text(detail.into()),
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// What a client is told about a server fault: the details are in the server's log.
const INTERNAL_DETAIL: &str = "internal error (see the server log)";

impl From<Error> for ApiError {
    /// Every core error to its status. The core's messages never hold key bytes or
    /// plaintext, so 4xx details quote them; server faults (5xx) are logged and answered
    /// with a fixed text.
    fn from(e: Error) -> ApiError {
        match e {
            Error::InvalidKey
            | Error::DimensionMismatch { .. }
            | Error::InvalidVector
            | Error::InvalidFilter { .. }
            | Error::InvalidArgument { .. } => ApiError::bad_request(e.to_string()),
            Error::WrongKey => {
                ApiError::unauthorized("wrong index key: it does not open this index")
            }
            Error::IndexNotFound => ApiError::new(StatusCode::NOT_FOUND, "index does not exist"),
            Error::IndexExists => ApiError::conflict("an index of that name already exists"),
            Error::Locked => ApiError::conflict(
                "the index is locked by another writer (another process or replica holds its \
                 writer lock or lease)",
            ),
            Error::ReadOnly => ApiError::conflict(
                "this replica serves reads only: another replica holds the index's writer \
                 lease; send writes to that replica",
            ),
            Error::PermissionDenied => ApiError::forbidden(
                "this user key's grant does not allow the operation (read-only users cannot \
                 write)",
            ),
            Error::UnsupportedFormat { found, supported } => {
                tracing::error!(found, supported, "index in a newer on-disk format");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the index is stored in format {found}, newer than this server's {supported}: \
                         upgrade ciphervec"
                    ),
                )
            }
            Error::Unavailable => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable: retry later",
                )
            }
            Error::KeyService { .. } => crate::envelopes::kms_error(e),
            other => {
                tracing::error!(error = %other, "engine error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.detail {
            Detail::Text(text) => json!({"status_code": self.status.as_u16(), "detail": text}),
            Detail::Schema(errors) => json!({"detail": errors}),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_answers_the_status_wire_md_gives_it() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::InvalidKey, 400),
            (
                Error::DimensionMismatch {
                    expected: 4,
                    found: 3,
                },
                400,
            ),
            (Error::InvalidVector, 400),
            (Error::InvalidFilter { reason: "x".into() }, 400),
            (Error::InvalidArgument { reason: "x".into() }, 400),
            (Error::WrongKey, 401),
            (Error::PermissionDenied, 403),
            (Error::IndexNotFound, 404),
            (Error::IndexExists, 409),
            (Error::Locked, 409),
            (Error::ReadOnly, 409),
            (Error::Unavailable, 503),
            (Error::RolledBack, 500),
            (Error::Poisoned, 500),
            (
                Error::UnsupportedFormat {
                    found: 9,
                    supported: 8,
                },
                500,
            ),
            (Error::Io(std::io::Error::other("disk")), 500),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status().as_u16(), status, "{text}");
        }
    }
}
