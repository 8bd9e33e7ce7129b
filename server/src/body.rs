//! Request bodies: JSON read within the body limit, schema errors as FastAPI reports them
//! (without the offending values), and the body buffer wiped once parsed (it held the index
//! key).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zeroize::Zeroize;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(&e, state.options.max_body_bytes))?;
        let mut body: Vec<u8> = bytes.into();
        let parsed = parse(&body);
        body.zeroize();
        parsed.map(ApiJson)
    }
}

/// Parses `body` as `T`, reporting where it failed by field path and position only.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = value.map_err(|e| {
        let mut loc = vec![json!("body")];
        for segment in e.path() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        schema_error(e.inner(), loc)
    })?;
    de.end()
        .map_err(|e| schema_error(&e, vec![json!("body")]))?;
    Ok(value)
}

/// A serde_json error as a 422. Its message may quote the offending value ("invalid type:
/// string \"...\""), so only messages that name a field are passed on.
fn schema_error(e: &serde_json::Error, mut loc: Vec<Value>) -> ApiError {
    let text = e.to_string();
    if e.is_syntax() || e.is_eof() {
        return ApiError::schema(
            "json_invalid",
            loc,
            format!(
                "JSON decode error at line {}, column {}",
                e.line(),
                e.column()
            ),
        );
    }
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        loc.push(json!(field));
        return ApiError::schema("missing", loc, "Field required");
    }
    ApiError::schema(
        "value_error",
        loc,
        format!(
            "a value of the wrong type or out of range (line {}, column {})",
            e.line(),
            e.column()
        ),
    )
}

fn body_rejection(e: &BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(limit)
    } else {
        ApiError::bad_request("could not read the request body")
    }
}
