//! Byte stores: names and bytes only. A [`Backend`] holds named stores (one per index); a
//! [`IndexFiles`] holds the files of one index. Two backends: a local directory (the default) and
//! memory.

mod dir;
pub(crate) mod files;
pub(crate) mod fs;
mod memory;
mod object;
mod remote;
#[cfg(feature = "s3")]
mod s3;
mod store;

use std::borrow::Cow;
use std::io;
use std::ops::Range;
use std::sync::Arc;

pub(crate) use dir::DirBackend;
pub(crate) use memory::MemoryBackend;
pub use object::MemoryStore;
pub(crate) use object::StoreBackend;
#[cfg(feature = "internals")]
pub(crate) use remote::ReadStats;
#[cfg(feature = "s3")]
pub(crate) use s3::S3Store;
pub use store::Store;

/// The longest manifest a store reads (the format's own limit,
/// `format::manifest::MAX_FILE_LEN`; an object store refuses a longer one unread).
pub(crate) const MAX_MANIFEST_LEN: u64 = 64 << 20;

/// The bytes of one stored file: mapped read-only from disk, shared from memory, or an
/// object read by range from a [`Store`] through its read cache.
pub(crate) enum Blob {
    /// A read-only memory map.
    Mapped(memmap2::Mmap),
    /// Bytes in memory.
    Shared(Arc<[u8]>),
    /// An immutable object of a store, fetched by range on demand.
    Remote(remote::RemoteObject),
}

impl Blob {
    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Blob::Mapped(m) => m.len() as u64,
            Blob::Shared(s) => s.len() as u64,
            Blob::Remote(r) => r.len(),
        }
    }

    /// Bytes `offset..offset + len`: borrowed from a local file, fetched (or taken from the
    /// read cache) for a remote one. A range past the end is [`io::ErrorKind::UnexpectedEof`].
    pub(crate) fn read(&self, offset: u64, len: u64) -> io::Result<Cow<'_, [u8]>> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(match self {
            Blob::Mapped(m) => Cow::Borrowed(&m[offset as usize..end as usize]),
            Blob::Shared(s) => Cow::Borrowed(&s[offset as usize..end as usize]),
            Blob::Remote(r) => r.read(offset..end)?,
        })
    }

    /// The whole file (a remote one is fetched whole: for `verify` and backups).
    pub(crate) fn whole(&self) -> io::Result<Cow<'_, [u8]>> {
        self.read(0, self.len())
    }

    /// The file in memory or mapped: a remote one downloaded whole in one request (past the
    /// read cache, which it would flush), a local one as it is. For `verify`, which reads
    /// every byte; a remote object whose length differs from the manifest's is
    /// [`io::ErrorKind::UnexpectedEof`].
    pub(crate) fn downloaded(self: Arc<Self>) -> io::Result<Arc<Blob>> {
        match &*self {
            Blob::Remote(r) => {
                let bytes = r.download()?;
                if bytes.len() as u64 != r.len() {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                Ok(Arc::new(Blob::Shared(bytes.into())))
            }
            _ => Ok(self),
        }
    }

    /// Drops what the read cache holds of a remote file (nothing to do for a local one).
    pub(crate) fn forget_cached(&self) {
        if let Blob::Remote(r) = self {
            r.forget_cached();
        }
    }

    /// The bytes of a local file; `None` for a remote one.
    pub(crate) fn local(&self) -> Option<&[u8]> {
        match self {
            Blob::Mapped(m) => Some(m),
            Blob::Shared(s) => Some(s),
            Blob::Remote(_) => None,
        }
    }

    /// Fetches into the read cache what `ranges` cover of a remote file, adjacent chunks in
    /// one request (nothing to do for a local one): an open reads the records it needs this
    /// way before it decodes them.
    pub(crate) fn prefetch(&self, ranges: &[Range<u64>]) -> io::Result<()> {
        match self {
            Blob::Remote(r) => r.prefetch(ranges),
            _ => Ok(()),
        }
    }
}

/// Decodes `%XX` escapes, as URLs and object-store keys write the bytes outside their
/// alphabet; `None` when a `%` is not followed by two hex digits.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            // `to_digit`, not `from_str_radix`, which would take a sign ("%+f").
            let digit = |at: usize| tail.get(at).and_then(|&h| (h as char).to_digit(16));
            out.push((digit(0)? << 4 | digit(1)?) as u8);
            rest = &tail[2..];
        } else {
            out.push(b);
            rest = tail;
        }
    }
    Some(out)
}

/// An exclusive writer lock; released on drop (or when the process dies).
pub(crate) type WriterLock = Box<dyn std::any::Any + Send + Sync>;

/// The files of one index.
pub(crate) trait IndexFiles: Send + Sync {
    /// Reads a whole file.
    fn read(&self, file: &str) -> io::Result<Blob>;
    /// Opens an immutable segment file of `len` bytes (as the manifest says) for reads by
    /// range: object stores fetch nothing yet; the default reads the file as [`read`] does.
    ///
    /// [`read`]: IndexFiles::read
    fn open_segment(&self, file: &str, len: u64) -> io::Result<Blob> {
        let _ = len;
        self.read(file)
    }
    /// The file just written with `data` (a segment), for reads: the default maps it back
    /// in (falling back to `data` itself); object stores keep what fits of it in their read
    /// cache.
    fn written_segment(&self, file: &str, data: Vec<u8>) -> Blob {
        match self.read(file) {
            Ok(b) if b.len() == data.len() as u64 => b,
            _ => Blob::Shared(data.into()),
        }
    }
    /// What this store fetched by range so far (zero for local stores).
    #[cfg(feature = "internals")]
    fn read_stats(&self) -> ReadStats {
        ReadStats::default()
    }
    /// Creates a new file with `data` and makes it durable (file and directory synced).
    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Atomically replaces (or creates) a file: temp file, sync, rename, sync directory.
    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Writes the first version of a file that later [`replace`](Self::replace)s change
    /// (an index's first manifest), atomically, failing with
    /// [`io::ErrorKind::AlreadyExists`] where the storage can tell that it exists. The
    /// default replaces: a store whose writer lock excludes every other creator (a folder's
    /// `flock`) needs no more; an object store, whose leases can be taken over from a
    /// stalled writer, creates it conditionally.
    fn write_first(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.replace(file, data)
    }
    /// Removes a file; a missing file is not an error.
    fn remove(&self, file: &str) -> io::Result<()>;
    /// Removes a segment a commit superseded (numbered below the manifest's next segment, so
    /// never written again): object stores keep it for a grace period, for readers in other
    /// processes that still hold a state naming it; the default removes it at once.
    fn retire(&self, file: &str) -> io::Result<()> {
        self.remove(file)
    }
    /// Names of every file.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The length of a file (an object store asks for it: S3 with a HEAD request).
    fn file_len(&self, file: &str) -> io::Result<u64>;
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
