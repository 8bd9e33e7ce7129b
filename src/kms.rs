//! Envelope encryption of index keys through a key management service (KMS).
//!
//! The KMS holds a master key that never leaves it. Once, [`KmsEnvelope::generate`] asks it
//! for a fresh 256-bit key, returned in plaintext (used as the index key) and wrapped by the
//! master key (a [`WrappedKey`], text safe for a config file). At startup the application
//! sends the wrapped key back to be unwrapped: that is what [`KmsEnvelope`] does as a
//! [`KeyProvider`]. The index name is bound to the wrapped key as the KMS's encryption
//! context, so a wrapped key copied to another index's configuration is refused.
//!
//! Clients: `aws::AwsKms` (feature `aws-kms`, AWS KMS `GenerateDataKey` / `Decrypt`),
//! `gcp::GcpKms` (feature `gcp-kms`, Google Cloud KMS `encrypt` / `decrypt`),
//! `azure::AzureKeyVault` (feature `azure-kv`, Azure Key Vault or Managed HSM `wrapKey` /
//! `unwrapKey`) and `vault::VaultTransit` (feature `vault`, HashiCorp Vault or OpenBao
//! transit `datakey` / `decrypt`). Any other KMS plugs in by implementing [`Kms`].
//! [`KmsSettings`] and [`KmsRegistry`] describe a service by name, from the environment or
//! from JSON, and connect it as a `Box<dyn Kms + Send + Sync>`.
//!
//! ```
//! # use ciphervec::{IndexKey, KeyProvider, Result};
//! # use ciphervec::kms::{Kms, KmsEnvelope, WrappedKey};
//! # struct MyKms;
//! # impl Kms for MyKms {
//! #     fn generate_key(&self, _: &str) -> Result<(IndexKey, WrappedKey)> {
//! #         Ok((IndexKey::from_bytes(&[7; 32])?, WrappedKey::new("c2VhbGVk")?))
//! #     }
//! #     fn unwrap_key(&self, _: &WrappedKey, _: &str) -> Result<IndexKey> {
//! #         IndexKey::from_bytes(&[7; 32])
//! #     }
//! # }
//! // Once: generate, keep `wrapped` in the configuration, create the index with `key`.
//! let (provider, key) = KmsEnvelope::generate(MyKms, "docs")?;
//! let wrapped: String = provider.wrapped_key().to_string();
//! // At every start: the configuration's wrapped key, unwrapped by the KMS.
//! let provider = KmsEnvelope::new(MyKms, WrappedKey::new(wrapped)?, "docs");
//! assert_eq!(provider.index_key()?, key);
//! # Ok::<(), ciphervec::Error>(())
//! ```

#[cfg(feature = "aws-kms")]
pub mod aws;
#[cfg(feature = "azure-kv")]
pub mod azure;
#[cfg(feature = "gcp-kms")]
pub mod gcp;
#[cfg(any(feature = "gcp-kms", feature = "azure-kv"))]
mod rest;
mod settings;
#[cfg(feature = "vault")]
pub mod vault;

pub use settings::{KmsProvider, KmsRegistry, KmsSettings};

use std::fmt;

use crate::crypto::key::IndexKey;
use crate::error::{Error, Result};
use crate::provider::KeyProvider;

/// The longest wrapped key accepted (AWS KMS ciphertext blobs are a few hundred bytes).
const MAX_WRAPPED_LEN: usize = 8 * 1024;

/// A key management service that generates and unwraps 256-bit keys bound to a context.
pub trait Kms {
    /// A fresh 256-bit key from the service, in plaintext and wrapped, bound to `context`
    /// (the index name).
    ///
    /// # Errors
    /// [`Error::KeyService`] when the service is unreachable, refuses or answers nonsense.
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)>;

    /// The plaintext of `wrapped`, which must have been generated with the same `context`.
    ///
    /// # Errors
    /// [`Error::KeyService`] with [`crate::error::KeyServiceFailure::Refused`] for a wrong context,
    /// a foreign or altered wrapped key, or missing permission; `Unreachable` and
    /// `BadResponse` as for [`Kms::generate_key`].
    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey>;
}

impl<K: Kms + ?Sized> Kms for Box<K> {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        (**self).generate_key(context)
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        (**self).unwrap_key(wrapped, context)
    }
}

impl<K: Kms + ?Sized> Kms for std::sync::Arc<K> {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        (**self).generate_key(context)
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        (**self).unwrap_key(wrapped, context)
    }
}

/// A key wrapped by a KMS: printable text without whitespace (base64 for AWS KMS and Google
/// Cloud KMS, `azurekv:<version>:...` for Azure Key Vault, `vault:v1:...` for Vault
/// transit), safe to keep in a configuration file. It reveals nothing without the KMS.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(String);

impl WrappedKey {
    /// Checks and wraps the text form of a wrapped key (surrounding whitespace is trimmed).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when it is empty, longer than 8 KiB, or not printable ASCII.
    pub fn new(text: impl Into<String>) -> Result<WrappedKey> {
        let text = text.into();
        let text = text.trim();
        let printable = text.bytes().all(|b| b.is_ascii_graphic());
        if text.is_empty() || text.len() > MAX_WRAPPED_LEN || !printable {
            return Err(Error::InvalidKey);
        }
        Ok(WrappedKey(text.to_owned()))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({} chars)", self.0.len())
    }
}

/// A [`KeyProvider`] that unwraps a stored [`WrappedKey`] through a [`Kms`] at every call,
/// bound to one index name.
pub struct KmsEnvelope<K> {
    kms: K,
    wrapped: WrappedKey,
    index_name: String,
}

impl<K: Kms> KmsEnvelope<K> {
    /// A provider for index `index_name` whose key is `wrapped`.
    pub fn new(kms: K, wrapped: WrappedKey, index_name: &str) -> KmsEnvelope<K> {
        KmsEnvelope {
            kms,
            wrapped,
            index_name: index_name.to_owned(),
        }
    }

    /// Asks the KMS for a new key for index `index_name`: returns the provider (store
    /// [`KmsEnvelope::wrapped_key`] in your configuration) and the plaintext key, to pass to
    /// `Database::create_index` or `Database::rotate_index_key` and then drop.
    ///
    /// # Errors
    /// As [`Kms::generate_key`].
    pub fn generate(kms: K, index_name: &str) -> Result<(KmsEnvelope<K>, IndexKey)> {
        let (key, wrapped) = kms.generate_key(index_name)?;
        Ok((KmsEnvelope::new(kms, wrapped, index_name), key))
    }

    /// The wrapped key to store.
    pub fn wrapped_key(&self) -> &WrappedKey {
        &self.wrapped
    }

    /// The index name bound to the key.
    pub fn index_name(&self) -> &str {
        &self.index_name
    }
}

impl<K: Kms> KeyProvider for KmsEnvelope<K> {
    fn index_key(&self) -> Result<IndexKey> {
        self.kms.unwrap_key(&self.wrapped, &self.index_name)
    }
}

/// The 32 plaintext bytes a service returned, as an index key.
#[cfg_attr(
    not(any(
        feature = "aws-kms",
        feature = "vault",
        feature = "gcp-kms",
        feature = "azure-kv"
    )),
    allow(dead_code)
)]
fn key_from_service(bytes: &[u8]) -> Result<IndexKey> {
    IndexKey::from_bytes(bytes).map_err(|_| {
        Error::key_service(
            crate::error::KeyServiceFailure::BadResponse,
            format!("expected a 32-byte key, got {} bytes", bytes.len()),
        )
    })
}

/// Refuses a key-service address that would send tokens or keys in the clear: `https://`
/// is required, except for a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`: a local test
/// server or a sidecar that terminates TLS).
///
/// # Errors
/// [`Error::InvalidArgument`] for any other scheme or a plain-http remote host.
#[cfg_attr(
    not(any(
        feature = "aws-kms",
        feature = "vault",
        feature = "gcp-kms",
        feature = "azure-kv"
    )),
    allow(dead_code)
)]
pub(crate) fn check_transport(url: &str) -> Result<()> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(Error::invalid_argument(
            "key service address must be https://",
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "key service address must be https:// (plain http only on loopback)",
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "https://vault.example:8200",
            "HTTPS://kms.eu-west-1.amazonaws.com",
            "http://127.0.0.1:8200",
            "http://127.9.9.9",
            "http://localhost:5000/",
            "http://[::1]:8200",
        ] {
            assert!(super::check_transport(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://vault.example:8200",
            "http://10.0.0.5",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "http://user@evil.example/",
            "ftp://127.0.0.1",
            "vault.example:8200",
            "",
        ] {
            assert!(super::check_transport(bad).is_err(), "{bad}");
        }
    }

    use super::*;
    use crate::error::KeyServiceFailure;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// A reference KMS in process: AES-256-GCM under a master key, context as AAD.
    struct ModelKms(Aes256Gcm);

    impl Kms for ModelKms {
        fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
            let key = IndexKey::generate();
            let nonce = [9u8; 12];
            let payload = Payload {
                msg: key.as_bytes(),
                aad: context.as_bytes(),
            };
            let sealed = self.0.encrypt(&Nonce::from(nonce), payload).unwrap();
            Ok((key, WrappedKey::new(STANDARD.encode(sealed))?))
        }

        fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
            let sealed = STANDARD
                .decode(wrapped.as_str())
                .map_err(|_| Error::InvalidKey)?;
            let payload = Payload {
                msg: &sealed,
                aad: context.as_bytes(),
            };
            let plain = self
                .0
                .decrypt(&Nonce::from([9u8; 12]), payload)
                .map_err(|_| Error::key_service(KeyServiceFailure::Refused, "authentication"))?;
            key_from_service(&plain)
        }
    }

    fn model() -> ModelKms {
        ModelKms(Aes256Gcm::new(&[3u8; 32].into()))
    }

    #[test]
    fn envelope_round_trip_and_context_binding() {
        let (provider, key) = KmsEnvelope::generate(model(), "docs").unwrap();
        assert_eq!(provider.index_key().unwrap(), key);
        let text = provider.wrapped_key().to_string();
        let again = KmsEnvelope::new(model(), WrappedKey::new(text.clone()).unwrap(), "docs");
        assert_eq!(again.index_key().unwrap(), key);
        let other = KmsEnvelope::new(model(), WrappedKey::new(text).unwrap(), "other");
        assert!(matches!(
            other.index_key(),
            Err(Error::KeyService {
                kind: KeyServiceFailure::Refused,
                ..
            })
        ));
    }

    #[test]
    fn wrapped_key_text_is_checked() {
        assert!(WrappedKey::new("  vault:v1:abc= \n").is_ok());
        for bad in ["", "   ", "has space", "tab\there", "é"] {
            assert!(
                matches!(WrappedKey::new(bad), Err(Error::InvalidKey)),
                "{bad:?}"
            );
        }
        assert!(WrappedKey::new("a".repeat(MAX_WRAPPED_LEN + 1)).is_err());
        assert_eq!(
            format!("{:?}", WrappedKey::new("secretish").unwrap()),
            "WrappedKey(9 chars)"
        );
    }

    #[test]
    fn service_keys_must_be_32_bytes() {
        assert!(key_from_service(&[1; 32]).is_ok());
        for len in [0, 16, 31, 33] {
            assert!(matches!(
                key_from_service(&vec![1; len]),
                Err(Error::KeyService {
                    kind: KeyServiceFailure::BadResponse,
                    ..
                })
            ));
        }
    }
}
