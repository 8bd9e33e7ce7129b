//! From `ciphervec::Error` (and panics) to the exception classes of `ciphervec._errors`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ciphervec::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The module that defines the exception classes (pure Python, so that classes can subclass
/// both `CiphervecError` and `ValueError` or `OSError`).
const ERRORS_MODULE: &str = "ciphervec._errors";

/// The exception class name for an error.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::WrongKey => "WrongKeyError",
        Error::IndexNotFound => "IndexNotFoundError",
        Error::IndexExists => "IndexExistsError",
        Error::Locked => "LockedError",
        Error::ReadOnly => "ReadOnlyError",
        Error::Corrupted { .. } => "CorruptedError",
        Error::RolledBack => "RolledBackError",
        Error::Unavailable => "UnavailableError",
        Error::InvalidFilter { .. } => "InvalidFilterError",
        Error::DimensionMismatch { .. } => "DimensionMismatchError",
        Error::InvalidVector => "InvalidVectorError",
        Error::InvalidArgument { .. } | Error::InvalidKey => "InvalidArgumentError",
        Error::UnsupportedFormat { .. } => "UnsupportedFormatError",
        Error::PermissionDenied => "PermissionDeniedError",
        Error::KeyService { .. } => "KeyServiceError",
        Error::Io(_) => "StorageError",
        _ => "CiphervecError",
    }
}

/// Raises the class named `class` of `ciphervec._errors` with `message`.
pub(crate) fn raise(class: &'static str, message: String) -> PyErr {
    static CLASSES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    Python::attach(|py| {
        let module =
            match CLASSES.get_or_try_init(py, || py.import(ERRORS_MODULE).map(Bound::unbind)) {
                Ok(m) => m.bind(py).clone(),
                Err(e) => return e,
            };
        match module
            .getattr(class)
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
        {
            Ok(ty) => PyErr::from_type(ty, message),
            Err(e) => e,
        }
    })
}

/// The Python exception for an engine error (its message holds no stored data: the engine's
/// errors never carry plaintext).
pub(crate) fn to_py(e: Error) -> PyErr {
    raise(class_of(&e), e.to_string())
}

/// `InvalidArgumentError(message)`.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    raise("InvalidArgumentError", message.into())
}

/// Runs engine work with the GIL released, turning an error into its exception and a panic
/// into `CiphervecError`.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> ciphervec::Result<T> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(work))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(_) => Err(raise(
            "CiphervecError",
            "internal error: a panic in the engine stopped this call (please report it)".to_owned(),
        )),
    }
}
