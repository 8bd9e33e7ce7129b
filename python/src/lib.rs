//! Python bindings of ciphervec: the native module `ciphervec._native`, wrapped by the pure
//! Python package `ciphervec` (exceptions, `generate_key`, the LangChain store).
//!
//! Every call that does work releases the GIL (`Python::detach`) and catches panics, which
//! become `CiphervecError`: a bug in the engine never takes the interpreter down. Classes are
//! `frozen` and hold only `Send + Sync` handles, so any Python thread may call them.

mod client;
mod convert;
mod errors;
mod index;
mod kms;

use ciphervec::{IndexType, Metric};
use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Client>()?;
    m.add_class::<index::Index>()?;
    // The names the library reads, for tests that walk every type and metric.
    m.add("INDEX_TYPES", IndexType::ALL.map(IndexType::name))?;
    m.add("METRICS", Metric::ALL.map(Metric::name))?;
    m.add_class::<kms::GcpKms>()?;
    m.add_class::<kms::AzureKeyVault>()?;
    m.add_class::<kms::AwsKms>()?;
    m.add_class::<kms::VaultTransit>()?;
    Ok(())
}
