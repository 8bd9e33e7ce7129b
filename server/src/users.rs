//! `/v1/indexes/{index_name}/users[/{user_id}]`: user keys (`cdbk_…`) scoped to one index,
//! enforced by the core's grants.
//!
//! Creating a user draws a random user id and user key, grants that id
//! ([`EncryptedIndex::grant`](ciphervec::EncryptedIndex::grant)) the scope asked, and hands
//! both back inside the `cdbk_` API key (see [`crate::auth::UserKey`]). The server keeps
//! nothing: the id is the grant's user name (sealed by the core), the key opens the grant
//! through `Database::open_index_as`. Deleting a user revokes its grant, which rotates the
//! index's data key, so the key it carries opens nothing from then on.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ciphervec::{Access as Scope, EncryptedIndex};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, UserKey};
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::handles::Access;
use crate::keys::KeyText;
use crate::state::{AppState, blocking};
use crate::target::{Credentials, Target};

/// The header the SDKs send the index key in on `GET` and `DELETE`.
const INDEX_KEY_HEADER: &str = "x-index-key";

/// `POST /v1/indexes/{index_name}/users` body (CyborgDB's `CreateUserRequest`).
#[derive(Deserialize)]
pub struct CreateUserRequest {
    permissions: Vec<String>,
    #[serde(default)]
    index_key: Option<KeyText>,
}

/// The core scope CyborgDB's permissions name.
///
/// # Errors
/// 400 for an empty list, an unknown name, or `["write"]` alone: ciphervec has no
/// write-only scope, and granting read as well would give more than was asked.
fn scope_of(permissions: &[String]) -> Result<Scope, ApiError> {
    let (mut read, mut write) = (false, false);
    for p in permissions {
        match p.as_str() {
            "read" => read = true,
            "write" => write = true,
            _ => {
                return Err(ApiError::bad_request(
                    "permissions must be a subset of [\"read\", \"write\"]",
                ));
            }
        }
    }
    match (read, write) {
        (true, false) => Ok(Scope::Read),
        (true, true) => Ok(Scope::ReadWrite),
        (false, true) => Err(ApiError::bad_request(
            "permissions [\"write\"] without \"read\" is not supported: ciphervec has no \
             write-only scope; ask for [\"read\", \"write\"]",
        )),
        (false, false) => Err(ApiError::bad_request(
            "permissions must name at least one of \"read\", \"write\"",
        )),
    }
}

/// CyborgDB's permission names for a core scope (an admin grant, which only the CLI or the
/// library make, lists as `admin` too).
fn permissions_of(scope: Scope) -> Vec<&'static str> {
    match scope {
        Scope::Read => vec!["read"],
        Scope::ReadWrite => vec!["read", "write"],
        _ => vec!["read", "write", "admin"],
    }
}

/// The owner's handle on `name` for user management (blocking). An index still waiting
/// for its dimension has no users: its placeholder is replaced by the first upsert, which
/// would drop their grants.
fn owner_index(
    state: &AppState,
    creds: &Credentials,
    name: &str,
    access: Access,
) -> Result<Option<EncryptedIndex>, ApiError> {
    let target = creds.open(state, name, access)?;
    // The handlers let only the service key's callers here; a KMS-backed index's key is
    // resolved by the open, so this checks the caller, not that a key was sent.
    creds.owner_key()?;
    Ok(match target {
        Target::Ready(index) => Some(index),
        Target::Pending(..) => None,
    })
}

fn header_key(headers: &HeaderMap) -> Option<KeyText> {
    headers
        .get(INDEX_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| KeyText::new(v.to_owned()))
}

/// `POST /v1/indexes/{index_name}/users`: 200 `{"user_id", "api_key"}`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    let scope = scope_of(&req.permissions)?;
    let Some(service_key) = state.service_key.clone() else {
        return Err(ApiError::bad_request(
            "user keys need the server to run with an API key (--api-key-file or \
             CIPHERVEC_API_KEY): without one it cannot tell a user key from a forged one",
        ));
    };
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let user = blocking(move || {
        let index = owner_index(&state, &creds, &name, Access::Write)?.ok_or_else(|| {
            ApiError::conflict(
                "this index has no dimension yet: upsert vectors before creating users",
            )
        })?;
        let user = UserKey::generate();
        index.grant(&user.user_id, &user.key, scope)?;
        Ok(user)
    })
    .await?;
    let api_key = user.encode(&service_key);
    Ok(Json(json!({"user_id": user.user_id, "api_key": *api_key})))
}

/// `GET /v1/indexes/{index_name}/users` (index key in `X-Index-Key`): 200
/// `{"users": [{"user_id", "permissions"}]}`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    let creds = Credentials::of(caller, header_key(&headers).as_ref())?;
    let users = blocking(
        move || match owner_index(&state, &creds, &name, Access::Read)? {
            Some(index) => Ok(index.users()?),
            None => Ok(Vec::new()),
        },
    )
    .await?;
    let users: Vec<Value> = users
        .into_iter()
        .map(|(id, scope)| json!({"user_id": id, "permissions": permissions_of(scope)}))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `DELETE /v1/indexes/{index_name}/users/{user_id}` (index key in `X-Index-Key`): 204.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require_service()?;
    let creds = Credentials::of(caller, header_key(&headers).as_ref())?;
    blocking(move || {
        let no_such_user = || ApiError::not_found("no such user on this index");
        let index = owner_index(&state, &creds, &name, Access::Write)?.ok_or_else(no_such_user)?;
        if !index.users()?.iter().any(|(id, _)| *id == user_id) {
            return Err(no_such_user());
        }
        index.revoke(&user_id)?;
        // Handles opened with the revoked key hold the old data key: drop every user's
        // handle on this index (the others reopen with their grants under the new key).
        state.handles.forget_users(&name);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn permissions_map_to_scopes_and_write_alone_is_refused() {
        assert_eq!(scope_of(&names(&["read"])).unwrap(), Scope::Read);
        assert_eq!(
            scope_of(&names(&["write", "read"])).unwrap(),
            Scope::ReadWrite
        );
        assert_eq!(
            scope_of(&names(&["read", "read", "write"])).unwrap(),
            Scope::ReadWrite
        );
        for bad in [&[][..], &["write"], &["admin"], &["READ"], &["read", "x"]] {
            let e = scope_of(&names(bad)).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert_eq!(permissions_of(Scope::Read), ["read"]);
        assert_eq!(permissions_of(Scope::ReadWrite), ["read", "write"]);
    }
}
