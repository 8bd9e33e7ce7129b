#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod crypto;
mod error;
mod key;
mod ivf;
mod kernel;
mod metric;

pub use error::{Error, Result};
pub use key::{INDEX_KEY_LEN, IndexKey};
pub use metric::Metric;

/// The on-disk format version, bound into every ciphertext's associated data.
pub(crate) const FORMAT_VERSION: u16 = 1;
