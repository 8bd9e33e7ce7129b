//! The index a request names, opened for its caller: with the index key from the body (the
//! service key's callers), or with the user key the `cdbk_` API key carries (users, who
//! send no index key). A placeholder waiting for its dimension is told apart here. A service
//! request without `index_key` on an index created with `kms_name` gets the key unwrapped
//! from the index's envelope (`envelopes`).

use std::sync::OnceLock;

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

/// Who opens, with which key: parsed on the async side, moved into the blocking call. The key
/// of a service request without `index_key` is resolved at [`Credentials::open`], through the
/// index's KMS envelope.
pub struct Credentials {
    key: OnceLock<IndexKey>,
    user: Option<String>,
}

impl Credentials {
    /// The credentials of `caller` for an index operation that carried `index_key`.
    ///
    /// # Errors
    /// 400 for a malformed index key. (A service request without one is answered 401 at
    /// [`Credentials::open`] unless the index has a KMS envelope.)
    pub fn of(caller: Caller, index_key: Option<&KeyText>) -> Result<Credentials, ApiError> {
        let key = OnceLock::new();
        match caller {
            Caller::Service => {
                if let Some(text) = index_key {
                    let _ = key.set(text.parse()?);
                }
                Ok(Credentials { key, user: None })
            }
            Caller::User(user) => {
                let _ = key.set(user.key);
                Ok(Credentials {
                    key,
                    user: Some(user.user_id),
                })
            }
        }
    }

    /// The index key of an owner (lifecycle operations), once given or resolved by
    /// [`Credentials::open`].
    pub fn owner_key(&self) -> Result<&IndexKey, ApiError> {
        match self.user {
            None => self
                .key
                .get()
                .ok_or_else(|| keys::required(None).unwrap_err()),
            Some(_) => Err(ApiError::forbidden(
                "this operation requires the service API key, not a user key",
            )),
        }
    }

    /// The key, resolving a missing one through `name`'s KMS envelope (blocking).
    fn resolve(&self, state: &AppState, name: &str) -> Result<(&IndexKey, bool), ApiError> {
        if let Some(key) = self.key.get() {
            return Ok((key, false));
        }
        let unwrapped = match &state.kms {
            Some(kms) => kms.key_for(name)?,
            None => None,
        };
        match unwrapped {
            Some(key) => Ok((self.key.get_or_init(|| key), true)),
            None => Err(keys::required(None).unwrap_err()),
        }
    }

    /// Opens `name` (blocking).
    ///
    /// # Errors
    /// As [`crate::handles::Handles::open`]; 401 for a service request without `index_key`
    /// on an index without a KMS envelope; the envelope's errors (`envelopes`).
    pub fn open(&self, state: &AppState, name: &str, access: Access) -> Result<Target, ApiError> {
        let (key, from_kms) = self.resolve(state, name)?;
        let opener = match &self.user {
            None => Opener::Owner(key),
            Some(user) => Opener::User(user, key),
        };
        let index = match state.handles.open(name, &opener, access) {
            Ok(index) => index,
            Err(e) => {
                if from_kms && let Some(kms) = &state.kms {
                    // A cached key may be stale: the index was replaced on another replica.
                    kms.forget_key(name);
                }
                return Err(e);
            }
        };
        Ok(match Pending::of(&index) {
            Some(pending) => Target::Pending(index, pending),
            None => Target::Ready(index),
        })
    }
}
