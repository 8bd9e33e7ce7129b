//! AES-256-GCM records: random 96-bit nonces, a hard use cap per key, and associated data that
//! binds every ciphertext to its format version, kind, index, key generation and place.
//!
//! A sealed record is `generation u32 LE || nonce [12] || ciphertext || tag [16]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use zeroize::Zeroizing;

use super::INDEX_ID_LEN;
use crate::error::{Error, Result};

/// Bytes a sealed record adds to its plaintext.
pub(crate) const OVERHEAD: usize = 4 + NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Encryptions allowed under one key before the next generation is derived. NIST SP 800-38D
/// bounds random-nonce GCM at 2^32 invocations per key.
pub(crate) const MAX_USES_PER_KEY: u64 = 1 << 32;

/// The plaintext length of a sealed record of `sealed_len` bytes (`None` if it is too short to
/// be one).
pub(crate) fn plaintext_len(sealed_len: usize) -> Option<usize> {
    sealed_len.checked_sub(OVERHEAD)
}

/// Length of the fixed-width associated data.
pub(crate) const AAD_LEN: usize = 2 + 1 + INDEX_ID_LEN + 4 + 8 + 8 + 32 + 32;

/// Where a record belongs: bound into its associated data together with the index id.
///
/// The format version and record kind are plain values chosen by the caller (the facade
/// takes them from `format`): this layer binds them without knowing what they mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The format version the record is written in.
    pub version: u16,
    /// The record's kind.
    pub kind: u8,
    /// The segment (or manifest epoch) the record lives in.
    pub segment: u64,
    /// Where the record starts in its segment (zero for records with a place of their own:
    /// manifest, wrapped key, segment directory and footer), so that a record cannot be
    /// moved within its segment.
    pub offset: u64,
    /// The list label, or zeros.
    pub list: [u8; 32],
    /// The item token, or zeros.
    pub item: [u8; 32],
}

impl Binding {
    #[cfg(any(test, feature = "internals"))]
    /// A binding with no segment, list or item.
    pub(crate) fn whole(version: u16, kind: u8) -> Binding {
        Binding {
            version,
            kind,
            segment: 0,
            offset: 0,
            list: [0; 32],
            item: [0; 32],
        }
    }

    /// The same binding for a record starting at `offset` of its segment.
    pub(crate) fn at(self, offset: u64) -> Binding {
        Binding { offset, ..self }
    }

    /// Fixed-width associated data: version, kind, index id, generation, segment, offset,
    /// list, item.
    pub(crate) fn aad(&self, index_id: &[u8; INDEX_ID_LEN], generation: u32) -> [u8; AAD_LEN] {
        let mut out = [0u8; AAD_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.version.to_le_bytes());
        put(&[self.kind]);
        put(index_id);
        put(&generation.to_le_bytes());
        put(&self.segment.to_le_bytes());
        put(&self.offset.to_le_bytes());
        put(&self.list);
        put(&self.item);
        out
    }
}

/// Authentication failed: deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthError;

/// The key of a generation: the key schedule's derivation for one purpose, which this layer
/// calls when the use cap moves it to a new generation without knowing where keys come from.
type Derive = Box<dyn Fn(u32) -> Zeroizing<[u8; 32]> + Send + Sync>;

enum KeySource {
    /// One key, no further generations (the key-wrapping key).
    Fixed,
    /// A key per generation.
    Derived(Derive),
}

struct Current {
    generation: u32,
    uses: u64,
    cipher: Arc<Aes256Gcm>,
}

/// A sealed record taken apart for opening.
struct Opening<'r> {
    generation: u32,
    nonce: [u8; NONCE_LEN],
    aad: [u8; AAD_LEN],
    /// `ciphertext || tag`.
    sealed: &'r [u8],
}

/// Seals and opens records for one key purpose.
pub(crate) struct Sealer {
    source: KeySource,
    index_id: [u8; INDEX_ID_LEN],
    cap: u64,
    current: Mutex<Current>,
    /// The generation the sealer started at and its cipher, which opens nearly every record
    /// (a key serves 2^32 seals): reached without the lock, the map lookup and the reference
    /// count of `openers`, which were a fifth of opening a 64-byte record (~45 ns).
    first: (u32, Arc<Aes256Gcm>),
    openers: RwLock<HashMap<u32, Arc<Aes256Gcm>>>,
}

impl Sealer {
    /// A sealer over one fixed key.
    pub(crate) fn fixed(key: &[u8; 32], index_id: [u8; INDEX_ID_LEN]) -> Sealer {
        let cipher = Arc::new(cipher_from(key));
        Sealer::new(KeySource::Fixed, index_id, 0, cipher)
    }

    /// A sealer whose key of each generation is `derive(generation)`, starting at
    /// `generation` (the key schedule's `derived_sealer` gives it a purpose's derivation).
    pub(crate) fn derived(
        index_id: [u8; INDEX_ID_LEN],
        generation: u32,
        derive: impl Fn(u32) -> Zeroizing<[u8; 32]> + Send + Sync + 'static,
    ) -> Sealer {
        let cipher = Arc::new(cipher_from(&derive(generation)));
        Sealer::new(
            KeySource::Derived(Box::new(derive)),
            index_id,
            generation,
            cipher,
        )
    }

    fn new(
        source: KeySource,
        index_id: [u8; INDEX_ID_LEN],
        generation: u32,
        cipher: Arc<Aes256Gcm>,
    ) -> Sealer {
        let openers = HashMap::from([(generation, cipher.clone())]);
        Sealer {
            source,
            index_id,
            cap: MAX_USES_PER_KEY,
            current: Mutex::new(Current {
                generation,
                uses: 0,
                cipher: cipher.clone(),
            }),
            first: (generation, cipher),
            openers: RwLock::new(openers),
        }
    }

    /// Lowers the use cap, so that tests can exercise the move to a fresh key.
    #[cfg(test)]
    pub(crate) fn with_cap(mut self, cap: u64) -> Sealer {
        self.cap = cap;
        self
    }

    /// The generation new records are sealed under.
    pub(crate) fn generation(&self) -> u32 {
        lock(&self.current).generation
    }

    /// Seals `plaintext` for `binding`.
    ///
    /// # Errors
    /// [`Error::KeyExhausted`] if the cap is reached and no further key can be derived;
    /// [`Error::Io`] if the OS random generator fails.
    pub(crate) fn seal(&self, plaintext: &[u8], binding: &Binding) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        self.seal_with(&mut out, binding, |o| o.extend_from_slice(plaintext))?;
        Ok(out)
    }

    /// As [`seal`](Self::seal), appending the record to `out`: `write` appends the plaintext
    /// to `out`, which is then encrypted where it lies (a large record is written once, not
    /// copied from buffer to buffer). Returns the record's length. On an error `out` is
    /// truncated back to its length before the call.
    ///
    /// # Errors
    /// As [`seal`](Self::seal).
    pub(crate) fn seal_with(
        &self,
        out: &mut Vec<u8>,
        binding: &Binding,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<usize> {
        let (generation, cipher) = self.reserve()?;
        let mut nonce = [0u8; NONCE_LEN];
        super::random_bytes(&mut nonce)?;
        let aad = binding.aad(&self.index_id, generation);
        let start = out.len();
        out.extend_from_slice(&generation.to_le_bytes());
        out.extend_from_slice(&nonce);
        let body = out.len();
        write(out);
        match gcm_seal_in_place(&cipher, &nonce, &aad, &mut out[body..]) {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(out.len() - start)
    }

    /// Verifies and decrypts a sealed record into a fresh buffer (the input, which may be a
    /// mapped file, is copied before it is authenticated, so it cannot change in between).
    pub(crate) fn open(
        &self,
        record: &[u8],
        binding: &Binding,
    ) -> std::result::Result<Vec<u8>, AuthError> {
        let mut plain = Vec::new();
        self.open_into(record, binding, &mut plain)?;
        Ok(plain)
    }

    /// As [`open`](Self::open), into `plain` (its length becomes the plaintext's; on failure
    /// its contents are unspecified and must not be used), so that a hot path can reuse one
    /// buffer.
    pub(crate) fn open_into(
        &self,
        record: &[u8],
        binding: &Binding,
        plain: &mut Vec<u8>,
    ) -> std::result::Result<(), AuthError> {
        let o = self.opening(record, binding)?;
        self.with_opener(o.generation, |cipher| {
            gcm_open_into(cipher, &o.nonce, &o.aad, o.sealed, plain)
        })
    }

    /// As [`open_into`](Self::open_into), into the front of a caller's buffer: the first
    /// [`plaintext_len`] bytes of `out` receive the plaintext (and nothing else is written,
    /// so on failure they hold what they held), so that a caller can decrypt straight into
    /// the memory that keeps the result instead of converting from a byte buffer. Returns
    /// the plaintext's length.
    pub(crate) fn open_into_slice(
        &self,
        record: &[u8],
        binding: &Binding,
        out: &mut [u8],
    ) -> std::result::Result<usize, AuthError> {
        let o = self.opening(record, binding)?;
        let (body, tag) = split_tag(o.sealed)?;
        let buf = out.get_mut(..body.len()).ok_or(AuthError)?;
        self.with_opener(o.generation, |cipher| {
            gcm_decrypt(cipher, &o.nonce, &o.aad, body, buf, &tag)
        })?;
        Ok(body.len())
    }

    /// What opening `record` needs: its generation, its nonce, the associated data of
    /// `binding`, and `ciphertext || tag`.
    fn opening<'r>(
        &self,
        record: &'r [u8],
        binding: &Binding,
    ) -> std::result::Result<Opening<'r>, AuthError> {
        if record.len() < OVERHEAD {
            return Err(AuthError);
        }
        let generation = u32::from_le_bytes(record[..4].try_into().map_err(|_| AuthError)?);
        Ok(Opening {
            generation,
            nonce: record[4..4 + NONCE_LEN].try_into().map_err(|_| AuthError)?,
            aad: binding.aad(&self.index_id, generation),
            sealed: &record[4 + NONCE_LEN..],
        })
    }

    /// Counts one use of the current key, moving to the next generation at the cap.
    fn reserve(&self) -> Result<(u32, Arc<Aes256Gcm>)> {
        let mut current = lock(&self.current);
        if current.uses >= self.cap {
            let next = current
                .generation
                .checked_add(1)
                .ok_or(Error::KeyExhausted)?;
            let cipher = self.derive(next).ok_or(Error::KeyExhausted)?;
            write_lock(&self.openers).insert(next, cipher.clone());
            *current = Current {
                generation: next,
                uses: 0,
                cipher,
            };
        }
        current.uses += 1;
        Ok((current.generation, current.cipher.clone()))
    }

    /// `open` run with the cipher of `generation` (`AuthError` when there is none).
    fn with_opener(
        &self,
        generation: u32,
        open: impl FnOnce(&Aes256Gcm) -> std::result::Result<(), AuthError>,
    ) -> std::result::Result<(), AuthError> {
        if generation == self.first.0 {
            return open(&self.first.1);
        }
        let cipher = self.opener(generation).ok_or(AuthError)?;
        open(&cipher)
    }

    /// The cipher of a generation, derived on first use.
    fn opener(&self, generation: u32) -> Option<Arc<Aes256Gcm>> {
        if let Some(c) = read_lock(&self.openers).get(&generation) {
            return Some(c.clone());
        }
        let cipher = self.derive(generation)?;
        write_lock(&self.openers).insert(generation, cipher.clone());
        Some(cipher)
    }

    fn derive(&self, generation: u32) -> Option<Arc<Aes256Gcm>> {
        match &self.source {
            KeySource::Fixed => None,
            KeySource::Derived(derive) => Some(Arc::new(cipher_from(&derive(generation)))),
        }
    }
}

/// AES-256-GCM with an explicit nonce: `ciphertext || tag`, for the known-answer tests (they
/// check [`gcm_seal_in_place`], which [`Sealer::seal_with`] calls with a fresh random nonce).
#[cfg(test)]
pub(crate) fn gcm_seal(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = gcm_seal_in_place(cipher, nonce, aad, &mut out)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Encrypts `buf` where it lies; returns the tag.
fn gcm_seal_in_place(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into())
        .map_err(|_| Error::invalid_argument("record too large to encrypt"))?;
    Ok(tag.into())
}

/// Verifies and decrypts `ciphertext || tag` into a fresh buffer (copied first); for the
/// known-answer tests.
#[cfg(test)]
pub(crate) fn gcm_open(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> std::result::Result<Vec<u8>, AuthError> {
    let mut plain = Vec::new();
    gcm_open_into(cipher, nonce, aad, sealed, &mut plain)?;
    Ok(plain)
}

/// Verifies and decrypts `ciphertext || tag` into `plain`, whose length becomes the
/// plaintext's. A reused buffer keeps its bytes until they are overwritten, so that the
/// re-rank's scratch buffer is neither cleared nor filled with a copy of the ciphertext
/// first (decrypting from the sealed bytes straight into it saves that copy: a resident open
/// of 1M x 128 got about 5% faster without it).
fn gcm_open_into(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
    plain: &mut Vec<u8>,
) -> std::result::Result<(), AuthError> {
    let (body, tag) = split_tag(sealed)?;
    plain.resize(body.len(), 0);
    gcm_decrypt(cipher, nonce, aad, body, plain, &tag)
}

/// `ciphertext || tag` split in two.
fn split_tag(sealed: &[u8]) -> std::result::Result<(&[u8], Tag), AuthError> {
    let body_end = sealed.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
    let tag = Tag::try_from(&sealed[body_end..]).map_err(|_| AuthError)?;
    Ok((&sealed[..body_end], tag))
}

/// Verifies `ciphertext` against `tag` and only then decrypts it into `out` (its length the
/// ciphertext's; aes-gcm checks the tag before it applies the keystream, so a record that
/// fails writes nothing).
fn gcm_decrypt(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    out: &mut [u8],
    tag: &Tag,
) -> std::result::Result<(), AuthError> {
    let buf = InOutBuf::new(ciphertext, out).map_err(|_| AuthError)?;
    cipher
        .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf, tag)
        .map_err(|_| AuthError)
}

/// An AES-256-GCM cipher from raw key bytes (for the known-answer tests).
#[cfg(test)]
pub(crate) fn cipher_for_test(key: &[u8; 32]) -> Aes256Gcm {
    cipher_from(key)
}

/// The cipher of `key`, built from a reference to it: no copy of the key is left on the
/// stack (the cipher's own key schedule wipes itself, feature `zeroize`).
fn cipher_from(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealer over a stand-in derivation (the key schedule's is tested in `schedule` and
    /// `kat`): a distinct key per generation.
    fn sealer() -> Sealer {
        Sealer::derived([4; INDEX_ID_LEN], 0, |generation| {
            let mut key = Zeroizing::new([5; 32]);
            key[..4].copy_from_slice(&generation.to_le_bytes());
            key
        })
    }

    fn binding() -> Binding {
        Binding {
            version: 4,
            kind: 4,
            segment: 7,
            offset: 96,
            list: [1; 32],
            item: [2; 32],
        }
    }

    #[test]
    fn round_trip_and_overhead() {
        let s = sealer();
        for len in [0usize, 1, 16, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = s.seal(&plain, &binding()).unwrap();
            assert_eq!(sealed.len(), plain.len() + OVERHEAD);
            assert_eq!(s.open(&sealed, &binding()).unwrap(), plain);
        }
    }

    /// Opening into a reused buffer, longer or shorter than the plaintext and holding other
    /// bytes, leaves exactly the plaintext in it.
    #[test]
    fn open_into_a_reused_buffer_leaves_exactly_the_plaintext() {
        let s = sealer();
        let mut buffer = vec![0x5Au8; 700];
        for len in [600usize, 0, 17, 1000, 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            let sealed = s.seal(&plain, &binding()).unwrap();
            s.open_into(&sealed, &binding(), &mut buffer).unwrap();
            assert_eq!(buffer, plain, "length {len}");
        }
    }

    /// Opening into a caller's slice gives what `open` gives, leaves the slice's tail alone,
    /// and refuses a short slice, a tampered byte and another binding.
    #[test]
    fn open_into_slice_equals_open() {
        let s = sealer();
        for len in [0usize, 1, 16, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = s.seal(&plain, &binding()).unwrap();
            let mut out = vec![0xEEu8; len + 5];
            assert_eq!(s.open_into_slice(&sealed, &binding(), &mut out), Ok(len));
            assert_eq!(&out[..len], &plain[..]);
            assert!(out[len..].iter().all(|&b| b == 0xEE));
            if len > 0 {
                let mut short = vec![0u8; len - 1];
                assert!(s.open_into_slice(&sealed, &binding(), &mut short).is_err());
            }
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                // Verified before anything is decrypted: a record that fails writes nothing.
                let mut untouched = vec![0xEEu8; len + 5];
                assert!(
                    s.open_into_slice(&bad, &binding(), &mut untouched).is_err(),
                    "byte {i}"
                );
                assert!(untouched.iter().all(|&b| b == 0xEE), "byte {i}");
            }
            let other = binding().at(97);
            assert!(s.open_into_slice(&sealed, &other, &mut out).is_err());
        }
        assert!(
            s.open_into_slice(&[0u8; OVERHEAD - 1], &binding(), &mut [0u8; 4])
                .is_err()
        );
    }

    #[test]
    fn cap_moves_to_a_fresh_generation() {
        let s = sealer().with_cap(3);
        let records: Vec<Vec<u8>> = (0..10u8)
            .map(|i| s.seal(&[i], &binding()).unwrap())
            .collect();
        assert_eq!(s.generation(), 3);
        let generations: Vec<u32> = records
            .iter()
            .map(|r| u32::from_le_bytes(r[..4].try_into().unwrap()))
            .collect();
        assert_eq!(generations, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        // The sealer that moved on, and a reopened one (generation 0), open every generation
        // (generation 0 through the sealer's first cipher, the others through the map).
        let fresh = sealer();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(s.open(r, &binding()).unwrap(), [i as u8]);
            assert_eq!(fresh.open(r, &binding()).unwrap(), [i as u8]);
        }
        // Generations are distinct keys: relabelling a record's generation fails.
        let mut moved = records[0].clone();
        moved[..4].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(fresh.open(&moved, &binding()), Err(AuthError));
    }

    #[test]
    fn fixed_key_refuses_past_its_cap() {
        let s = Sealer::fixed(&[1; 32], [0; INDEX_ID_LEN]).with_cap(2);
        assert!(s.seal(b"a", &binding()).is_ok());
        assert!(s.seal(b"b", &binding()).is_ok());
        assert!(matches!(s.seal(b"c", &binding()), Err(Error::KeyExhausted)));
    }
}
