//! Byte stores: names and bytes only. A [`Backend`] holds named stores (one per index); a
//! [`IndexFiles`] holds the files of one index. Two backends: a local directory (the default) and
//! memory.

mod dir;
pub(crate) mod files;
pub(crate) mod fs;
mod memory;
mod object;
#[cfg(feature = "s3")]
mod s3;

use std::io;
use std::ops::Deref;
use std::sync::Arc;

pub(crate) use dir::DirBackend;
pub(crate) use memory::MemoryBackend;
pub(crate) use object::StoreBackend;
pub use object::{MemoryStore, Store};
#[cfg(feature = "s3")]
pub(crate) use s3::S3Store;

/// The bytes of one stored file: mapped read-only from disk, or shared from memory.
pub(crate) enum Blob {
    /// A read-only memory map.
    Mapped(memmap2::Mmap),
    /// Bytes in memory.
    Shared(Arc<[u8]>),
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Mapped(m) => m,
            Blob::Shared(s) => s,
        }
    }
}

/// An exclusive writer lock; released on drop (or when the process dies).
pub(crate) type WriterLock = Box<dyn std::any::Any + Send + Sync>;

/// The files of one index.
pub(crate) trait IndexFiles: Send + Sync {
    /// Reads a whole file.
    fn read(&self, file: &str) -> io::Result<Blob>;
    /// Creates a new file with `data` and makes it durable (file and directory synced).
    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Atomically replaces (or creates) a file: temp file, sync, rename, sync directory.
    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Removes a file; a missing file is not an error.
    fn remove(&self, file: &str) -> io::Result<()>;
    /// Names of every file.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Takes the exclusive writer lock, or `Ok(None)` if another writer holds it.
    fn try_lock(&self) -> io::Result<Option<WriterLock>>;
}

/// A place holding named stores.
pub(crate) trait Backend: Send + Sync {
    /// Names of every store.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens a store, creating it if `create` is set.
    fn open(&self, name: &str, create: bool) -> io::Result<Option<Arc<dyn IndexFiles>>>;
    /// Removes a store and all its files.
    fn remove(&self, name: &str) -> io::Result<()>;
}
