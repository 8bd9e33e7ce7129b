//! Commit signatures: Ed25519 (RFC 8032, `ed25519-dalek`) over a domain-separated digest.
//!
//! The signing key exists only where write scope does (the index key's holder and
//! write-scoped grants); every opener holds the verifying key. A signature covers
//! `label || SHA-256(message)`, the label naming what is signed (a manifest, a segment), so
//! that a signature over one can never pass for the other. SHA-256 rather than the SHA3-256
//! used elsewhere: every open hashes each segment it verifies whole, and SHA-256 runs on the
//! CPU's SHA extensions (with the `sha2` crate's runtime detection).

use zeroize::Zeroizing;

use ed25519_dalek::Signer as _;

use crate::error::{Error, Result};

/// Length of a signature.
pub(crate) const SIGNATURE_LEN: usize = 64;
/// Length of a verifying key (and of a signing key's seed).
pub(crate) const PUBLIC_KEY_LEN: usize = 32;

/// What a signature is over: its label, so that no signature of one passes for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signed {
    /// A manifest file (everything before the signature).
    Manifest,
    /// A segment's footer note and the digest of the bytes before its footer.
    Segment,
}

impl Signed {
    fn label(self) -> &'static [u8] {
        match self {
            Signed::Manifest => b"ciphervec/v8/sign/manifest\0",
            Signed::Segment => b"ciphervec/v8/sign/segment\0",
        }
    }
}

/// The message actually signed: the label, then SHA-256 of the parts.
fn message(what: Signed, parts: &[&[u8]]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    let mut out = what.label().to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

/// An Ed25519 signing key: wiped on drop (by `ed25519-dalek`'s `zeroize` feature), printed as
/// nothing.
pub(crate) struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(REDACTED)")
    }
}

impl SigningKey {
    /// A fresh key from the OS random generator.
    pub(crate) fn generate() -> Result<SigningKey> {
        let mut seed = Zeroizing::new([0u8; PUBLIC_KEY_LEN]);
        super::random_bytes(&mut *seed)?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key of a 32-byte seed (RFC 8032's secret key).
    pub(crate) fn from_seed(seed: &[u8; PUBLIC_KEY_LEN]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The seed, to be wrapped for the grants that may sign.
    pub(crate) fn seed(&self) -> Zeroizing<[u8; PUBLIC_KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The verifying key.
    pub(crate) fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `parts` (concatenated) as `what`.
    pub(crate) fn sign(&self, what: Signed, parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(&message(what, parts)).to_bytes()
    }
}

/// An Ed25519 verifying key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// A stored verifying key (`Corrupted` if it is not a point of the curve).
    pub(crate) fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(VerifyingKey)
            .map_err(|_| Error::corrupted("verifying key"))
    }

    /// The key's bytes.
    pub(crate) fn to_bytes(self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Whether `signature` signs `parts` as `what` under this key (strict verification: no
    /// malleable or small-order signatures).
    pub(crate) fn verify(
        &self,
        what: Signed,
        parts: &[&[u8]],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(&message(what, parts), &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_separates_domains() {
        let key = SigningKey::generate().unwrap();
        let vk = key.verifying_key();
        let sig = key.sign(Signed::Manifest, &[b"ab", b"c"]);
        assert!(vk.verify(Signed::Manifest, &[b"abc"], &sig));
        assert!(!vk.verify(Signed::Segment, &[b"abc"], &sig));
        assert!(!vk.verify(Signed::Manifest, &[b"abd"], &sig));
        let other = SigningKey::generate().unwrap().verifying_key();
        assert!(!other.verify(Signed::Manifest, &[b"abc"], &sig));
        let again = SigningKey::from_seed(&key.seed());
        assert_eq!(again.verifying_key(), vk);
        assert_eq!(VerifyingKey::from_bytes(&vk.to_bytes()).unwrap(), vk);
        assert_eq!(format!("{key:?}"), "SigningKey(REDACTED)");
    }
}
