//! The KMS registry of `serve --kms-registry FILE` (CyborgDB's `kms_name`): an index created
//! with `kms_name` gets a key the server asks that registry entry's key service for; the key
//! service wraps it (bound to the index name as its encryption context), the server keeps the
//! wrapped key in an *envelope* beside the index, and later requests that omit `index_key`
//! get the key unwrapped through the same service.
//!
//! The envelope (JSON, one object per index under [`crate::sidecar::PREFIX`]) holds the
//! registry entry's name and the wrapped key: no secret. It is authenticated twice: the key
//! service refuses a wrapped key that was altered or moved to another index name (the
//! encryption context), and a tag (HMAC-SHA3-256 under a key derived from the unwrapped index
//! key) covers every field, so that an envelope edited to name another registry entry or
//! another index is refused before its key is used.
//!
//! Unwrapped keys are cached in memory only (as [`IndexKey`], wiped on drop) for the idle
//! time of index handles, and dropped when the index is deleted.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ciphervec::kms::{Kms, KmsRegistry, WrappedKey};
use ciphervec::{Error, IndexKey, KeyServiceFailure, MemoryStore, Store};
use hmac::{KeyInit, Mac, SimpleHmac};
use serde::{Deserialize, Serialize};
use sha3::Sha3_256;

use crate::error::ApiError;
use crate::keys::KeyText;
use crate::sidecar::{DirSidecar, PREFIX};
use crate::state::AppState;

/// The format tag of an envelope object.
const FORMAT: &str = "ciphervec-server/kms-envelope/v1";

/// The largest envelope read (a wrapped key is at most 8 KiB).
const MAX_ENVELOPE_LEN: usize = 64 * 1024;

/// A key-service client as the core connects it.
type Client = Arc<dyn Kms + Send + Sync>;

/// What `serve` is given to enable `kms_name`: the registry and the store the envelopes live
/// in (the database location's, see [`KmsConfig::sidecar_for`]).
pub struct KmsConfig {
    registry: KmsRegistry,
    clients: HashMap<String, Client>,
    store: Arc<dyn Store>,
}

impl fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsConfig")
            .field("entries", &self.registry.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KmsConfig {
    /// Connects every entry of `registry` now (credentials are read from the environment
    /// variables and files the entries name; nothing is sent yet), with envelopes kept in
    /// `store`.
    ///
    /// # Errors
    /// The core's error for the first entry that cannot connect (a missing cargo feature or
    /// environment variable, a malformed key name, plain http to a remote host), naming it.
    pub fn new(registry: KmsRegistry, store: Arc<dyn Store>) -> Result<KmsConfig, Error> {
        let mut clients = HashMap::new();
        for name in registry.names() {
            let client = registry.get(name)?.connect().map_err(|e| match e {
                Error::InvalidArgument { reason } => Error::InvalidArgument {
                    reason: format!("key service \"{name}\": {reason}"),
                },
                other => other,
            })?;
            clients.insert(name.to_owned(), Client::from(client));
        }
        Ok(KmsConfig {
            registry,
            clients,
            store,
        })
    }

    /// Reads a registry file: a JSON object of named key-service settings, as
    /// `ciphervec::kms::KmsRegistry::from_json` takes it.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or is not a valid registry.
    pub fn read_registry(path: &Path) -> Result<KmsRegistry, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read KMS registry {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("KMS registry {} is not JSON: {e}", path.display()))?;
        KmsRegistry::from_json(&value).map_err(|e| format!("KMS registry {}: {e}", path.display()))
    }

    /// The store for the envelopes of the database at `location` (as `ciphervec serve` is
    /// given it): files under the directory of a plain path or `file://` location, memory
    /// for `memory://`.
    ///
    /// # Errors
    /// For an object store location (`s3://`): the server cannot reach its objects through
    /// the core's public API yet.
    pub fn sidecar_for(location: &str) -> Result<Arc<dyn Store>, String> {
        let lower = location.to_ascii_lowercase();
        if lower == "memory:" || lower == "memory://" {
            return Ok(Arc::new(MemoryStore::new()));
        }
        if let Some(rest) = lower.strip_prefix("file://") {
            let offset = location.len() - rest.len();
            let path = &location[offset..];
            let path = path.strip_prefix("localhost").unwrap_or(path);
            if !path.starts_with('/') || path.contains('%') {
                return Err(
                    "--kms-registry with a file:// location needs a plain absolute path \
                     (give the folder as a path)"
                        .to_owned(),
                );
            }
            return Ok(Arc::new(DirSidecar::new(path)));
        }
        if location.contains("://") {
            return Err(
                "--kms-registry is available for directory and memory:// locations in this \
                 build; object-store locations need the core's S3 store to be public"
                    .to_owned(),
            );
        }
        Ok(Arc::new(DirSidecar::new(location)))
    }
}

/// The envelope object of one index.
#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    index_name: String,
    kms_name: String,
    provider: String,
    wrapped_key: String,
    tag: String,
}

impl Envelope {
    /// The tag over every other field, under a key derived from the index key.
    fn tag(&self, key: &IndexKey) -> [u8; 32] {
        let secret = key.to_base64();
        let mut derive = <SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        derive.update(b"ciphervec-server/kms-envelope/tag-key/v1");
        let tag_key = zeroize::Zeroizing::new(<[u8; 32]>::from(derive.finalize().into_bytes()));
        let mut mac = <SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(&*tag_key)
            .expect("HMAC takes a key of any length");
        for field in [
            &self.format,
            &self.index_name,
            &self.kms_name,
            &self.provider,
            &self.wrapped_key,
        ] {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }
}

/// The KMS registry at work: connected clients, envelopes, and the cache of unwrapped keys.
pub struct Envelopes {
    registry: KmsRegistry,
    clients: HashMap<String, Client>,
    store: Arc<dyn Store>,
    keys: Mutex<HashMap<String, (IndexKey, Instant)>>,
    ttl: Duration,
}

impl fmt::Debug for Envelopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelopes").finish_non_exhaustive()
    }
}

/// The object name of `index`'s envelope: hex of the name, so any index name is a plain file
/// name.
fn object_name(index: &str) -> String {
    let hex: String = index.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}kms-envelopes/{hex}.json")
}

impl Envelopes {
    /// The registry of `config`; unwrapped keys are kept `ttl` after their last use.
    pub fn new(config: KmsConfig, ttl: Duration) -> Envelopes {
        Envelopes {
            registry: config.registry,
            clients: config.clients,
            store: config.store,
            keys: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn client(&self, kms_name: &str) -> Result<&Client, ApiError> {
        self.clients.get(kms_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "kms_name \"{kms_name}\" is not in this server's KMS registry"
            ))
        })
    }

    /// Checks that `kms_name` names a registry entry.
    ///
    /// # Errors
    /// 400 when it does not.
    pub fn check(&self, kms_name: &str) -> Result<(), ApiError> {
        self.client(kms_name).map(|_| ())
    }

    /// A fresh key for index `index` from entry `kms_name`'s key service, and the sealed
    /// envelope to [`Envelopes::store`] once the index exists (blocking).
    ///
    /// # Errors
    /// 400 for an unknown entry; the key service's failure (see [`kms_error`]).
    pub fn generate(&self, index: &str, kms_name: &str) -> Result<(IndexKey, Sealed), ApiError> {
        let client = self.client(kms_name)?;
        let (key, wrapped) = client.generate_key(index).map_err(kms_error)?;
        let provider = self.registry.get(kms_name)?.provider().to_string();
        let mut envelope = Envelope {
            format: FORMAT.to_owned(),
            index_name: index.to_owned(),
            kms_name: kms_name.to_owned(),
            provider,
            wrapped_key: wrapped.to_string(),
            tag: String::new(),
        };
        envelope.tag = hex(&envelope.tag(&key));
        Ok((key, Sealed(envelope)))
    }

    /// Writes `sealed` (replacing a stale envelope of an index of the same name that no
    /// longer exists) and caches its key (blocking).
    ///
    /// # Errors
    /// The store's error.
    pub fn store(&self, sealed: Sealed, key: &IndexKey) -> Result<(), ApiError> {
        let body = serde_json::to_vec(&sealed.0).map_err(|_| ApiError::internal("envelope"))?;
        self.store
            .put(&object_name(&sealed.0.index_name), &body)
            .map_err(|e| ApiError::from(Error::from(e)))?;
        self.cache(&sealed.0.index_name, key.clone());
        Ok(())
    }

    /// The key of KMS-backed index `index`: cached, or unwrapped from its envelope through
    /// its key service; `None` when it has no envelope (blocking).
    ///
    /// # Errors
    /// 500 for an envelope that is malformed or fails authentication; the key service's
    /// failure (see [`kms_error`]); the store's error.
    pub fn key_for(&self, index: &str) -> Result<Option<IndexKey>, ApiError> {
        {
            let mut keys = self.lock();
            if let Some((key, used)) = keys.get_mut(index)
                && used.elapsed() < self.ttl
            {
                *used = Instant::now();
                return Ok(Some(key.clone()));
            }
            keys.remove(index);
        }
        let body = match self.store.get(&object_name(index)) {
            Ok(body) => body,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::from(e).into()),
        };
        let key = self.open(index, &body)?;
        self.cache(index, key.clone());
        Ok(Some(key))
    }

    fn open(&self, index: &str, body: &[u8]) -> Result<IndexKey, ApiError> {
        let envelope: Envelope = (body.len() <= MAX_ENVELOPE_LEN)
            .then(|| serde_json::from_slice(body).ok())
            .flatten()
            .filter(|e: &Envelope| e.format == FORMAT)
            .ok_or_else(|| tampered("is not a valid envelope"))?;
        if envelope.index_name != index {
            return Err(tampered("names another index"));
        }
        let client = self.clients.get(&envelope.kms_name).ok_or_else(|| {
            tracing::error!("a KMS envelope names a key service this server's registry lacks");
            ApiError::with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the key service that wraps this index's key is not in this server's KMS \
                 registry (start serve with the registry the index was created under)",
            )
        })?;
        let wrapped = WrappedKey::new(envelope.wrapped_key.clone())
            .map_err(|_| tampered("holds a malformed wrapped key"))?;
        let key = match client.unwrap_key(&wrapped, index) {
            Ok(key) => key,
            Err(Error::KeyService {
                kind: KeyServiceFailure::Refused,
                message,
            }) => {
                tracing::error!(reason = %message, "a key service refused to unwrap an envelope");
                return Err(ApiError::with_status(
                    StatusCode::BAD_GATEWAY,
                    "the key service refused to unwrap this index's KMS envelope: it was \
                     altered, or this server lacks permission on the key (see the server log)",
                ));
            }
            Err(e) => return Err(kms_error(e)),
        };
        let expected = envelope.tag(&key);
        let given = unhex(&envelope.tag).ok_or_else(|| tampered("has a malformed tag"))?;
        let mut check = <SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(&expected)
            .expect("HMAC takes a key of any length");
        // Constant time: compare MACs of both tags under a one-off key.
        check.update(&given);
        let mut again = <SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(&expected)
            .expect("HMAC takes a key of any length");
        again.update(&expected);
        if check.verify(&again.finalize().into_bytes()).is_err() {
            return Err(tampered("fails authentication"));
        }
        Ok(key)
    }

    /// Forgets the cached key of `index` (its key opened nothing: the index was replaced by
    /// another replica).
    pub fn forget_key(&self, index: &str) {
        self.lock().remove(index);
    }

    /// Removes the envelope of deleted index `index` and its cached key (blocking).
    ///
    /// # Errors
    /// The store's error.
    pub fn remove(&self, index: &str) -> Result<(), ApiError> {
        self.forget_key(index);
        self.store
            .delete(&object_name(index))
            .map_err(|e| ApiError::from(Error::from(e)))
    }

    fn cache(&self, index: &str, key: IndexKey) {
        self.lock().insert(index.to_owned(), (key, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (IndexKey, Instant)>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An envelope sealed under a new key, not yet stored.
pub struct Sealed(Envelope);

/// Where the key of an index being created comes from: exactly one of `index_key` (the
/// client holds the key) and `kms_name` (the server's registry does).
pub enum NewKey {
    /// The client's key.
    Given(IndexKey),
    /// A key generated by this registry entry's key service.
    Kms(Arc<Envelopes>, String),
}

impl NewKey {
    /// Checks a create request's `index_key` and `kms_name`.
    ///
    /// # Errors
    /// 400 when both or neither are set, for a malformed key, for `kms_name` on a server
    /// without a registry or naming no entry of it.
    pub fn of(
        state: &AppState,
        index_key: Option<&KeyText>,
        kms_name: Option<&str>,
    ) -> Result<NewKey, ApiError> {
        match (index_key, kms_name) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "give exactly one of index_key and kms_name, not both",
            )),
            (None, None) => Err(ApiError::bad_request("index_key or kms_name is required")),
            (Some(text), None) => Ok(NewKey::Given(text.parse()?)),
            (None, Some(kms_name)) => {
                let kms = state.kms.clone().ok_or_else(|| {
                    ApiError::bad_request(
                        "kms_name needs a KMS registry: start serve with --kms-registry FILE",
                    )
                })?;
                kms.check(kms_name)?;
                Ok(NewKey::Kms(kms, kms_name.to_owned()))
            }
        }
    }

    /// The key to create index `name` with (blocking: a key service is asked for it), and
    /// what to do once the index exists.
    ///
    /// # Errors
    /// As [`Envelopes::generate`].
    pub fn resolve(self, state: &AppState, name: &str) -> Result<(IndexKey, Created), ApiError> {
        match self {
            NewKey::Given(key) => Ok((key, Created(state.kms.clone(), None))),
            NewKey::Kms(kms, kms_name) => {
                let (key, sealed) = kms.generate(name, &kms_name)?;
                Ok((key, Created(Some(kms), Some(sealed))))
            }
        }
    }
}

/// What a create owes once its index exists: its envelope stored, or a stale envelope of a
/// former index of the same name removed.
pub struct Created(Option<Arc<Envelopes>>, Option<Sealed>);

impl Created {
    /// Stores the envelope (or removes a stale one); when that fails the new index is deleted
    /// again, so that no index is left whose key nobody holds (blocking).
    ///
    /// # Errors
    /// The store's error.
    pub fn finish(self, state: &AppState, name: &str, key: &IndexKey) -> Result<(), ApiError> {
        let Created(Some(kms), sealed) = self else {
            return Ok(());
        };
        let done = match sealed {
            Some(sealed) => kms.store(sealed, key),
            None => kms.remove(name),
        };
        if let Err(e) = done {
            state.handles.forget(name);
            let _ = state.handles.db().delete_index(name, key);
            return Err(e);
        }
        Ok(())
    }
}

/// A key service failure as answered: 503 (with `Retry-After`) when it cannot be reached, 502
/// when it answered with a refusal or nonsense. The service's reason goes to the log (it holds
/// no key material); the client is told which kind.
pub fn kms_error(e: Error) -> ApiError {
    match e {
        Error::KeyService { kind, ref message } => {
            tracing::warn!(?kind, reason = %message, "key service failure");
            match kind {
                KeyServiceFailure::Unreachable => ApiError::with_status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key service unreachable: retry later",
                ),
                KeyServiceFailure::Refused => ApiError::with_status(
                    StatusCode::BAD_GATEWAY,
                    "the key service refused the request (see the server log)",
                ),
                _ => ApiError::with_status(
                    StatusCode::BAD_GATEWAY,
                    "the key service answered something that is not a key (see the server log)",
                ),
            }
        }
        other => other.into(),
    }
}

fn tampered(why: &str) -> ApiError {
    tracing::error!(why, "a KMS envelope is refused");
    ApiError::with_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("this index's stored KMS envelope {why}: it was altered or damaged; refused"),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key service in process: XOR with a fixed pad, context appended (enough to tell
    /// contexts and alterations apart; the real services are tested in tests/serve/kms.rs).
    struct ModelKms;

    impl Kms for ModelKms {
        fn generate_key(&self, context: &str) -> ciphervec::Result<(IndexKey, WrappedKey)> {
            let key = IndexKey::generate();
            let wrapped = format!("{}:{}", key.to_base64().as_str(), hex(context.as_bytes()));
            Ok((key, WrappedKey::new(wrapped)?))
        }

        fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> ciphervec::Result<IndexKey> {
            let (key, ctx) = wrapped.as_str().rsplit_once(':').unwrap();
            if ctx != hex(context.as_bytes()) {
                return Err(Error::KeyService {
                    kind: KeyServiceFailure::Refused,
                    message: "context".into(),
                });
            }
            IndexKey::from_base64(key)
        }
    }

    fn envelopes() -> Envelopes {
        let registry = KmsRegistry::from_json(&serde_json::json!({
            "a": {"provider": "aws", "key": "alias/a"},
            "b": {"provider": "aws", "key": "alias/b"},
        }))
        .unwrap();
        let mut clients: HashMap<String, Client> = HashMap::new();
        clients.insert("a".into(), Arc::new(ModelKms));
        clients.insert("b".into(), Arc::new(ModelKms));
        Envelopes::new(
            KmsConfig {
                registry,
                clients,
                store: Arc::new(MemoryStore::new()),
            },
            Duration::from_secs(60),
        )
    }

    #[test]
    fn an_envelope_round_trips_and_any_edit_is_refused() {
        let e = envelopes();
        assert!(e.key_for("docs").unwrap().is_none());
        assert_eq!(
            e.check("zzz").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        let (key, sealed) = e.generate("docs", "a").unwrap();
        e.store(sealed, &key).unwrap();
        e.forget_key("docs");
        assert_eq!(e.key_for("docs").unwrap().unwrap(), key);

        let name = object_name("docs");
        let good = e.store.get(&name).unwrap();
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let edits: Vec<Edit> = vec![
            Box::new(|v| v["kms_name"] = "b".into()),
            Box::new(|v| v["provider"] = "vault".into()),
            Box::new(|v| v["index_name"] = "other".into()),
            Box::new(|v| v["tag"] = "00".repeat(32).into()),
            Box::new(|v| v["format"] = "v0".into()),
            Box::new(|v| {
                let w = v["wrapped_key"].as_str().unwrap().to_owned();
                v["wrapped_key"] = format!("{w}00").into();
            }),
        ];
        for edit in edits {
            let mut value: serde_json::Value = serde_json::from_slice(&good).unwrap();
            edit(&mut value);
            e.store
                .put(&name, &serde_json::to_vec(&value).unwrap())
                .unwrap();
            e.forget_key("docs");
            let error = e.key_for("docs").unwrap_err();
            assert!(
                [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY]
                    .contains(&error.status()),
                "{value}"
            );
        }
        // Another index's envelope copied over this one's is refused too.
        let (other_key, sealed) = e.generate("other", "a").unwrap();
        e.store(sealed, &other_key).unwrap();
        e.store
            .put(&name, &e.store.get(&object_name("other")).unwrap())
            .unwrap();
        e.forget_key("docs");
        assert!(e.key_for("docs").is_err());
        e.remove("docs").unwrap();
        assert!(e.key_for("docs").unwrap().is_none());
    }

    #[test]
    fn key_service_failures_are_typed() {
        let unreachable = Error::KeyService {
            kind: KeyServiceFailure::Unreachable,
            message: "connection refused".into(),
        };
        assert_eq!(
            kms_error(unreachable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let refused = Error::KeyService {
            kind: KeyServiceFailure::Refused,
            message: "AccessDenied".into(),
        };
        assert_eq!(kms_error(refused).status(), StatusCode::BAD_GATEWAY);
    }
}
