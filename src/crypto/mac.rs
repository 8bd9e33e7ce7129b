//! HMAC-SHA3-256 that wipes its key material.
//!
//! `hmac::SimpleHmac<Sha3_256>` computes the same function but keeps its padded key in a field
//! that is never wiped. This is RFC 2104 over `sha3::Sha3_256` (whose state wipes itself with the
//! `zeroize` feature), with both padded keys absorbed once into states that are cloned per
//! MAC. Tests hold it equal to `SimpleHmac` and to the Wycheproof HMAC-SHA3-256 vectors.

use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

/// SHA3-256's block size (its rate) in bytes.
const BLOCK: usize = 136;
/// Output length of HMAC-SHA3-256.
pub(crate) const MAC_LEN: usize = 32;

/// A keyed HMAC-SHA3-256 instance that can compute many MACs.
#[derive(Clone)]
pub(crate) struct HmacSha3 {
    /// The hash state after absorbing `key ^ ipad`.
    inner: Sha3_256,
    /// The hash state after absorbing `key ^ opad`: kept absorbed, as `inner` is, so that a
    /// MAC costs two Keccak permutations for a short message instead of three.
    outer: Sha3_256,
}

/// Both fields wipe themselves on drop (`Sha3_256` with the `zeroize` feature), so the whole
/// instance does.
impl zeroize::ZeroizeOnDrop for HmacSha3 {}

impl HmacSha3 {
    /// Keys an instance; any key length is allowed (long keys are hashed first, per RFC 2104).
    pub(crate) fn new(key: &[u8]) -> HmacSha3 {
        let mut block = Zeroizing::new([0u8; BLOCK]);
        if key.len() > BLOCK {
            let hashed = Zeroizing::new(<[u8; 32]>::from(Sha3_256::digest(key)));
            block[..hashed.len()].copy_from_slice(&*hashed);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner_key = Zeroizing::new([0u8; BLOCK]);
        let mut outer_key = Zeroizing::new([0u8; BLOCK]);
        for i in 0..BLOCK {
            inner_key[i] = block[i] ^ 0x36;
            outer_key[i] = block[i] ^ 0x5c;
        }
        let mut inner = Sha3_256::new();
        inner.update(&inner_key[..]);
        let mut outer = Sha3_256::new();
        outer.update(&outer_key[..]);
        HmacSha3 { inner, outer }
    }

    /// The MAC of the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let inner_hash = Zeroizing::new(<[u8; 32]>::from(inner.finalize()));
        let mut outer = self.outer.clone();
        outer.update(&inner_hash[..]);
        outer.finalize().into()
    }

    /// Checks `tag` against the MAC of `parts` in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        super::ct_eq(&self.mac(parts), tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit, Mac};

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = <hmac::SimpleHmac<Sha3_256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn equals_simple_hmac_for_all_key_lengths() {
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for key_len in [0usize, 1, 31, 32, 135, 136, 137, 300] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 13 + 5) as u8).collect();
            for msg_len in [0usize, 1, 135, 136, 137, 300] {
                let ours = HmacSha3::new(&key).mac(&[&msg[..msg_len]]);
                assert_eq!(
                    ours,
                    reference(&key, &msg[..msg_len]),
                    "key {key_len} msg {msg_len}"
                );
            }
        }
    }

    #[test]
    fn parts_are_concatenated() {
        let h = HmacSha3::new(b"k");
        assert_eq!(h.mac(&[b"ab", b"cd"]), h.mac(&[b"abcd"]));
        assert!(h.verify(&[b"abcd"], &h.mac(&[b"a", b"bcd"])));
        assert!(!h.verify(&[b"abce"], &h.mac(&[b"abcd"])));
    }
}
