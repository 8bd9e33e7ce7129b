//! The index a request names, opened for its caller: with the index key from the body (the
//! service key's callers), or with the user key the `cdbk_` API key carries (users, who
//! send no index key). A placeholder waiting for its dimension is told apart here.

use ciphervec::{EncryptedIndex, IndexKey};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handles::{Access, Opener};
use crate::keys::{self, KeyText};
use crate::pending::Pending;
use crate::state::AppState;

/// The fields every index operation carries (`IndexOperationRequest` in both SDKs).
#[derive(Deserialize, Debug)]
pub struct IndexRef {
    /// The index name.
    pub index_name: String,
    /// The index key (absent for user keys).
    #[serde(default)]
    pub index_key: Option<KeyText>,
}

/// An opened index.
pub enum Target {
    /// An index with a dimension.
    Ready(EncryptedIndex),
    /// A placeholder waiting for its first upsert.
    Pending(EncryptedIndex, Pending),
}

/// Who opens, with which key: parsed on the async side, moved into the blocking call.
pub struct Credentials {
    key: IndexKey,
    user: Option<String>,
}

impl Credentials {
    /// The credentials of `caller` for an index operation that carried `index_key`.
    ///
    /// # Errors
    /// 401 without an index key (service callers), 400 for a malformed one.
    pub fn of(caller: Caller, index_key: Option<&KeyText>) -> Result<Credentials, ApiError> {
        match caller {
            Caller::Service => Ok(Credentials {
                key: keys::required(index_key)?,
                user: None,
            }),
            Caller::User(user) => Ok(Credentials {
                key: user.key,
                user: Some(user.user_id),
            }),
        }
    }

    /// The index key of an owner (lifecycle operations).
    pub fn owner_key(&self) -> Result<&IndexKey, ApiError> {
        match self.user {
            None => Ok(&self.key),
            Some(_) => Err(ApiError::forbidden(
                "this operation requires the service API key, not a user key",
            )),
        }
    }

    /// Opens `name` (blocking).
    ///
    /// # Errors
    /// As [`crate::handles::Handles::open`].
    pub fn open(&self, state: &AppState, name: &str, access: Access) -> Result<Target, ApiError> {
        let opener = match &self.user {
            None => Opener::Owner(&self.key),
            Some(user) => Opener::User(user, &self.key),
        };
        let index = state.handles.open(name, &opener, access)?;
        Ok(match Pending::of(&index) {
            Some(pending) => Target::Pending(index, pending),
            None => Target::Ready(index),
        })
    }
}
