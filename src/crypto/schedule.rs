//! The key schedule: one enum of purposes, one `match` of labels, and the derivations.
//!
//! ```text
//! index_key --HKDF(salt, label(KeyCheck, id))--> key-check value (stored in the header)
//! index_key --HKDF(salt, label(KeyWrap, id))---> wrapping key --AES-GCM--> wrapped data key
//! data key  --HKDF(salt, label(P, id, gen))----> one sub-key per purpose P
//! ```
//! See `docs/KEY_SCHEDULE.md` for why each purpose exists.

use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::{Binding, Sealer};
use super::hkdf;
use super::key::IndexKey;
use super::mac::HmacSha3;
use super::sign::{SigningKey, VerifyingKey};
use crate::error::{Error, Result};

/// Length of the per-index random salt.
pub(crate) const SALT_LEN: usize = 32;
pub(crate) use super::INDEX_ID_LEN;
/// Length of the key-check value.
pub(crate) const KEY_CHECK_LEN: usize = 32;
/// Length of a wrapped data key: generation (4) + nonce (12) + key (32) + tag (16).
pub(crate) const WRAPPED_KEY_LEN: usize = super::aead::OVERHEAD + 32;

/// Every purpose a key is derived for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Purpose {
    /// From the index key: the value that tells a wrong key before any decryption.
    KeyCheck,
    /// From the index key: the AES-256-GCM key that wraps the data key.
    KeyWrap,
    /// From the data key: HMAC key turning item ids into item tokens.
    ItemToken,
    /// From the data key: HMAC key for list labels (salted centroid hashes), bound into AAD.
    ListLabel,
    /// From the data key: HMAC key for query tokens, the storage addresses of list blocks.
    QueryToken,
    /// From the data key: AES-256-GCM key for vectors and centroids.
    Payload,
    /// From the data key: AES-256-GCM key for ids, contents and metadata.
    Content,
    /// From the data key: AES-256-GCM key for the manifest body.
    Manifest,
    /// From the data key: HMAC key authenticating the whole manifest file.
    ManifestMac,
    /// From a user key: the AES-256-GCM key that seals that user's grant.
    GrantKey,
    /// From a user key: HMAC key turning the user name into the token naming its grant.
    GrantToken,
    /// From the roster key: the AES-256-GCM key that seals the roster of users.
    Roster,
}

impl Purpose {
    /// Every purpose, for tests and documentation.
    #[cfg(test)]
    pub(crate) const ALL: [Purpose; 12] = [
        Purpose::KeyCheck,
        Purpose::KeyWrap,
        Purpose::ItemToken,
        Purpose::ListLabel,
        Purpose::QueryToken,
        Purpose::Payload,
        Purpose::Content,
        Purpose::Manifest,
        Purpose::ManifestMac,
        Purpose::GrantKey,
        Purpose::GrantToken,
        Purpose::Roster,
    ];

    /// The fixed, versioned label of this purpose.
    pub(crate) fn label(self) -> &'static [u8] {
        match self {
            Purpose::KeyCheck => b"ciphervec/v1/key-check",
            Purpose::KeyWrap => b"ciphervec/v1/key-wrap",
            Purpose::ItemToken => b"ciphervec/v1/item-token",
            Purpose::ListLabel => b"ciphervec/v1/list-label",
            Purpose::QueryToken => b"ciphervec/v1/query-token",
            Purpose::Payload => b"ciphervec/v1/payload",
            Purpose::Content => b"ciphervec/v1/content",
            Purpose::Manifest => b"ciphervec/v1/manifest",
            Purpose::ManifestMac => b"ciphervec/v1/manifest-mac",
            Purpose::GrantKey => b"ciphervec/v1/grant-key",
            Purpose::GrantToken => b"ciphervec/v1/grant-token",
            Purpose::Roster => b"ciphervec/v1/roster",
        }
    }
}

/// HKDF `info` for a purpose: `u16 len || label || u16 len || index id || u32 generation`,
/// all little-endian, so that no two (label, id, generation) triples share an encoding.
pub(crate) fn info(purpose: Purpose, index_id: &[u8; INDEX_ID_LEN], generation: u32) -> Vec<u8> {
    let label = purpose.label();
    let mut out = Vec::with_capacity(2 + label.len() + 2 + INDEX_ID_LEN + 4);
    out.extend_from_slice(&(label.len() as u16).to_le_bytes());
    out.extend_from_slice(label);
    out.extend_from_slice(&(INDEX_ID_LEN as u16).to_le_bytes());
    out.extend_from_slice(index_id);
    out.extend_from_slice(&generation.to_le_bytes());
    out
}

/// Public, per-index parameters of the schedule (stored in the clear in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexParams {
    /// Random salt for every HKDF-Extract of this index.
    pub salt: [u8; SALT_LEN],
    /// Random id of this index, bound into every label and every AAD.
    pub index_id: [u8; INDEX_ID_LEN],
}

impl IndexParams {
    /// Fresh random parameters for a new index.
    pub(crate) fn generate() -> Result<IndexParams> {
        let mut salt = [0u8; SALT_LEN];
        let mut index_id = [0u8; INDEX_ID_LEN];
        super::random_bytes(&mut salt)?;
        super::random_bytes(&mut index_id)?;
        Ok(IndexParams { salt, index_id })
    }

    fn derive(&self, ikm: &[u8], purpose: Purpose, generation: u32) -> Zeroizing<[u8; 32]> {
        hkdf::derive32(&self.salt, ikm, &info(purpose, &self.index_id, generation))
    }

    /// The key-check value of `key` for this index.
    pub(crate) fn key_check(&self, key: &IndexKey) -> [u8; KEY_CHECK_LEN] {
        *self.derive(key.as_bytes(), Purpose::KeyCheck, 0)
    }

    /// Whether `key` matches a stored key-check value (constant time).
    pub(crate) fn check_key(&self, key: &IndexKey, stored: &[u8; KEY_CHECK_LEN]) -> bool {
        super::ct_eq(&self.key_check(key), stored)
    }

    fn wrapping_sealer(&self, key: &IndexKey) -> Sealer {
        let wrap_key = self.derive(key.as_bytes(), Purpose::KeyWrap, 0);
        Sealer::fixed(&wrap_key, self.index_id)
    }

    /// The key wrapper of `key` for this index (holds the derived wrapping key, not `key`).
    pub(crate) fn key_wrapper(&self, key: &IndexKey) -> KeyWrapper {
        let raw = self.derive(key.as_bytes(), Purpose::KeyWrap, 0);
        KeyWrapper::from_raw(&raw, self.index_id)
    }

    /// What `user_key` derives for `user` in this index: its grant key and grant token.
    pub(crate) fn user_keys(&self, user_key: &IndexKey, user: &str) -> UserKeys {
        let grant_key = self.derive(user_key.as_bytes(), Purpose::GrantKey, 0);
        let token_key = self.derive(user_key.as_bytes(), Purpose::GrantToken, 0);
        UserKeys {
            token: HmacSha3::new(&*token_key).mac(&[user.as_bytes()]),
            grant_key,
        }
    }

    /// The sealer of a grant under its (raw) grant key.
    pub(crate) fn grant_sealer(&self, grant_key: &[u8; 32]) -> Sealer {
        Sealer::fixed(grant_key, self.index_id)
    }

    /// The sealer of the roster under the roster key.
    pub(crate) fn roster_sealer(&self, roster_key: &[u8; 32]) -> Sealer {
        Sealer::fixed(&self.derive(roster_key, Purpose::Roster, 0), self.index_id)
    }

    /// Wraps `dek` under `key` (AES-256-GCM, bound to this index id and `binding`).
    #[cfg(test)]
    pub(crate) fn wrap(
        &self,
        key: &IndexKey,
        dek: &DataKey,
        binding: &Binding,
    ) -> Result<[u8; WRAPPED_KEY_LEN]> {
        self.key_wrapper(key).wrap(dek, binding)
    }

    /// Checks `key` against the key-check value, then unwraps the data key (wrapped under
    /// `binding`).
    ///
    /// # Errors
    /// [`Error::WrongKey`] if the key-check value does not match; [`Error::Corrupted`] if it
    /// matches but the wrapped key fails authentication.
    pub(crate) fn unwrap(
        &self,
        key: &IndexKey,
        key_check: &[u8; KEY_CHECK_LEN],
        wrapped: &[u8; WRAPPED_KEY_LEN],
        binding: &Binding,
    ) -> Result<DataKey> {
        if !self.check_key(key, key_check) {
            return Err(Error::WrongKey);
        }
        let plain = Zeroizing::new(
            self.wrapping_sealer(key)
                .open(wrapped, binding)
                .map_err(|_| Error::corrupted("wrapped data key"))?,
        );
        DataKey::from_slice(&plain)
    }
}

/// Wraps data keys under the key-wrap sub-key of an index key, so that an open index can
/// rotate its data key without holding the index key itself.
pub(crate) struct KeyWrapper(Sealer, Zeroizing<[u8; 32]>);

impl KeyWrapper {
    /// The wrapper of a raw key-wrap sub-key (what an admin grant carries).
    pub(crate) fn from_raw(raw: &[u8; 32], index_id: [u8; INDEX_ID_LEN]) -> KeyWrapper {
        KeyWrapper(Sealer::fixed(raw, index_id), Zeroizing::new(*raw))
    }

    /// The raw key-wrap sub-key, to be sealed into admin grants.
    pub(crate) fn raw(&self) -> &[u8; 32] {
        &self.1
    }

    /// Seals a secret of the index key's holder (the access section's owner secrets).
    pub(crate) fn seal(&self, plain: &[u8], binding: &Binding) -> Result<Vec<u8>> {
        self.0.seal(plain, binding)
    }

    /// Opens what [`seal`](Self::seal) sealed (`Corrupted` naming `what` if it fails).
    pub(crate) fn open(
        &self,
        sealed: &[u8],
        binding: &Binding,
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.0
            .open(sealed, binding)
            .map(Zeroizing::new)
            .map_err(|_| Error::corrupted(what))
    }

    /// Wraps `dek` (AES-256-GCM, bound to the index id and `binding`).
    pub(crate) fn wrap(&self, dek: &DataKey, binding: &Binding) -> Result<[u8; WRAPPED_KEY_LEN]> {
        let sealed = self.0.seal(&dek.bytes, binding)?;
        sealed
            .try_into()
            .map_err(|_| Error::corrupted("wrapped key length"))
    }

    /// Opens a data key wrapped under the same index key (one that a data-key rotation in
    /// another process put in the manifest).
    pub(crate) fn unwrap(
        &self,
        wrapped: &[u8; WRAPPED_KEY_LEN],
        binding: &Binding,
    ) -> Result<DataKey> {
        let plain = Zeroizing::new(
            self.0
                .open(wrapped, binding)
                .map_err(|_| Error::corrupted("wrapped data key"))?,
        );
        DataKey::from_slice(&plain)
    }
}

/// The random per-index data key, from which every working key derives.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct DataKey {
    bytes: [u8; 32],
}

impl DataKey {
    /// A fresh data key from the OS random generator.
    pub(crate) fn generate() -> Result<DataKey> {
        let mut bytes = [0u8; 32];
        super::random_bytes(&mut bytes)?;
        Ok(DataKey { bytes })
    }

    /// The raw key bytes, for derivations only.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A data key from its bytes (a grant's).
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<DataKey> {
        let bytes = bytes
            .try_into()
            .map_err(|_| Error::corrupted("wrapped data key length"))?;
        Ok(DataKey { bytes })
    }
}

/// What a user key derives for one user of one index.
pub(crate) struct UserKeys {
    /// The token naming the user's grant.
    pub token: [u8; 32],
    /// The key sealing the user's grant.
    pub grant_key: Zeroizing<[u8; 32]>,
}

/// The commit keys and access secrets of an index with access control, as one opener holds
/// them.
pub(crate) struct AccessKeys {
    /// The scope, as the facade stores it (a plain number here).
    pub scope: u8,
    /// Verifies every commit.
    pub verifier: VerifyingKey,
    /// Signs commits (write scope and the index key's holder).
    pub signer: Option<SigningKey>,
    /// Opens the roster (admin scope and the index key's holder).
    pub roster_key: Option<Zeroizing<[u8; 32]>>,
}

/// Every working key of one open index.
pub(crate) struct Keys {
    /// Item id -> item token.
    pub item_token: HmacSha3,
    /// (epoch, list number) -> list label.
    pub list_label: HmacSha3,
    /// (epoch, list number) -> query token (storage address of the list's blocks).
    pub query_token: HmacSha3,
    /// Seals vectors and centroids.
    pub payload: Sealer,
    /// Seals ids, contents and metadata.
    pub content: Sealer,
    /// Seals the manifest body.
    pub manifest: Sealer,
    /// Authenticates the whole manifest file.
    pub manifest_mac: HmacSha3,
    /// Wraps a new data key under the same index key (for data-key rotation), when known.
    pub wrapper: Option<Arc<KeyWrapper>>,
    /// The user key's derivations, when the index was opened as a granted user (they open
    /// the user's grant again when the access section changes).
    pub user: Option<Arc<UserKeys>>,
    /// The signing and verifying keys of an index with access control.
    pub access: Option<Arc<AccessKeys>>,
    /// The format version records are bound under with these keys (the index's, a plain
    /// number the facade chooses: this layer only carries it to the bindings).
    pub format: u16,
}

impl Keys {
    /// Derives every working key from the data key; AEAD keys start at `generation`;
    /// records are bound under format `format`.
    pub(crate) fn derive(params: IndexParams, dek: &DataKey, generation: u32, format: u16) -> Keys {
        let hmac = |p: Purpose| HmacSha3::new(&*params.derive(&dek.bytes, p, 0));
        let sealer = |p: Purpose| derived_sealer(params, dek.clone(), p, generation);
        Keys {
            item_token: hmac(Purpose::ItemToken),
            list_label: hmac(Purpose::ListLabel),
            query_token: hmac(Purpose::QueryToken),
            payload: sealer(Purpose::Payload),
            content: sealer(Purpose::Content),
            manifest: sealer(Purpose::Manifest),
            manifest_mac: hmac(Purpose::ManifestMac),
            wrapper: None,
            user: None,
            access: None,
            format,
        }
    }

    /// The same keys, able to wrap new data keys with `wrapper`.
    pub(crate) fn with_wrapper(mut self, wrapper: Arc<KeyWrapper>) -> Keys {
        self.wrapper = Some(wrapper);
        self
    }

    /// The item token of an id.
    pub(crate) fn item_token(&self, id: &str) -> [u8; 32] {
        self.item_token.mac(&[id.as_bytes()])
    }

    /// The label of list `list` in epoch `epoch`.
    pub(crate) fn list_label(&self, epoch: u64, list: u32) -> [u8; 32] {
        self.list_label
            .mac(&[&epoch.to_le_bytes(), &list.to_le_bytes()])
    }

    /// The query token (storage address) of list `list` in epoch `epoch`.
    pub(crate) fn query_token(&self, epoch: u64, list: u32) -> [u8; 32] {
        self.query_token
            .mac(&[&epoch.to_le_bytes(), &list.to_le_bytes()])
    }

    /// The generation new writers should start at after everything sealed so far.
    pub(crate) fn next_generation(&self) -> u32 {
        [&self.payload, &self.content, &self.manifest]
            .iter()
            .map(|s| s.generation())
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }
}

/// Derives the raw sub-key of a purpose; for the golden-value tests only.
#[cfg(test)]
pub(crate) fn raw_subkey(
    params: &IndexParams,
    ikm: &[u8],
    purpose: Purpose,
    generation: u32,
) -> Zeroizing<[u8; 32]> {
    params.derive(ikm, purpose, generation)
}

/// A sealer whose keys derive from `dek` for `purpose`, starting at `generation`: the sealer
/// derives each later generation's key when its use cap moves it there.
pub(crate) fn derived_sealer(
    params: IndexParams,
    dek: DataKey,
    purpose: Purpose,
    generation: u32,
) -> Sealer {
    Sealer::derived(params.index_id, generation, move |g| {
        params.derive(dek.as_bytes(), purpose, g)
    })
}

/// A data key from raw bytes; for golden-value tests only.
#[cfg(test)]
pub(crate) fn data_key_from(bytes: [u8; 32]) -> DataKey {
    DataKey { bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> IndexParams {
        IndexParams {
            salt: [7u8; SALT_LEN],
            index_id: [9u8; INDEX_ID_LEN],
        }
    }

    #[test]
    fn labels_are_distinct_and_versioned() {
        let mut seen = std::collections::HashSet::new();
        for p in Purpose::ALL {
            assert!(p.label().starts_with(b"ciphervec/v1/"));
            assert!(seen.insert(p.label()));
        }
    }

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let params = params();
        let key = IndexKey::generate();
        let dek = DataKey::generate().unwrap();
        let binding = Binding::whole(4, 1);
        let wrapped = params.wrap(&key, &dek, &binding).unwrap();
        let check = params.key_check(&key);
        let back = params.unwrap(&key, &check, &wrapped, &binding).unwrap();
        assert_eq!(back.bytes, dek.bytes);
        let other = IndexKey::generate();
        assert!(matches!(
            params.unwrap(&other, &check, &wrapped, &binding),
            Err(Error::WrongKey)
        ));
        assert!(matches!(
            params.unwrap(&key, &check, &wrapped, &Binding::whole(4, 2)),
            Err(Error::Corrupted { .. })
        ));
    }

    #[test]
    fn tokens_differ_by_purpose_and_epoch() {
        let keys = Keys::derive(params(), &data_key_from([1; 32]), 0, 0);
        assert_ne!(keys.list_label(0, 0), keys.query_token(0, 0));
        assert_ne!(keys.list_label(0, 0), keys.list_label(1, 0));
        assert_ne!(keys.list_label(0, 0), keys.list_label(0, 1));
        assert_eq!(keys.item_token("a"), keys.item_token("a"));
        assert_ne!(keys.item_token("a"), keys.item_token("b"));
    }
}
