//! From `ciphervec::Error` (and panics, and arguments this package refuses) to the errors the
//! package throws: a JavaScript `Error` whose `code` names the failure. `index.js` turns each
//! into the `CiphervecError` subclass of its code (and napi's own argument errors into
//! `InvalidArgumentError`); this file is the one place that maps the engine's variants.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ciphervec::Error;
use napi::bindgen_prelude::*;

/// A failure on its way to JavaScript: a stable code and a message (never stored data: the
/// engine's messages carry none, and this package's name only arguments).
#[derive(Debug)]
pub struct Failure {
    code: &'static str,
    message: String,
}

/// The code of an engine error: the `code` of the JavaScript error, and the name of its
/// class in `index.js`.
fn code_of(e: &Error) -> &'static str {
    match e {
        Error::WrongKey => "WRONG_KEY",
        Error::IndexNotFound => "INDEX_NOT_FOUND",
        Error::IndexExists => "INDEX_EXISTS",
        Error::Locked => "LOCKED",
        Error::ReadOnly => "READ_ONLY",
        Error::Corrupted { .. } => "CORRUPTED",
        Error::RolledBack => "ROLLED_BACK",
        Error::Unavailable => "UNAVAILABLE",
        Error::InvalidFilter { .. } => "INVALID_FILTER",
        Error::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
        Error::InvalidVector => "INVALID_VECTOR",
        Error::InvalidArgument { .. } | Error::InvalidKey => "INVALID_ARGUMENT",
        Error::Io(_) => "STORAGE",
        Error::KeyService { .. } => "KEY_SERVICE",
        Error::KeyExhausted => "KEY_EXHAUSTED",
        Error::Poisoned => "POISONED",
        Error::UnsupportedFormat { .. } => "UNSUPPORTED_FORMAT",
        Error::PermissionDenied => "PERMISSION_DENIED",
        // `Error` is non-exhaustive: a variant this package does not know yet is still a
        // `CiphervecError`, with its message.
        _ => INTERNAL,
    }
}

/// The code of a failure that is no engine error: a panic, or a variant not mapped yet.
const INTERNAL: &str = "INTERNAL";

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            code: code_of(&e),
            message: e.to_string(),
        }
    }
}

impl Failure {
    /// A failure of an explicit code (for refusals this package makes before the engine
    /// could, such as a flat array whose length is no multiple of the dimension).
    pub(crate) fn with_code(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    fn panic() -> Failure {
        Failure {
            code: INTERNAL,
            message: "internal error: a panic in the engine stopped this call (please report it)"
                .to_owned(),
        }
    }

    /// The JavaScript error: an `Error` with `message` and `code`, as a napi error that
    /// throws (or rejects with) that very object. Called on the JavaScript thread.
    pub(crate) fn into_js(self, env: &Env) -> napi::Error {
        let build = || -> Result<napi::Error> {
            let mut error = env.create_error(napi::Error::new(
                Status::GenericFailure,
                self.message.clone(),
            ))?;
            error.set_named_property("code", self.code)?;
            Ok(napi::Error::from(error.to_unknown()))
        };
        // Building an object fails only while the environment shuts down: the plain error
        // says the same, with `code` GenericFailure.
        build().unwrap_or_else(|_| napi::Error::new(Status::GenericFailure, self.message))
    }
}

/// What a conversion or a task gives: its value or a [`Failure`].
pub(crate) type Outcome<T> = std::result::Result<T, Failure>;

/// Runs engine work, turning its error into a [`Failure`] and a panic into an `INTERNAL`
/// one: a bug in the engine rejects one call instead of taking the process down (a panic
/// must not unwind into Node-API's C frames).
pub(crate) fn catching<T>(work: impl FnOnce() -> ciphervec::Result<T>) -> Outcome<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(Failure::from),
        Err(_) => Err(Failure::panic()),
    }
}

/// A synchronous call's result for JavaScript: [`catching`], its failure thrown.
pub(crate) fn sync<T>(env: &Env, work: impl FnOnce() -> ciphervec::Result<T>) -> Result<T> {
    catching(work).map_err(|f| f.into_js(env))
}

/// A refusal of an argument on the JavaScript thread: an error with napi's own status for
/// argument errors (`InvalidArg`), which `index.js` maps to `InvalidArgumentError` like the
/// conversion errors napi raises itself.
pub(crate) fn invalid(message: impl Into<String>) -> napi::Error {
    napi::Error::new(Status::InvalidArg, message.into())
}
