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

impl CliError {
    /// The documented exit code of an error.
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
