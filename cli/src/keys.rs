//! Where the key comes from: `--key-file` (permission-checked by the library's `KeyFile`) or
//! the `CIPHERVEC_KEY` environment variable (base64 or 64 hex digits). Never an argument.

use std::io::Write as _;
use std::path::Path;

use ciphervec::{IndexKey, KeyFile, KeyProvider as _};

use crate::commands::CliError;

/// The environment variable holding the key when `--key-file` is absent.
pub(crate) const KEY_VAR: &str = "CIPHERVEC_KEY";

/// The index key from `--key-file`, else from `CIPHERVEC_KEY`.
pub(crate) fn index_key(key_file: Option<&Path>) -> Result<IndexKey, CliError> {
    if let Some(path) = key_file {
        return key_from_file(path);
    }
    let value =
        zeroize::Zeroizing::new(std::env::var(KEY_VAR).map_err(|_| {
            CliError::Usage(format!("no key: give --key-file FILE or set {KEY_VAR}"))
        })?);
    let text = value.trim();
    IndexKey::from_base64(text)
        .or_else(|_| IndexKey::from_hex(text))
        .map_err(CliError::Lib)
}

/// Whether a key is available without asking for one.
pub(crate) fn key_given(key_file: Option<&Path>) -> bool {
    key_file.is_some() || std::env::var_os(KEY_VAR).is_some()
}

/// A key from a base64 key file (refused when group or others may read it).
pub(crate) fn key_from_file(path: &Path) -> Result<IndexKey, CliError> {
    KeyFile::new(path).index_key().map_err(CliError::Lib)
}

/// Writes `key` in base64 to a new file, mode 0600; never overwrites.
pub(crate) fn write_key_file(path: &Path, key: &IndexKey) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Other(format!("{} exists: not overwritten", path.display()))
        } else {
            CliError::Other(format!("{}: {e}", path.display()))
        }
    })?;
    let text = key.to_base64();
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))
}
