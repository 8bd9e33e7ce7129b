//! The one place that knows bincode, so it can be swapped: structured values (the manifest
//! body) to bytes and back, with a size limit on decoding.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Largest structured value we accept when decoding.
const LIMIT: usize = 256 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes a value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config())
        .map_err(|_| Error::invalid_argument("value cannot be encoded"))
}

/// Decodes a value that must use every byte.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    match bincode::serde::decode_from_slice(bytes, config()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        _ => Err(Error::corrupted(what)),
    }
}
