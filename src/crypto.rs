//! Cryptography: the key schedule, keyed tokens and authenticated encryption.
//!
//! This layer knows bytes and keys only; it knows nothing of vectors, lists or files beyond the
//! opaque 32-byte "place" values that callers bind into associated data.

pub(crate) mod aead;
pub(crate) mod hkdf;
#[cfg(test)]
mod kat;
pub(crate) mod key;
pub(crate) mod mac;
pub(crate) mod schedule;
pub(crate) mod sign;

use rand::TryRng as _;

use crate::error::{Error, Result};

/// Length of the per-index random id, bound into every label the key schedule derives and
/// every AAD the records are sealed under.
pub(crate) const INDEX_ID_LEN: usize = 16;

/// Fills `out` from the operating system's random number generator.
pub(crate) fn random_bytes(out: &mut [u8]) -> Result<()> {
    rand::rngs::SysRng
        .try_fill_bytes(out)
        .map_err(|e| Error::Io(std::io::Error::other(format!("OS random generator: {e}"))))
}

/// Constant-time equality of two byte strings of equal length (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// SHA3-256 of `data`, for content digests (not keyed).
pub(crate) fn digest(data: &[u8]) -> [u8; 32] {
    use sha3::Digest as _;
    sha3::Sha3_256::digest(data).into()
}
