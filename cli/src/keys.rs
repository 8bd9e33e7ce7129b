//! Where the key comes from: `--key-file` (permission-checked by the library's `KeyFile`) or
//! the `CIPHERVEC_KEY` environment variable (base64 or 64 hex digits). Never an argument.

use std::io::Write as _;
use std::path::Path;

use ciphervec::{EnvKey, IndexKey, KeyFile, KeyProvider as _};

use crate::commands::CliError;
use crate::{Cli, KmsArg};

/// The environment variable holding the key when `--key-file` is absent.
pub(crate) const KEY_VAR: &str = "CIPHERVEC_KEY";

/// The key of index `name`: through `--kms` when given, else from `--key-file`, else from
/// `CIPHERVEC_KEY`. With `create_if_missing` (the `create` command), a `--kms` envelope
/// whose wrapped-key file does not exist yet is generated and its file written.
pub(crate) fn for_index(
    cli: &Cli,
    name: &str,
    create_if_missing: bool,
) -> Result<IndexKey, CliError> {
    match (cli.kms, cli.wrapped_key_file.as_deref()) {
        (Some(kms), Some(wrapped)) => kms_key(kms, wrapped, name, create_if_missing),
        _ => index_key(cli.key_file.as_deref()),
    }
}

/// Whether any key source is given.
pub(crate) fn any_key(cli: &Cli) -> bool {
    cli.kms.is_some() || key_given(cli.key_file.as_deref())
}

#[cfg(any(feature = "vault", feature = "aws-kms"))]
fn kms_key(kms: KmsArg, wrapped: &Path, name: &str, create: bool) -> Result<IndexKey, CliError> {
    use ciphervec::kms::{KmsEnvelope, WrappedKey};
    let env =
        |var: &str| std::env::var(var).map_err(|_| CliError::Usage(format!("--kms needs {var}")));
    #[cfg(feature = "vault")]
    let vault = || -> Result<ciphervec::kms::vault::VaultTransit, CliError> {
        let key = std::env::var("CIPHERVEC_VAULT_KEY").unwrap_or_else(|_| "ciphervec".into());
        Ok(ciphervec::kms::vault::VaultTransit::new(
            env("VAULT_ADDR")?,
            env("VAULT_TOKEN")?,
            key,
        ))
    };
    #[cfg(feature = "aws-kms")]
    let aws = || -> Result<ciphervec::kms::aws::AwsKms, CliError> {
        let mut builder = ciphervec::kms::aws::AwsKms::builder(env("CIPHERVEC_KMS_KEY_ID")?);
        if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder.endpoint(url);
        }
        Ok(builder.build()?)
    };
    let provider = |text: String| -> Result<Box<dyn ciphervec::KeyProvider>, CliError> {
        let wrapped = WrappedKey::new(text.trim())?;
        Ok(match kms {
            #[cfg(feature = "vault")]
            KmsArg::Vault => Box::new(KmsEnvelope::new(vault()?, wrapped, name)),
            #[cfg(feature = "aws-kms")]
            KmsArg::Aws => Box::new(KmsEnvelope::new(aws()?, wrapped, name)),
            #[allow(unreachable_patterns)]
            _ => return Err(CliError::Usage("this build lacks that KMS".into())),
        })
    };
    if !wrapped.exists() && create {
        let (key, text) = match kms {
            #[cfg(feature = "vault")]
            KmsArg::Vault => {
                let (envelope, key) = KmsEnvelope::generate(vault()?, name)?;
                (key, envelope.wrapped_key().as_str().to_owned())
            }
            #[cfg(feature = "aws-kms")]
            KmsArg::Aws => {
                let (envelope, key) = KmsEnvelope::generate(aws()?, name)?;
                (key, envelope.wrapped_key().as_str().to_owned())
            }
            #[allow(unreachable_patterns)]
            _ => return Err(CliError::Usage("this build lacks that KMS".into())),
        };
        write_text_file(wrapped, &text)?;
        return Ok(key);
    }
    let text = std::fs::read_to_string(wrapped)
        .map_err(|e| CliError::Other(format!("{}: {e}", wrapped.display())))?;
    Ok(provider(text)?.index_key()?)
}

#[cfg(not(any(feature = "vault", feature = "aws-kms")))]
fn kms_key(_: KmsArg, _: &Path, _: &str, _: bool) -> Result<IndexKey, CliError> {
    Err(CliError::Usage(
        "--kms needs a build with the `vault` or `aws-kms` feature".into(),
    ))
}

/// The index key from `--key-file`, else from `CIPHERVEC_KEY`.
pub(crate) fn index_key(key_file: Option<&Path>) -> Result<IndexKey, CliError> {
    if let Some(path) = key_file {
        return key_from_file(path);
    }
    if std::env::var_os(KEY_VAR).is_none() {
        return Err(CliError::Usage(format!(
            "no key: give --key-file FILE or set {KEY_VAR}"
        )));
    }
    Ok(EnvKey::new(KEY_VAR).index_key()?)
}

/// Whether a key is available without asking for one.
pub(crate) fn key_given(key_file: Option<&Path>) -> bool {
    key_file.is_some() || std::env::var_os(KEY_VAR).is_some()
}

/// A key from a base64 key file (refused when group or others may read it).
pub(crate) fn key_from_file(path: &Path) -> Result<IndexKey, CliError> {
    KeyFile::new(path).index_key().map_err(|e| match e {
        // A file that cannot be read says which (the path is no secret; the key is).
        ciphervec::Error::Io(io) => CliError::Other(format!("{}: {io}", path.display())),
        other => CliError::Lib(other),
    })
}

/// Writes `key` in base64 to a new file, mode 0600; never overwrites.
pub(crate) fn write_key_file(path: &Path, key: &IndexKey) -> Result<(), CliError> {
    write_text_file(path, key.to_base64().as_str())
}

/// Writes `text` and a newline to a new file, mode 0600; never overwrites.
fn write_text_file(path: &Path, text: &str) -> Result<(), CliError> {
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
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))
}
