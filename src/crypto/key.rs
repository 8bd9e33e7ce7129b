//! The caller's 256-bit index key: parsing, generation and safe handling.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::random_bytes;
use crate::error::{Error, Result};

/// Length of an [`IndexKey`] in bytes.
pub const INDEX_KEY_LEN: usize = 32;

/// The 256-bit key that protects an index.
///
/// It is never written anywhere by ciphervec: it wraps the index's random data key, from which
/// every working key is derived (see `docs/KEY_SCHEDULE.md`). It wipes itself on drop, prints as
/// `IndexKey(REDACTED)`, and implements neither `Display` nor `Serialize`.
///
/// ```
/// use ciphervec::IndexKey;
/// let key = IndexKey::generate();
/// let again = IndexKey::from_base64(&key.to_base64()).unwrap();
/// assert_eq!(key, again);
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct IndexKey {
    bytes: [u8; INDEX_KEY_LEN],
}

impl IndexKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness, in which case no key can be
    /// made safely at all.
    pub fn generate() -> IndexKey {
        let mut bytes = [0u8; INDEX_KEY_LEN];
        random_bytes(&mut bytes).expect("the OS random number generator failed");
        IndexKey { bytes }
    }

    /// A key from exactly 32 raw bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<IndexKey> {
        let bytes: [u8; INDEX_KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        Ok(IndexKey { bytes })
    }

    /// A key from standard base64 (the output of `openssl rand -base64 32`); surrounding
    /// whitespace, such as the trailing newline, is ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text is not base64 or does not decode to 32 bytes.
    pub fn from_base64(s: &str) -> Result<IndexKey> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| Error::InvalidKey)?,
        );
        IndexKey::from_bytes(&decoded)
    }

    /// A key from 64 hexadecimal digits, either case; surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text is not exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Result<IndexKey> {
        let s = s.trim().as_bytes();
        if s.len() != 2 * INDEX_KEY_LEN {
            return Err(Error::InvalidKey);
        }
        let mut bytes = [0u8; INDEX_KEY_LEN];
        for (out, pair) in bytes.iter_mut().zip(s.chunks_exact(2)) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(hi), Some(lo)) => *out = hi << 4 | lo,
                _ => {
                    bytes.zeroize();
                    return Err(Error::InvalidKey);
                }
            }
        }
        Ok(IndexKey { bytes })
    }

    /// A key from a file holding its base64 form, as written by
    /// `openssl rand -base64 32 > index_key.txt && chmod 600 index_key.txt`. Checked as
    /// `KeyFile` (the key provider) checks by default: on Unix the file must be a regular
    /// file (not a symbolic link) that only its owner, the user running this process, can
    /// access. For a mounted secret (a link, or shared permissions) use
    /// `KeyFile::new(path).allow_shared_permissions()`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a symbolic link or a file that group or others may
    /// access or another user owns; [`Error::Io`] if the file cannot be read;
    /// [`Error::InvalidKey`] if it does not hold a base64 key.
    pub fn from_base64_file(path: impl AsRef<Path>) -> Result<IndexKey> {
        let text = read_key_file(path.as_ref(), KeyFileCheck::Private)?;
        let text = std::str::from_utf8(&text).map_err(|_| Error::InvalidKey)?;
        IndexKey::from_base64(text)
    }

    /// The key as standard base64 with padding (44 characters), in a string that wipes itself.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes))
    }

    /// The raw key bytes, for the key schedule only.
    pub(crate) fn as_bytes(&self) -> &[u8; INDEX_KEY_LEN] {
        &self.bytes
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl PartialEq for IndexKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for IndexKey {}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKey(REDACTED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_agree() {
        let key = IndexKey::generate();
        let hex: String = key.bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(IndexKey::from_hex(&hex).unwrap(), key);
        assert_eq!(IndexKey::from_hex(&hex.to_lowercase()).unwrap(), key);
        let b64 = format!("{}\n", key.to_base64().as_str());
        assert_eq!(IndexKey::from_base64(&b64).unwrap(), key);
    }

    #[test]
    fn debug_is_redacted() {
        let key = IndexKey::from_bytes(&[0xAB; 32]).unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "IndexKey(REDACTED)");
    }
}

/// How [`read_key_file`] checks a key file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFileCheck {
    /// Follow a symbolic link (mounted secrets often are links); only require a regular file.
    Follow,
    /// Refuse a symbolic link, and (Unix) a file that group or others may access or that
    /// another user owns: checked on the open handle, which is then read.
    Private,
}

/// The largest key file read (a base64 key with whitespace is 45 bytes).
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Reads a key file into memory that wipes itself: opened once (never blocking on a FIFO),
/// checked on the open handle, read from that handle.
///
/// # Errors
/// [`Error::InvalidKey`] for a file that is not a small regular file, or (with
/// [`KeyFileCheck::Private`]) one that others may access or own; [`Error::Io`].
pub(crate) fn read_key_file(path: &Path, check: KeyFileCheck) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let no_follow = if check == KeyFileCheck::Private {
            libc::O_NOFOLLOW
        } else {
            0
        };
        options.custom_flags(no_follow | libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(|e| {
        if is_symlink_refusal(&e) {
            Error::invalid_argument("key file is a symbolic link")
        } else {
            Error::Io(e)
        }
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_LEN {
        return Err(Error::InvalidKey);
    }
    #[cfg(unix)]
    if check == KeyFileCheck::Private {
        use std::os::unix::fs::MetadataExt as _;
        if meta.mode() & 0o077 != 0 {
            return Err(Error::invalid_argument(
                "key file is accessible by group or others: chmod 600 it \
                 (or use KeyFile::allow_shared_permissions)",
            ));
        }
        // The process's effective user owns /proc/self (Linux); elsewhere this is skipped.
        if let Ok(me) = std::fs::metadata("/proc/self")
            && me.uid() != meta.uid()
        {
            return Err(Error::invalid_argument("key file is owned by another user"));
        }
    }
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize));
    (&mut file)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)?;
    Ok(text)
}

/// Whether opening failed because `O_NOFOLLOW` met a symbolic link (`ELOOP`).
fn is_symlink_refusal(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}
