//! `/v1/indexes/{index_name}/users[/{user_id}]`: user keys (`cdbk_…`) scoped to one index.
//! They need the core's grants (`index.grant/revoke/users`, `Database::open_index_as`);
//! until those are in the core, these answer 501 after checking the caller.

use axum::Json;
use axum::extract::Path;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;

fn missing() -> ApiError {
    ApiError::not_implemented(
        "user keys need the core's grants (EncryptedIndex::grant, Database::open_index_as), \
         not in this build",
    )
}

/// `POST /v1/indexes/{index_name}/users`.
pub async fn create(
    caller: Caller,
    Path(_index_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    Err(missing())
}

/// `GET /v1/indexes/{index_name}/users`.
pub async fn list(
    caller: Caller,
    Path(_index_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    Err(missing())
}

/// `DELETE /v1/indexes/{index_name}/users/{user_id}`.
pub async fn delete(
    caller: Caller,
    Path((_index_name, _user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    Err(missing())
}
