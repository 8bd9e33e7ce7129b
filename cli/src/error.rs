//! The CLI's one error type, and the one function that maps it to the documented exit
//! codes: every command module names this module, which names none of them.

use std::fmt;

/// Why a command failed: the library's typed error, bad usage, or anything else.
#[derive(Debug)]
pub(crate) enum CliError {
    /// An error of the library (mapped to its exit code).
    Lib(ciphervec::Error),
    /// Bad usage (exit 2).
    Usage(String),
    /// Anything else (exit 1).
    Other(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Lib(e) => write!(f, "{e}"),
            CliError::Usage(s) | CliError::Other(s) => f.write_str(s),
        }
    }
}

impl From<ciphervec::Error> for CliError {
    fn from(e: ciphervec::Error) -> Self {
        CliError::Lib(e)
    }
}

/// The exit codes of [`CliError::exit_code`], as `--help` prints them.
pub(crate) const EXIT_CODES: &str = "Exit codes: 0 ok, 1 other error, 2 usage, 3 wrong key, \
    4 corrupted, 5 locked, 6 rolled back, 7 storage unavailable, 8 unsupported on-disk format, \
    9 permission denied.";

impl CliError {
    /// The documented exit code of an error (listed in [`EXIT_CODES`]).
    pub(crate) fn exit_code(&self) -> u8 {
        use ciphervec::Error;
        match self {
            CliError::Lib(e) => match e {
                Error::WrongKey => 3,
                Error::Corrupted { .. } => 4,
                Error::Locked => 5,
                Error::RolledBack => 6,
                Error::Unavailable => 7,
                Error::UnsupportedFormat { .. } => 8,
                Error::PermissionDenied => 9,
                _ => 1,
            },
            CliError::Usage(_) => 2,
            CliError::Other(_) => 1,
        }
    }
}
