//! Key providers: where an application's index key comes from.

use std::path::{Path, PathBuf};

use crate::crypto::key::{IndexKey, KeyFileCheck, read_key_file};
use crate::error::{Error, Result};

/// A source of an index key: a static key, a key file, an environment variable, or a KMS.
///
/// ```
/// use ciphervec::{Database, IndexConfig, IndexKey, KeyProvider, StaticKey};
/// let provider = StaticKey::new(IndexKey::generate());
/// let db = Database::in_memory();
/// db.create_index("docs", &provider.index_key().unwrap(), IndexConfig::ivf_flat(8)).unwrap();
/// assert!(db.open_index_with("docs", &provider).is_ok());
/// ```
pub trait KeyProvider {
    /// The index key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for malformed key material, or the provider's own failure.
    fn index_key(&self) -> Result<IndexKey>;
}

/// A key held in memory (tests, or keys obtained elsewhere).
#[derive(Clone, Debug)]
pub struct StaticKey(IndexKey);

impl StaticKey {
    /// A provider that always returns `key`.
    pub fn new(key: IndexKey) -> StaticKey {
        StaticKey(key)
    }
}

impl KeyProvider for StaticKey {
    fn index_key(&self) -> Result<IndexKey> {
        Ok(self.0.clone())
    }
}

/// A base64 key file, as written by `openssl rand -base64 32 > index_key.txt`. On Unix the
/// file is opened once, without following a symbolic link, and refused unless it is a small
/// regular file that only its owner, this process's user, may access; then it is read from
/// that same handle. [`allow_shared_permissions`](Self::allow_shared_permissions) lifts the
/// link, owner and mode checks (for mounted secrets, which are links).
#[derive(Clone, Debug)]
pub struct KeyFile {
    path: PathBuf,
    allow_shared: bool,
}

impl KeyFile {
    /// A provider reading `path` at every call.
    pub fn new(path: impl AsRef<Path>) -> KeyFile {
        KeyFile {
            path: path.as_ref().to_path_buf(),
            allow_shared: false,
        }
    }

    /// Accepts a file that group or others may access (not recommended).
    pub fn allow_shared_permissions(mut self) -> KeyFile {
        self.allow_shared = true;
        self
    }
}

impl KeyProvider for KeyFile {
    fn index_key(&self) -> Result<IndexKey> {
        let check = if self.allow_shared {
            KeyFileCheck::Follow
        } else {
            KeyFileCheck::Private
        };
        let text = read_key_file(&self.path, check)?;
        let text = std::str::from_utf8(&text).map_err(|_| Error::InvalidKey)?;
        IndexKey::from_base64(text)
    }
}

/// An environment variable holding the key as base64 or as 64 hex digits.
#[derive(Clone, Debug)]
pub struct EnvKey {
    var: String,
}

impl EnvKey {
    /// A provider reading variable `var` at every call.
    pub fn new(var: impl Into<String>) -> EnvKey {
        EnvKey { var: var.into() }
    }
}

impl KeyProvider for EnvKey {
    fn index_key(&self) -> Result<IndexKey> {
        let value = zeroize::Zeroizing::new(
            std::env::var(&self.var)
                .map_err(|_| Error::invalid_argument("key environment variable is not set"))?,
        );
        key_from_text(&value)
    }
}

/// A key written as 64 hex digits or as base64.
fn key_from_text(text: &str) -> Result<IndexKey> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        IndexKey::from_hex(text)
    } else {
        IndexKey::from_base64(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_text_in_either_form() {
        let key = IndexKey::from_bytes(&[0xA5; 32]).unwrap();
        assert_eq!(key_from_text(&"a5".repeat(32)).unwrap(), key);
        assert_eq!(
            key_from_text(&format!("{}\n", key.to_base64().as_str())).unwrap(),
            key
        );
        assert!(matches!(key_from_text("zz"), Err(Error::InvalidKey)));
    }
}
