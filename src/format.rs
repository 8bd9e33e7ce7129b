//! Byte layouts of everything ciphervec stores, with checked decoding that never panics.
//!
//! `docs/FORMAT.md` is the byte-level specification of the same layouts; the offsets there and
//! the constants here must agree. All integers are little-endian.

pub(crate) mod codec;
pub(crate) mod manifest;
pub(crate) mod padding;
pub(crate) mod reader;
pub(crate) mod segment;
